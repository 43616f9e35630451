package cli

import (
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestImageReferencesCommands: reference values can be entered or imported
// from the command line before any guest boots, so that no first boot has
// to pin them; bad input is refused and stores nothing.
func TestImageReferencesCommands(t *testing.T) {
	var l cliLog
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	pass := secretFile(t, dir, "pass", "officer passphrase")
	l.run(t, 0, "init", "--data", data, "--passphrase-file", pass)
	src := filepath.Join(dir, "disk.raw")
	img := make([]byte, 1<<20)
	rand.Read(img)
	os.WriteFile(src, img, 0o644)
	l.run(t, 0, "image", "prepare", "--data", data, "--passphrase-file", pass, "--in", src, "--out", filepath.Join(dir, "disk.img"), "--name", "web", "--force")

	if out := l.run(t, 0, "image", "references", "web", "--data", data); !strings.Contains(out, "no reference values") {
		t.Fatalf("empty list: %s", out)
	}
	m1 := strings.Repeat("ab", 48)
	out := l.run(t, 0, "image", "references", "set", "web", "--measurement", m1, "--comment", "built by CI", "--data", data, "--passphrase-file", pass)
	if !strings.Contains(out, "version 1") {
		t.Fatalf("set: %s", out)
	}
	file := filepath.Join(dir, "refs.json")
	m2 := strings.Repeat("cd", 48)
	os.WriteFile(file, []byte(`{"measurements": ["`+m1+`", "`+m2+`"], "minimum_tcb": {"bootloader": 3, "tee": 0, "snp": 8, "microcode": 115}, "product": "Genoa"}`), 0o644)
	out = l.run(t, 0, "image", "references", "import", "web", "--file", file, "--data", data, "--passphrase-file", pass)
	if !strings.Contains(out, "version 2") {
		t.Fatalf("import: %s", out)
	}
	// Bad input: a short measurement, unknown fields, no such image.
	os.WriteFile(file, []byte(`{"measurements": ["abcd"]}`), 0o644)
	if out := l.run(t, 1, "image", "references", "import", "web", "--file", file, "--data", data, "--passphrase-file", pass); !strings.Contains(out, "measurement") {
		t.Fatalf("short measurement: %s", out)
	}
	os.WriteFile(file, []byte(`{"measurement": ["`+m1+`"]}`), 0o644)
	l.run(t, 1, "image", "references", "import", "web", "--file", file, "--data", data, "--passphrase-file", pass)
	l.run(t, 1, "image", "references", "set", "nosuch", "--measurement", m1, "--data", data, "--passphrase-file", pass)
	l.run(t, 2, "image", "references", "set", "web", "--data", data, "--passphrase-file", pass)

	out = l.run(t, 0, "image", "references", "web", "--json", "--data", data)
	var vs []struct {
		Version int `json:"version"`
		Values  struct {
			Measurements []string `json:"measurements"`
			Product      string   `json:"product"`
		} `json:"values"`
		Comment string `json:"comment"`
	}
	if err := json.Unmarshal([]byte(out), &vs); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if len(vs) != 2 || vs[0].Version != 2 || len(vs[0].Values.Measurements) != 2 || vs[0].Values.Product != "Genoa" ||
		vs[1].Version != 1 || vs[1].Comment != "built by CI" || len(vs[1].Values.Measurements) != 1 || vs[1].Values.Measurements[0] != m1 {
		t.Fatalf("versions after bad input: %+v", vs)
	}
	if out := l.run(t, 0, "audit", "export", "--data", data); !strings.Contains(out, "reference.set") {
		t.Fatalf("not audited: %s", out)
	}

	// With a second admin, trusting reference values by hand waits for
	// that admin's approval (two-person rule).
	bob := secretFile(t, dir, "bpass", "bob's passphrase two")
	l.run(t, 0, "officers", "add", "bob", "--role", "admin", "--new-passphrase-file", bob, "--data", data, "--passphrase-file", pass)
	m3 := strings.Repeat("ef", 48)
	out = l.run(t, 0, "image", "references", "set", "web", "--measurement", m3, "--data", data, "--officer", "admin", "--passphrase-file", pass)
	act := actionID.FindString(out)
	if act == "" || !strings.Contains(out, "Waiting for approval") {
		t.Fatalf("set by one of two admins: %s", out)
	}
	if out := l.run(t, 0, "image", "references", "web", "--data", data); strings.Contains(out, m3) {
		t.Fatalf("reference values trusted by one admin: %s", out)
	}
	l.run(t, 0, "requests", "approve", act, "--data", data, "--officer", "bob", "--passphrase-file", bob)
	if out := l.run(t, 0, "image", "references", "web", "--data", data); !strings.Contains(out, m3) {
		t.Fatalf("reference values after the second admin: %s", out)
	}
}
