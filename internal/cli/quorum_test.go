package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var actionID = regexp.MustCompile(`act_[0-9a-f]+`)

// TestCustodyCommandsNeedTwoAdmins: from the command line too, once a
// console has two admins, adding an officer, splitting the master key and
// exporting a backup wait for the second admin; the shares and the backup
// go once to the admin who asked.
func TestCustodyCommandsNeedTwoAdmins(t *testing.T) {
	dir := t.TempDir()
	var l cliLog
	alice := secretFile(t, dir, "apass", "alice's passphrase one")
	bob := secretFile(t, dir, "bpass", "bob's passphrase two")
	carol := secretFile(t, dir, "cpass", "carol's passphrase three")
	asAlice := []string{"--data", dir, "--officer", "alice", "--passphrase-file", alice}
	asBob := []string{"--data", dir, "--officer", "bob", "--passphrase-file", bob}
	run := func(code int, args ...string) string { t.Helper(); return l.run(t, code, args...) }
	run(0, "init", "--data", dir, "--officer", "alice", "--passphrase-file", alice)

	// Alone, alice acts at once.
	if out := run(0, append([]string{"officers", "add", "bob", "--role", "admin", "--new-passphrase-file", bob}, asAlice...)...); !strings.Contains(out, "Added officer bob (admin)") {
		t.Fatalf("first admin adds a second: %s", out)
	}
	// Now one admin's request waits.
	out := run(0, append([]string{"officers", "add", "carol", "--role", "approver", "--new-passphrase-file", carol}, asAlice...)...)
	add := actionID.FindString(out)
	if add == "" || !strings.Contains(out, "Waiting for approval") || !strings.Contains(out, "1 of 2") {
		t.Fatalf("second officer: %s", out)
	}
	if out := run(0, "officers", "list", "--data", dir); strings.Contains(out, "carol") {
		t.Fatalf("carol added by one admin: %s", out)
	}
	run(0, append([]string{"requests", "approve", add}, asBob...)...)
	if out := run(0, "officers", "list", "--data", dir); !strings.Contains(out, "carol") {
		t.Fatalf("carol after the second admin: %s", out)
	}

	// Recovery shares.
	out = run(0, append([]string{"split-key", "--threshold", "2", "--shares", "3"}, asAlice...)...)
	split := actionID.FindString(out)
	if split == "" || strings.Contains(out, "share 1 of 3") || !strings.Contains(out, "--collect "+split) {
		t.Fatalf("split by one admin: %s", out)
	}
	run(1, append([]string{"split-key", "--collect", split}, asAlice...)...) // not approved yet
	run(0, append([]string{"requests", "approve", split}, asBob...)...)
	run(1, append([]string{"split-key", "--collect", split}, asBob...)...) // bob did not ask
	out = run(0, append([]string{"split-key", "--collect", split}, asAlice...)...)
	if strings.Count(out, "share ") != 3 {
		t.Fatalf("collected shares: %s", out)
	}
	if !strings.Contains(out, "any 2 of 3") {
		t.Fatalf("collected shares: %s", out)
	}
	if out := run(1, append([]string{"split-key", "--collect", split}, asAlice...)...); strings.Contains(out, "share 1 of 3") {
		t.Fatalf("shares delivered twice: %s", out)
	}

	// Backup.
	file := filepath.Join(dir, "console.khbackup")
	out = run(0, append([]string{"backup", "--out", file}, asBob...)...)
	exp := actionID.FindString(out)
	if exp == "" {
		t.Fatalf("backup by one admin: %s", out)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatalf("backup written before the quorum: %v", err)
	}
	run(0, append([]string{"requests", "approve", exp}, asAlice...)...)
	run(1, append([]string{"backup", "--out", file, "--collect", exp}, asAlice...)...)
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatalf("backup written for the wrong admin: %v", err)
	}
	run(0, append([]string{"backup", "--out", file, "--collect", exp}, asBob...)...)
	if st, err := os.Stat(file); err != nil || st.Size() == 0 {
		t.Fatalf("backup: %v", err)
	}
	run(1, append([]string{"backup", "--out", file + "2", "--collect", exp}, asBob...)...)
}
