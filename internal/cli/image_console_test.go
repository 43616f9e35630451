package cli

import (
	"reflect"
	"strings"
	"testing"
)

// TestConsoleFlag: --console is repeatable and takes comma lists, each
// entry URL or URL#PIN; anything but an https URL or a well-formed pin is
// refused with a clear error.
func TestConsoleFlag(t *testing.T) {
	pin := strings.Repeat("ab", 32)
	var l consoleList
	for _, v := range []string{"https://a.example:8443#" + pin, "https://b.example:8443, https://c.example:8443/v1#47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="} {
		if err := l.Set(v); err != nil {
			t.Fatal(err)
		}
	}
	want := consoleList{{URL: "https://a.example:8443", SPKIPin: pin}, {URL: "https://b.example:8443"},
		{URL: "https://c.example:8443/v1", SPKIPin: "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="}}
	if !reflect.DeepEqual(l, want) {
		t.Fatalf("parsed %+v", l)
	}
	for _, bad := range []string{"http://a.example:8443", "a.example:8443", "https://a.example:8443#nopin", "https://u:p@a.example", "https://a.example?x=1"} {
		var l consoleList
		if err := l.Set(bad); err == nil || !strings.Contains(err.Error(), "console") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
