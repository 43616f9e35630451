package luks2

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestTokenConsoles: a token written before the console list existed (one
// release_url and pin) still names its console; a new token names all of
// them, its first also as release_url for older agents; both survive the
// header round trip.
func TestTokenConsoles(t *testing.T) {
	a := Console{URL: "https://a.example:8443", SPKIPin: "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="}
	b := Console{URL: "https://b.example:8443", SPKIPin: "0000000000000000000000000000000000000000000000000000000000000000"}

	var old tokenJSON
	if err := json.Unmarshal([]byte(`{"type":"keyholder","keyslots":["0"],"volume_id":"vol_1","generation":2,"release_url":"https://a.example:8443","spki_sha256":"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="}`), &old); err != nil {
		t.Fatal(err)
	}
	if got := old.Token.Endpoints(); !reflect.DeepEqual(got, []Console{a}) {
		t.Errorf("old token's consoles: %+v", got)
	}

	tok := Token{VolumeID: "vol_1", Generation: 2}.WithConsoles([]Console{a, b, a})
	raw, err := json.Marshal(tokenJSON{Type: TokenType, Keyslots: []string{"0"}, Token: tok})
	if err != nil {
		t.Fatal(err)
	}
	var generic map[string]any
	json.Unmarshal(raw, &generic)
	if generic["release_url"] != a.URL || generic["spki_sha256"] != a.SPKIPin {
		t.Errorf("older agents read %v %v; want the first console", generic["release_url"], generic["spki_sha256"])
	}
	if got := tok.Endpoints(); !reflect.DeepEqual(got, []Console{a, b}) {
		t.Errorf("new token's consoles: %+v", got)
	}
	if one := (Token{VolumeID: "vol_1", Generation: 1}).WithConsoles([]Console{b}); one.Consoles != nil || one.ReleaseURL != b.URL {
		t.Errorf("a single console is written in the old form: %+v", one)
	}

	// Through a real header: format, change the token, read it back.
	path := filepath.Join(t.TempDir(), "v.img")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	key := make([]byte, 64)
	single := Token{VolumeID: "vol_1", Generation: 1}.WithConsoles([]Console{a})
	v, err := Format(f, key, Options{Keyslots: []Keyslot{{Secret: []byte("release secret"), KDF: testRelease}}, Token: &single})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.SetToken(f, tok); err != nil {
		t.Fatal(err)
	}
	v2, err := Open(f)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := v2.Token()
	if !ok || !reflect.DeepEqual(got.Endpoints(), []Console{a, b}) || got.ReleaseURL != a.URL {
		t.Errorf("token read back: %+v", got)
	}
}
