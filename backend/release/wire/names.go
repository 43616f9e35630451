package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
)

// checkNames reads the JSON value at the start of body, to be decoded into
// a value of type t, and refuses what encoding/json would take silently: an
// object that names a field twice (encoding/json keeps the last), and a
// struct's field spelled otherwise than its tag (encoding/json matches names
// without regard to case, and even folds the Kelvin sign to k). Either way a
// request could carry a second value that another parser reads, and two
// parsers could disagree about what was checked. It also bounds nesting.
//
// It looks only at names and structure: on a body that is not JSON it may
// stop early without an error, and the decoder that follows refuses it. On
// JSON it finds what a walk over encoding/json's tokens finds (the test's
// reference, checkNamesTokens), at a tenth of the cost: a release request
// is mostly long base64 strings, which it skips without copying.
func checkNames(body []byte, t reflect.Type) error {
	s := nameScanner{b: body}
	return s.value(t, 0)
}

// maxDepth bounds the nesting of objects and arrays in a request.
const maxDepth = 16

var errTooDeep = errors.New("JSON nested too deeply")

type nameScanner struct {
	b []byte
	i int
}

// errStop ends a scan of something that is not JSON; checkNames then
// reports nothing and leaves the verdict to the decoder.
var errStop = errors.New("not JSON")

func (s *nameScanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\r', '\n':
			s.i++
		default:
			return
		}
	}
}

// value scans one value of type t (nil: unknown) at nesting depth d.
func (s *nameScanner) value(t reflect.Type, d int) error {
	s.ws()
	if s.i >= len(s.b) {
		return nil
	}
	switch s.b[s.i] {
	case '{':
		if d+1 > maxDepth {
			return errTooDeep
		}
		return s.object(deref(t), d+1)
	case '[':
		if d+1 > maxDepth {
			return errTooDeep
		}
		return s.array(deref(t), d+1)
	case '"':
		s.str()
		return nil
	}
	// A number, true, false or null: up to the next delimiter.
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ',', '}', ']', ' ', '\t', '\r', '\n':
			return nil
		}
		s.i++
	}
	return nil
}

// str reads a string at s.i: its raw bytes between the quotes, whether they
// hold an escape or a byte outside ASCII, and whether it ends.
func (s *nameScanner) str() (raw []byte, special, ok bool) {
	start := s.i + 1
	j := start
	for {
		k := bytes.IndexAny(s.b[j:], "\"\\")
		if k < 0 {
			s.i = len(s.b)
			return nil, false, false
		}
		j += k
		if s.b[j] == '"' {
			break
		}
		special = true
		j += 2 // the backslash and the byte it escapes
		if j > len(s.b) {
			s.i = len(s.b)
			return nil, false, false
		}
	}
	raw = s.b[start:j]
	s.i = j + 1
	if !special {
		for _, c := range raw {
			if c >= 0x80 {
				special = true
				break
			}
		}
	}
	return raw, special, true
}

// key reads an object's member name as encoding/json reads it.
func (s *nameScanner) key() (string, error) {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return "", errStop
	}
	q := s.i
	raw, special, ok := s.str()
	if !ok {
		return "", errStop
	}
	if !special {
		return string(raw), nil
	}
	// Escapes and bytes outside ASCII (invalid UTF-8 becomes U+FFFD): let
	// encoding/json say what the name is.
	var k string
	if err := json.Unmarshal(s.b[q:s.i], &k); err != nil {
		return "", errStop
	}
	return k, nil
}

// object scans an object whose type is t (nil: unknown) at depth d.
func (s *nameScanner) object(t reflect.Type, d int) error {
	s.i++ // {
	var fields map[string]reflect.Type
	var elem reflect.Type
	switch {
	case t == nil:
	case t.Kind() == reflect.Struct:
		fields = jsonFields(t)
	case t.Kind() == reflect.Map:
		elem = t.Elem()
	}
	var seen []string // a request's objects have a few members: a slice beats a map
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return nil
	}
	for {
		s.ws()
		k, err := s.key()
		if err != nil {
			return stop(err)
		}
		for _, o := range seen {
			if o == k {
				return fmt.Errorf("field %q appears twice", k)
			}
		}
		seen = append(seen, k)
		vt := elem
		if fields != nil {
			ft, ok := fields[k]
			if !ok {
				return fmt.Errorf("unknown field %q", k)
			}
			vt = ft
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return nil
		}
		s.i++
		if err := s.value(vt, d); err != nil {
			return err
		}
		s.ws()
		if s.i >= len(s.b) {
			return nil
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return nil
		}
	}
}

// array scans an array whose type is t (nil: unknown) at depth d.
func (s *nameScanner) array(t reflect.Type, d int) error {
	s.i++ // [
	var elem reflect.Type
	if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
		elem = t.Elem()
	}
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		return nil
	}
	for {
		at := s.i
		if err := s.value(elem, d); err != nil {
			return err
		}
		s.ws()
		if s.i >= len(s.b) || s.i == at {
			return nil
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case ']':
			s.i++
			return nil
		default:
			return nil
		}
	}
}

// stop turns errStop into the end of the scan without an error.
func stop(err error) error {
	if err == errStop {
		return nil
	}
	return err
}

// deref is t without its pointers (nil stays nil).
func deref(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// fieldNames caches jsonFields.
var fieldNames sync.Map // reflect.Type -> map[string]reflect.Type

// jsonFields maps a struct's JSON field names, exactly as encoding/json
// writes them, to the fields' types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	if m, ok := fieldNames.Load(t); ok {
		return m.(map[string]reflect.Type)
	}
	m := map[string]reflect.Type{}
	for f := range t.Fields() {
		if !f.IsExported() && !f.Anonymous {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if ft := deref(f.Type); f.Anonymous && name == "" && ft.Kind() == reflect.Struct {
			for k, v := range jsonFields(ft) {
				m[k] = v
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		m[name] = f.Type
	}
	fieldNames.Store(t, m)
	return m
}
