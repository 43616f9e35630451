package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
)

// checkNamesTokens is checkNames written over encoding/json's tokens: slower
// (it copies every string) but built on the standard decoder's own reading
// of the input, so the fast scanner is checked against it.
func checkNamesTokens(body []byte, t reflect.Type) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber() // names only: a number too large for a float64 is the decoder's to refuse
	type frame struct {
		obj    bool
		keys   map[string]struct{}
		expect bool                    // in an object: the next token is a key
		fields map[string]reflect.Type // a struct's JSON names; nil: any name
		next   reflect.Type            // the type of the value that follows (nil: unknown)
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.obj && top.expect {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				continue
			}
			k, _ := tok.(string)
			if _, dup := top.keys[k]; dup {
				return fmt.Errorf("field %q appears twice", k)
			}
			top.keys[k] = struct{}{}
			top.expect = false
			if top.fields != nil {
				ft, ok := top.fields[k]
				if !ok {
					return fmt.Errorf("unknown field %q", k)
				}
				top.next = ft
			}
			continue
		}
		// tok is a value: of the root, an array's element or an object's field.
		vt := t
		if top != nil {
			vt = top.next
			if top.obj {
				top.expect = true
			}
		}
		switch d, _ := tok.(json.Delim); d {
		case '{':
			f := &frame{obj: true, keys: map[string]struct{}{}, expect: true}
			switch vt = deref(vt); {
			case vt == nil:
			case vt.Kind() == reflect.Struct:
				f.fields = jsonFields(vt)
			case vt.Kind() == reflect.Map:
				f.next = vt.Elem()
			}
			stack = append(stack, f)
		case '[':
			f := &frame{}
			if vt = deref(vt); vt != nil && (vt.Kind() == reflect.Slice || vt.Kind() == reflect.Array) {
				f.next = vt.Elem()
			}
			stack = append(stack, f)
		case ']', '}':
			stack = stack[:len(stack)-1]
		}
		if len(stack) > 16 {
			return errors.New("JSON nested too deeply")
		}
	}
}

// nameTypes are the types the differential tests read into.
var nameTypes = []reflect.Type{
	reflect.TypeOf(&ReleaseRequest{}),
	reflect.TypeOf(&RotationConfirm{}),
	reflect.TypeOf(map[string][]map[string]int{}),
	reflect.TypeOf((*any)(nil)),
	nil,
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// checkAgree fails unless the scanner and the token walk agree on a JSON
// body: no error from either, or the same error.
func checkAgree(t *testing.T, body []byte, typ reflect.Type) {
	t.Helper()
	got, want := errText(checkNames(body, typ)), errText(checkNamesTokens(body, typ))
	if got != want {
		t.Fatalf("%q as %v: scanner says %q, token walk %q", body, typ, got, want)
	}
}

func TestCheckNamesAgreesWithTheTokenWalk(t *testing.T) {
	good, err := json.Marshal(validRequest())
	if err != nil {
		t.Fatal(err)
	}
	bodies := []string{
		string(good),
		`{}`, `[]`, `"x"`, `1`, `null`, ` { } `,
		`{"vm_id":"a","vm_id":"b"}`,
		`{"vm_id":"a","VM_ID":"b"}`,
		`{"vm\u005fid":"a","vm_id":"b"}`,
		`{"vm_id":"a\"b\\","volume_id":"c"}`,
		`{"evidence":{"report":"","report":""}}`,
		`{"evidence":{"REPORT":""}}`,
		`{"hpke_public_\u212aey":""}`,
		"{\"vm_id\xff\":1}",
		`{"a":{"b":1,"b":2}}`,
		`{"a":[{"b":1},{"b":1,"b":2}]}`,
		`[{"x":1,"x":2}]`,
		`{"evidence":` + strings.Repeat("[", 15) + strings.Repeat("]", 15) + `}`,
		`{"evidence":` + strings.Repeat("[", 16) + strings.Repeat("]", 16) + `}`,
		`{"a":` + strings.Repeat(`{"a":`, 16) + `1` + strings.Repeat("}", 17),
		`{"version":2,"nonce":null,"generation":-1.5e3,"purpose":true}`,
	}
	for _, b := range bodies {
		if !json.Valid([]byte(b)) {
			t.Fatalf("test body %q is not JSON", b)
		}
		for _, typ := range nameTypes {
			checkAgree(t, []byte(b), typ)
		}
	}
	// The cases the checks exist for, whatever the reference says.
	for body, want := range map[string]string{
		`{"vm_id":"a","VM_ID":"b"}`:          `unknown field "VM_ID"`,
		`{"vm\u005fid":"a","vm_id":"b"}`:     `field "vm_id" appears twice`,
		`{"evidence":{"tpm":"","tpm":""}}`:   `field "tpm" appears twice`,
		`{"hpke_public_\u212aey":""}`:        "unknown field \"hpke_public_\u212aey\"",
		`[` + strings.Repeat("[", 16) + `]]`: "nested too deeply",
	} {
		if got := errText(checkNames([]byte(body), nameTypes[0])); !strings.Contains(got, want) {
			t.Errorf("%s: got %q, want %q", body, got, want)
		}
	}
}

// FuzzCheckNames: on JSON the scanner says what the token walk says; on
// anything else, decoding with either accepts and refuses the same bodies.
func FuzzCheckNames(f *testing.F) {
	good, _ := json.Marshal(validRequest())
	f.Add(good, uint8(0))
	f.Add([]byte(`{"vm_id":"a","VM_ID":"b"}`), uint8(0))
	f.Add([]byte(`{"vm\u005fid":"a","vm_id":"b"}`), uint8(0))
	f.Add([]byte(`{"a":[{"b":1},{"b":1,"b":2}]}`), uint8(2))
	f.Add([]byte(`{"request_id":"r","proof":"AA==","x":[1,{"y":null}]}`), uint8(1))
	f.Add([]byte(`{"a":"\ud800","a\ud800":1}`), uint8(3))
	f.Fuzz(func(t *testing.T, body []byte, which uint8) {
		typ := nameTypes[int(which)%len(nameTypes)]
		if json.Valid(body) {
			checkAgree(t, body, typ)
			return
		}
		checkNames(body, typ) // never panics nor loops
		var a, b ReleaseRequest
		errA := decodeStrict(body, &a)
		errB := decodeWith(checkNamesTokens, body, &b)
		if (errA == nil) != (errB == nil) {
			t.Fatalf("%q: decoding with the scanner says %v, with the token walk %v", body, errA, errB)
		}
	})
}

// decodeWith is decodeStrict with another name check.
func decodeWith(check func([]byte, reflect.Type) error, body []byte, v any) error {
	if err := check(body, reflect.TypeOf(v)); err != nil {
		return fmt.Errorf("%w: %v", ErrDecode, err)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", ErrDecode, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: data after the JSON object", ErrDecode)
	}
	return nil
}

// BenchmarkCheckNames compares the scanner with the token walk on a
// request the size of a real one.
func BenchmarkCheckNames(b *testing.B) {
	body := realSizeRequest(b)
	typ := reflect.TypeOf(&ReleaseRequest{})
	for _, c := range []struct {
		name  string
		check func([]byte, reflect.Type) error
	}{{"scanner", checkNames}, {"tokens", checkNamesTokens}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if err := c.check(body, typ); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
