package cli

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"keyholder/backend/custody"
	"keyholder/backend/hsm/hsmtest"
	"keyholder/backend/store"
)

// TestAutoUnsealCommands: keyholder unseal setup against a real SoftHSM2
// token; a console started afterwards (a new store handle and key service,
// as serve makes them) unlocks itself without any officer; a wrong PIN, a
// missing module or an absent token leave it locked with the reason in the
// log and in State; after keyholder unseal remove the next start is locked.
// The PIN appears in no output, log or reason.
func TestAutoUnsealCommands(t *testing.T) {
	module := hsmtest.Token(t, "kh-cli", "pin-4711")
	root := t.TempDir()
	data := filepath.Join(root, "data")
	alice := secretFile(t, root, "alice", "correct horse battery")
	pin := secretFile(t, root, "pin", "pin-4711")
	wrongPin := secretFile(t, root, "wrong", "pin-0000")
	var l cliLog
	l.run(t, 0, "init", "--data", data, "--officer", "alice", "--passphrase-file", alice)
	l.run(t, 0, "unseal", "status", "--data", data)
	l.run(t, 2, "unseal", "setup", "--data", data, "--officer", "alice", "--passphrase-file", alice, "--token-label", "kh-cli", "--pin-file", pin)
	out := l.run(t, 0, "unseal", "setup", "--data", data, "--officer", "alice", "--passphrase-file", alice,
		"--pkcs11-module", module, "--token-label", "kh-cli", "--pin-file", pin)
	if !strings.Contains(out, "Created AES key") || !strings.Contains(out, "set up") {
		t.Fatalf("setup said %q", out)
	}
	if out := l.run(t, 0, "unseal", "status", "--data", data); !strings.Contains(out, `token "kh-cli"`) {
		t.Fatalf("status said %q", out)
	}

	// start is what serve does at start: a fresh store handle and key
	// service, then autoUnsealAtStart with the flags given.
	start := func(pf *pkcs11Flags, enabled bool) (bool, custody.State, string) {
		t.Helper()
		ctx := context.Background()
		db, err := store.Open(ctx, filepath.Join(data, "keyholder.db"), store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		cust := custody.New(db, testConfig.Custody)
		defer cust.Close(ctx)
		var logBuf bytes.Buffer
		env := &cliEnv{cfg: testConfig, stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard, dataDir: data}
		ok := autoUnsealAtStart(ctx, slog.New(slog.NewTextHandler(&logBuf, nil)), cust, pf, env, enabled)
		st, err := cust.State(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ok != st.Unlocked || ok != cust.Unlocked() {
			t.Fatalf("autoUnsealAtStart said %v, the service %v", ok, st.Unlocked)
		}
		if strings.Contains(logBuf.String()+st.LockedReason, "pin-4711") || strings.Contains(logBuf.String()+st.LockedReason, "pin-0000") {
			t.Fatalf("the PIN leaked: %s %s", logBuf.String(), st.LockedReason)
		}
		return ok, st, logBuf.String()
	}

	if ok, st, _ := start(&pkcs11Flags{module: module, pinFile: pin}, true); !ok || !st.AutoUnseal || st.LockedReason != "" {
		t.Fatalf("restart with the token: %+v", st)
	}
	t.Setenv("KEYHOLDER_PKCS11_MODULE", module)
	t.Setenv("KEYHOLDER_PKCS11_PIN", "pin-4711")
	if ok, st, _ := start(&pkcs11Flags{}, true); !ok {
		t.Fatalf("restart with the token from the environment: %+v", st)
	}
	t.Setenv("KEYHOLDER_PKCS11_MODULE", "")
	t.Setenv("KEYHOLDER_PKCS11_PIN", "")

	locked := []struct {
		name    string
		pf      *pkcs11Flags
		enabled bool
		reason  string
	}{
		{"wrong PIN", &pkcs11Flags{module: module, pinFile: wrongPin}, true, "CKR_PIN_INCORRECT"},
		{"no PIN", &pkcs11Flags{module: module}, true, "no token PIN given"},
		{"no module", &pkcs11Flags{pinFile: pin}, true, "no PKCS#11 module given"},
		{"token absent", &pkcs11Flags{module: module, pinFile: pin, tokenLabel: "other-token"}, true, "no token labelled"},
		{"turned off", &pkcs11Flags{module: module, pinFile: pin}, false, "turned off"},
	}
	for _, c := range locked {
		ok, st, log := start(c.pf, c.enabled)
		if ok || !strings.Contains(st.LockedReason, c.reason) || !strings.Contains(log, c.reason) {
			t.Errorf("%s: unlocked %v, reason %q, log %q; want locked because %q", c.name, ok, st.LockedReason, log, c.reason)
		}
	}

	l.run(t, 0, "unseal", "remove", "--data", data, "--officer", "alice", "--passphrase-file", alice)
	if ok, st, _ := start(&pkcs11Flags{module: module, pinFile: pin}, true); ok || st.AutoUnseal {
		t.Fatalf("start after removal: %+v", st)
	}
	if out := l.run(t, 0, "unseal", "status", "--data", data); !strings.Contains(out, "not set up") {
		t.Fatalf("status after removal: %q", out)
	}
	if strings.Contains(l.out.String()+l.err.String(), "pin-4711") {
		t.Fatal("the PIN appears in command output")
	}
}
