package remote

import (
	"encoding/json"
	"strings"
	"testing"
)

type got struct {
	name, data string
}

func collect(t *testing.T, stream string) ([]got, int, error) {
	t.Helper()
	var evs []got
	lines := 0
	err := readEvents(strings.NewReader(stream), func() { lines++ }, func(name string, data json.RawMessage) {
		evs = append(evs, got{name, string(data)})
	})
	return evs, lines, err
}

// TestReadEvents: well-formed events pass in order, a gap in seq is
// announced with a resync first, malformed messages are skipped, and the
// console cannot raise the desktop's own connection events.
func TestReadEvents(t *testing.T) {
	stream := strings.Join([]string{
		`: keepalive`,
		`data: {"seq":1,"name":"approval:new","data":{"id":"r1"}}`,
		``,
		`data: {"seq":2,`,
		`data: "name":"audit:append","data":7}`,
		``,
		`data: not json`,
		``,
		`data: {"seq":3,"name":"connection:changed","data":{"state":"connected"}}`,
		``,
		`data: {"seq":4,"name":"resync"}`,
		``,
		`data: {"seq":9,"name":"fleet:changed","data":null}`,
		``,
		``,
	}, "\n")
	evs, lines, err := collect(t, stream)
	if err != nil {
		t.Fatal(err)
	}
	want := []got{
		{"approval:new", `{"id":"r1"}`},
		{"audit:append", `7`},
		{EventResync, ""},
		{"fleet:changed", "null"},
	}
	if len(evs) != len(want) {
		t.Fatalf("events %q, want %q", evs, want)
	}
	for i := range want {
		if evs[i] != want[i] {
			t.Errorf("event %d: %q, want %q", i, evs[i], want[i])
		}
	}
	if lines != strings.Count(stream, "\n") {
		t.Errorf("alive called %d times for %d lines", lines, strings.Count(stream, "\n"))
	}
}

// TestReadEventsBounded: an event that never ends is refused at the line
// limit instead of growing without bound.
func TestReadEventsBounded(t *testing.T) {
	line := "data: " + strings.Repeat("x", 1<<20) + "\n"
	_, _, err := collect(t, strings.Repeat(line, 5))
	if err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("an endless event: %v", err)
	}
}

// FuzzReadEvents: any stream parses without a panic, never emits the
// desktop's own connection event, and every event it emits is named.
func FuzzReadEvents(f *testing.F) {
	f.Add([]byte("data: {\"seq\":1,\"name\":\"a\",\"data\":{}}\n\ndata: {\"seq\":3,\"name\":\"b\"}\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		readEvents(strings.NewReader(string(b)), func() {}, func(name string, data json.RawMessage) {
			if name == "" || name == EventConnectionChanged {
				t.Fatalf("emitted %q", name)
			}
			if data != nil && !json.Valid(data) {
				t.Fatalf("emitted invalid JSON %q", data)
			}
		})
	})
}
