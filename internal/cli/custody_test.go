package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"keyholder/backend/custody"
	"keyholder/backend/release"
	"keyholder/backend/shamir"
	"keyholder/backend/store"
)

// cliLog runs commands and keeps what they printed; cfg, when set, replaces
// testConfig.
type cliLog struct {
	out, err bytes.Buffer
	cfg      *Config
}

func (l *cliLog) run(t *testing.T, want int, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	cfg := testConfig
	if l.cfg != nil {
		cfg = *l.cfg
	}
	code := Run(cfg, args, strings.NewReader(""), &out, &errb)
	l.out.Write(out.Bytes())
	l.err.Write(errb.Bytes())
	if code != want {
		t.Fatalf("keyholder %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, want, out.String(), errb.String())
	}
	return out.String() + errb.String()
}

func secretFile(t *testing.T, dir, name, pass string) string {
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(pass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCustodyLifecycleLeavesNoKeyInPlaintext runs a whole life cycle through
// the command line (init, add officer, secrets, rotation, recovery shares,
// backup, restore, audit) and then scans every file the run made, the
// database with its WAL and shm, the backup and all command output for the
// master key, the audit signing key and every release secret, raw, hex and
// base64.
func TestCustodyLifecycleLeavesNoKeyInPlaintext(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	tmp := filepath.Join(root, "tmp")
	os.Mkdir(tmp, 0o700)
	t.Setenv("TMPDIR", tmp)
	data, data2 := filepath.Join(root, "a"), filepath.Join(root, "b")
	alice := secretFile(t, root, "alice.pass", "alice's long passphrase")
	bob := secretFile(t, root, "bob.pass", "bob's long passphrase")
	backup := filepath.Join(root, "console.khbackup")
	var l cliLog

	l.run(t, 0, "init", "--data", data, "--officer", "alice", "--passphrase-file", alice)
	l.run(t, 1, "init", "--data", data, "--officer", "alice", "--passphrase-file", alice)
	l.run(t, 0, "officers", "add", "bob", "--role", "approver", "--new-passphrase-file", bob, "--data", data, "--officer", "alice", "--passphrase-file", alice)
	l.run(t, 1, "officers", "add", "eve", "--role", "admin", "--new-passphrase-file", bob, "--data", data, "--officer", "bob", "--passphrase-file", bob)
	if out := l.run(t, 0, "officers", "list", "--data", data); !strings.Contains(out, "bob") || !strings.Contains(out, "approver") {
		t.Fatalf("officers list: %s", out)
	}
	shareOut := l.run(t, 0, "split-key", "--threshold", "2", "--shares", "3", "--data", data, "--officer", "alice", "--passphrase-file", alice)

	// Secrets, as image preparation and the release engine make them.
	var secrets [][]byte
	db, err := store.Open(ctx, filepath.Join(data, "keyholder.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	svc := custody.New(db, testConfig.Custody)
	if _, err := svc.Unlock(ctx, "bob", []byte("bob's long passphrase")); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		id, _, sec, err := svc.CreateVolume(ctx, "officer:bob", "", "disk")
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, sec)
		gen, err := svc.Rotate(ctx, "officer:bob", id)
		if err != nil {
			t.Fatal(err)
		}
		if err := svc.ConfirmRotation(ctx, "guest:vm", id, gen); err != nil {
			t.Fatal(err)
		}
		sec2, err := svc.ReleaseSecret(ctx, id, gen)
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, sec2)
	}
	pub, _, _ := svc.AuditPublicKey(ctx)
	svc.Close(ctx)

	// The release listener's TLS identity travels with the backup, so a
	// restored console keeps the pin that image manifests carry.
	tlsKey := []byte("-----BEGIN PRIVATE KEY-----\nnot a real key\n-----END PRIVATE KEY-----\n")
	os.WriteFile(filepath.Join(data, release.TLSKeyFile), tlsKey, 0o600)
	// A backup carries every secret: admins only (bob is an approver).
	if out := l.run(t, 1, "backup", "--out", backup, "--data", data, "--officer", "bob", "--passphrase-file", bob); !strings.Contains(out, "only an admin") {
		t.Fatalf("approver's backup: %s", out)
	}
	l.run(t, 0, "backup", "--out", backup, "--data", data, "--officer", "alice", "--passphrase-file", alice)
	l.run(t, 0, "restore", "--in", backup, "--data", data2, "--officer", "alice", "--passphrase-file", alice)
	if got, err := os.ReadFile(filepath.Join(data2, release.TLSKeyFile)); err != nil || !bytes.Equal(got, tlsKey) {
		t.Fatalf("the release TLS key did not travel with the backup: %v", err)
	}
	l.run(t, 1, "restore", "--in", backup, "--data", data2, "--officer", "alice", "--passphrase-file", alice)
	l.run(t, 1, "restore", "--in", backup, "--data", filepath.Join(root, "c"), "--officer", "alice", "--passphrase-file", bob)
	l.run(t, 0, "audit", "verify", "--data", data2, "--officer", "alice", "--passphrase-file", alice)
	l.run(t, 0, "audit", "export", "--json", "--data", data2, "--out", filepath.Join(root, "audit.jsonl"))
	l.run(t, 0, "audit", "verify", "--data", data)

	// Recover on the restored console with two of the three shares.
	var lines []string
	for _, ln := range strings.Split(shareOut, "\n") {
		if strings.HasPrefix(ln, "share ") {
			lines = append(lines, ln)
		}
	}
	if len(lines) != 3 {
		t.Fatalf("split-key printed %d shares:\n%s", len(lines), shareOut)
	}
	sharesFile := secretFile(t, root, "shares.txt", lines[0]+"\n"+lines[2])
	newPass := secretFile(t, root, "new.pass", "after recovery passphrase")
	l.run(t, 1, "recover", "--officer", "alice", "--shares-file", secretFile(t, root, "one.txt", lines[1]), "--new-passphrase-file", newPass, "--data", data2)
	l.run(t, 0, "recover", "--officer", "alice", "--shares-file", sharesFile, "--new-passphrase-file", newPass, "--data", data2)
	l.run(t, 0, "audit", "verify", "--data", data2, "--officer", "alice", "--passphrase-file", newPass)

	// The master key, from the shares (the console never prints it).
	var shares []shamir.Share
	for _, ln := range lines {
		_, text, _ := strings.Cut(ln, ": ")
		sh, err := shamir.Parse(text)
		if err != nil {
			t.Fatal(err)
		}
		shares = append(shares, sh)
	}
	master, err := shamir.Combine(shares)
	if err != nil || len(master) != 32 {
		t.Fatal(err)
	}
	needles := map[string][]byte{"master key": master}
	for i, s := range secrets {
		needles["release secret "+string(rune('A'+i))] = s
	}

	// Keep a connection open so the WAL and shm files exist during one scan.
	db2, err := store.Open(ctx, filepath.Join(data2, "keyholder.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db2.Exec(`INSERT INTO settings(key, value, updated_at) VALUES ('x', '1', 'now')`); err != nil {
		t.Fatal(err)
	}
	var wal bool
	scanned := scanForKeys(t, root, needles, &wal)
	db2.Close()
	scanned += scanForKeys(t, root, needles, nil)
	if !wal {
		t.Fatal("no WAL file was scanned; the scan would not see a key written there")
	}
	for name, b := range map[string][]byte{"stdout": l.out.Bytes(), "stderr": l.err.Bytes()} {
		for what, n := range needles {
			if hit := findKey(b, n); hit != "" {
				t.Errorf("%s of the commands holds the %s (%s)", name, what, hit)
			}
		}
	}
	if scanned < 8 {
		t.Fatalf("only %d files scanned", scanned)
	}
	if len(pub) == 0 {
		t.Fatal("no audit key")
	}
}

func findKey(hay, key []byte) string {
	forms := map[string][]byte{
		"raw":    key,
		"hex":    []byte(hex.EncodeToString(key)),
		"HEX":    []byte(strings.ToUpper(hex.EncodeToString(key))),
		"base64": []byte(base64.StdEncoding.EncodeToString(key)[:40]),
		"b64url": []byte(base64.RawURLEncoding.EncodeToString(key)[:40]),
	}
	for name, f := range forms {
		if bytes.Contains(hay, f) {
			return name
		}
	}
	return ""
}

func scanForKeys(t *testing.T, root string, needles map[string][]byte, sawWAL *bool) int {
	t.Helper()
	n := 0
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		n++
		if sawWAL != nil && strings.HasSuffix(path, "-wal") && len(b) > 0 {
			*sawWAL = true
		}
		for what, k := range needles {
			if hit := findKey(b, k); hit != "" {
				t.Errorf("%s holds the %s (%s)", path, what, hit)
			}
		}
		return nil
	})
	return n
}

func TestCustodyCLIRefusals(t *testing.T) {
	root := t.TempDir()
	data := filepath.Join(root, "a")
	pass := secretFile(t, root, "p", "a long enough passphrase")
	wrong := secretFile(t, root, "w", "not the passphrase at all")
	backup := filepath.Join(root, "b.khbackup")
	var l cliLog
	l.run(t, 0, "init", "--data", data, "--officer", "alice", "--passphrase-file", pass)
	l.run(t, 0, "backup", "--out", backup, "--data", data, "--passphrase-file", pass)
	file, err := os.ReadFile(backup)
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(file)
	flipped[len(flipped)-20] ^= 0x40
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"wrong passphrase", []string{"backup", "--out", filepath.Join(root, "x"), "--data", data, "--passphrase-file", wrong}, "wrong officer name or passphrase"},
		{"short new passphrase", []string{"init", "--data", filepath.Join(root, "n"), "--passphrase-file", secretFile(t, root, "s", "short")}, "too short"},
		{"tampered backup", []string{"restore", "--in", writeTemp(t, root, flipped), "--data", filepath.Join(root, "r1"), "--passphrase-file", pass}, "damaged, truncated or tampered"},
		{"truncated backup", []string{"restore", "--in", writeTemp(t, root, file[:len(file)-100]), "--data", filepath.Join(root, "r2"), "--passphrase-file", pass}, "truncated"},
		{"not a backup", []string{"restore", "--in", pass, "--data", filepath.Join(root, "r3"), "--passphrase-file", pass}, "not a Keyholder backup"},
		{"typo in a share", []string{"recover", "--officer", "alice", "--shares-file", secretFile(t, root, "sh", "KHS1-AEAQE-AYEAI-AQCK3-POFT2-B"), "--new-passphrase-file", pass, "--data", data}, "checksum"},
		{"not initialised", []string{"backup", "--out", filepath.Join(root, "y"), "--data", filepath.Join(root, "empty"), "--passphrase-file", pass}, "keyholder init"},
		{"no passphrase and no terminal", []string{"backup", "--out", filepath.Join(root, "z"), "--data", data}, "--passphrase-file"},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		code := run(c.args, strings.NewReader(""), &out, &errb)
		if code == 0 || !strings.Contains(errb.String(), c.want) {
			t.Errorf("%s: exit %d, stderr %q, want an error containing %q", c.name, code, errb.String(), c.want)
		}
	}
	for _, p := range []string{"x", "y", "z", "r1", "r2", "r3"} {
		if _, err := os.Stat(filepath.Join(root, p)); err == nil && p != "y" {
			if ents, _ := os.ReadDir(filepath.Join(root, p)); len(ents) > 0 {
				t.Errorf("a refused command left %s behind", p)
			}
		}
	}
	// Audit tampering is found and named by the command.
	db, err := store.Open(context.Background(), filepath.Join(data, "keyholder.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Exec(`UPDATE audit_log SET reason = 'nothing happened' WHERE seq = 2`)
	db.Close()
	var out, errb bytes.Buffer
	if code := run([]string{"audit", "verify", "--data", data}, strings.NewReader(""), &out, &errb); code != 1 || !strings.Contains(errb.String(), "first bad entry is 2") {
		t.Fatalf("audit verify after tampering: exit %d, %s", code, errb.String())
	}
}

func writeTemp(t *testing.T, dir string, b []byte) string {
	f, err := os.CreateTemp(dir, "in-*")
	if err != nil {
		t.Fatal(err)
	}
	f.Write(b)
	f.Close()
	return f.Name()
}

func TestOfficersCLI(t *testing.T) {
	root := t.TempDir()
	data := filepath.Join(root, "a")
	admin := secretFile(t, root, "admin", "admin's long passphrase")
	bob := secretFile(t, root, "bob", "bob's long passphrase")
	bob2 := secretFile(t, root, "bob2", "bob's newer passphrase")
	var l cliLog
	l.run(t, 0, "init", "--data", data, "--officer", "root", "--passphrase-file", admin)
	as := []string{"--data", data, "--officer", "root", "--passphrase-file", admin}
	steps := []struct {
		args []string
		want int
		out  string
	}{
		{append([]string{"officers", "add", "bob", "--role", "viewer", "--new-passphrase-file", bob}, as...), 0, "Added officer bob (viewer)"},
		{append([]string{"officers", "role", "bob", "approver"}, as...), 0, "bob is now approver"},
		{append([]string{"officers", "role", "root", "viewer"}, as...), 1, "last admin"},
		{append([]string{"officers", "remove", "root"}, as...), 1, "last admin"},
		{[]string{"officers", "passwd", "--data", data, "--officer", "bob", "--passphrase-file", bob, "--new-passphrase-file", bob2}, 0, "Passphrase changed"},
		{[]string{"officers", "list", "--json", "--data", data}, 0, `"role":"approver"`},
		{[]string{"audit", "export", "--data", data}, 0, "officer.passphrase"},
		{[]string{"audit", "verify", "--json", "--data", data, "--officer", "bob", "--passphrase-file", bob2}, 0, `"key_authenticated":true`},
		{[]string{"audit", "verify", "--data", data, "--officer", "bob", "--passphrase-file", bob}, 1, "wrong officer name or passphrase"},
		{append([]string{"officers", "remove", "bob"}, as...), 0, "Removed officer bob"},
		{[]string{"officers", "frobnicate", "--data", data}, 2, "unknown subcommand"},
	}
	for _, s := range steps {
		if out := l.run(t, s.want, s.args...); !strings.Contains(out, s.out) {
			t.Fatalf("keyholder %s: output %q, want %q", strings.Join(s.args, " "), out, s.out)
		}
	}
}

func TestPassphraseFromStandardInput(t *testing.T) {
	data := filepath.Join(t.TempDir(), "a")
	for _, c := range []struct {
		name, stdin string
		args        []string
		want        int
	}{
		{"init from stdin", "a passphrase from stdin\n", []string{"init", "--data", data, "--passphrase-file", "-"}, 0},
		{"two passphrases, CRLF", "a passphrase from stdin\r\nthe new officer's one\r\n", []string{"officers", "add", "x", "--data", data, "--passphrase-file", "-", "--new-passphrase-file", "-"}, 0},
		{"wrong one", "another passphrase\n", []string{"split-key", "--data", data, "--passphrase-file", "-"}, 1},
		{"empty", "", []string{"split-key", "--data", data, "--passphrase-file", "-"}, 2},
	} {
		var out, errb bytes.Buffer
		if code := run(c.args, strings.NewReader(c.stdin), &out, &errb); code != c.want {
			t.Errorf("%s: exit %d, want %d: %s", c.name, code, c.want, errb.String())
		}
	}
}
