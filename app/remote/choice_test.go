package remote

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestChoiceFile(t *testing.T) {
	pin := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name, in, wantErr string
	}{
		{"local", `{"mode":"local"}`, ""},
		{"remote pinned", `{"mode":"remote","url":"https://console.example:8420","pin":"` + pin + `"}`, ""},
		{"remote CA", `{"mode":"remote","url":"https://console.example","ca_file":"/etc/ca.pem"}`, ""},
		{"plain http", `{"mode":"remote","url":"http://console.example","pin":"` + pin + `"}`, "https://"},
		{"unpinned", `{"mode":"remote","url":"https://console.example"}`, "must be pinned"},
		{"a token", `{"mode":"remote","url":"https://console.example","pin":"` + pin + `","token":"secret"}`, "unknown field"},
		{"local with URL", `{"mode":"local","url":"https://console.example"}`, "names no remote"},
		{"no mode", `{}`, "neither"},
		{"two values", `{"mode":"local"}{"mode":"local"}`, "more than one"},
		{"not JSON", `mode=local`, "invalid character"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseChoice([]byte(tc.in))
			if tc.wantErr == "" && err != nil {
				t.Fatal(err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestChoiceSaveLoadForget(t *testing.T) {
	p := filepath.Join(t.TempDir(), "keyholder", "desktop.json")
	if _, ok, err := LoadChoice(p); ok || err != nil {
		t.Fatalf("no file: %v %v", ok, err)
	}
	c := Choice{Mode: ModeRemote, URL: "https://console.example:8420", Pin: strings.Repeat("0f", 32)}
	if err := SaveChoice(p, c); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("choice file: %v %v", fi.Mode(), err)
	}
	got, ok, err := LoadChoice(p)
	if err != nil || !ok || got != c {
		t.Fatalf("loaded %+v %v %v", got, ok, err)
	}
	if err := SaveChoice(p, Choice{Mode: ModeRemote, URL: "http://console.example", Pin: c.Pin}); err == nil {
		t.Fatal("saved a plain-http console")
	}
	if got, _, _ := LoadChoice(p); got != c {
		t.Fatalf("a refused save changed the file: %+v", got)
	}
	if err := os.WriteFile(p, []byte("{broken"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := LoadChoice(p); ok || err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("broken file: %v %v", ok, err)
	}
	if err := ForgetChoice(p); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := LoadChoice(p); ok || err != nil {
		t.Fatalf("after forget: %v %v", ok, err)
	}
}

// FuzzParseChoice: a choice file either is refused or names a console the
// client accepts (https, pinned), and survives a save and a load unchanged.
func FuzzParseChoice(f *testing.F) {
	f.Add([]byte(`{"mode":"local"}`))
	f.Add([]byte(`{"mode":"remote","url":"https://console.example:8420","pin":"` + strings.Repeat("ab", 32) + `"}`))
	f.Add([]byte(`{"mode":"remote","url":"https://[::1]:8420/","ca_file":"ca.pem"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseChoice(b)
		if err != nil {
			return
		}
		if c.Mode == ModeRemote {
			if _, _, err := parseURL(c.URL); err != nil {
				t.Fatalf("accepted URL %q: %v", c.URL, err)
			}
			if err := checkTrust(c.Pin, c.CAFile); err != nil {
				t.Fatalf("accepted trust %+v: %v", c, err)
			}
		}
		p := filepath.Join(t.TempDir(), "desktop.json")
		if err := SaveChoice(p, c); err != nil {
			t.Fatalf("save %+v: %v", c, err)
		}
		back, ok, err := LoadChoice(p)
		if err != nil || !ok || back != c {
			t.Fatalf("round trip %+v -> %+v (%v)", c, back, err)
		}
	})
}
