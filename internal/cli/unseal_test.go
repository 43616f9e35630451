package cli

import (
	"bytes"
	"context"
	"encoding/json"
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

// TestAutoUnsealChangesNeedTwoAdmins: once a console has two admins, one
// admin alone can neither set up nor remove auto-unseal (either would let
// the console open its keys without an officer, or take that away): the
// change waits as an admin action until a second admin approves it with
// 'keyholder requests approve', and each step is audited. A setup request
// names the token and touches nothing (no key is made in it); after the
// approval only the admin who asked carries it out, only with that token.
func TestAutoUnsealChangesNeedTwoAdmins(t *testing.T) {
	module := hsmtest.Token(t, "kh-two", "pin-2222")
	root := t.TempDir()
	data := filepath.Join(root, "data")
	alice := secretFile(t, root, "alice", "alice's passphrase one")
	bob := secretFile(t, root, "bob", "bob's passphrase two")
	pin := secretFile(t, root, "pin", "pin-2222")
	asAlice := []string{"--data", data, "--officer", "alice", "--passphrase-file", alice}
	asBob := []string{"--data", data, "--officer", "bob", "--passphrase-file", bob}
	var l cliLog
	run := func(code int, args ...string) string { t.Helper(); return l.run(t, code, args...) }
	run(0, "init", "--data", data, "--officer", "alice", "--passphrase-file", alice)
	run(0, append([]string{"officers", "add", "bob", "--role", "admin", "--new-passphrase-file", bob}, asAlice...)...)

	setupArgs := append([]string{"unseal", "setup", "--pkcs11-module", module, "--token-label", "kh-two", "--pin-file", pin}, asAlice...)
	out := run(0, setupArgs...)
	setup := actionID.FindString(out)
	if setup == "" || !strings.Contains(out, "Waiting for approval") || !strings.Contains(out, "1 of 2") ||
		!strings.Contains(out, "keyholder unseal setup --collect "+setup) || strings.Contains(out, "Created AES key") {
		t.Fatalf("setup by one admin of two: %s", out)
	}
	if out := run(0, "unseal", "status", "--data", data); !strings.Contains(out, "not set up") {
		t.Fatalf("auto-unseal set up by one admin alone: %s", out)
	}
	var listing struct {
		AdminActions []struct {
			ID, Kind, Status string
			Params           map[string]any `json:"params"`
		} `json:"admin_actions"`
	}
	if err := json.Unmarshal([]byte(run(0, "requests", "list", "--json", "--data", data)), &listing); err != nil {
		t.Fatal(err)
	}
	if len(listing.AdminActions) != 1 || listing.AdminActions[0].ID != setup || listing.AdminActions[0].Kind != "auto_unseal.setup" ||
		listing.AdminActions[0].Params["token_label"] != "kh-two" {
		t.Fatalf("pending actions: %+v", listing.AdminActions)
	}
	run(1, append([]string{"requests", "approve", setup}, asAlice...)...) // not twice by the same admin
	run(0, append([]string{"requests", "approve", setup}, asBob...)...)
	if out := run(0, "unseal", "status", "--data", data); !strings.Contains(out, "not set up") {
		t.Fatalf("auto-unseal set up before its requester collected it: %s", out)
	}
	collect := []string{"unseal", "setup", "--collect", setup, "--pkcs11-module", module, "--pin-file", pin}
	run(1, append(append(collect, "--token-label", "kh-two"), asBob...)...)                                 // bob did not ask
	run(1, append(append(collect, "--token-label", "kh-two", "--key-label", "another-key"), asAlice...)...) // not the approved key
	if out := run(0, "unseal", "status", "--data", data); !strings.Contains(out, "not set up") {
		t.Fatalf("auto-unseal set up by a refused collection: %s", out)
	}
	if out := run(0, append(append(collect, "--token-label", "kh-two"), asAlice...)...); !strings.Contains(out, "Created AES key") || !strings.Contains(out, "set up") {
		t.Fatalf("collected by alice: %s", out)
	}
	run(1, append(append(collect, "--token-label", "kh-two"), asAlice...)...) // once
	if out := run(0, "unseal", "status", "--data", data); !strings.Contains(out, `token "kh-two"`) {
		t.Fatalf("status after the setup was collected: %s", out)
	}

	// Removal waits the same way.
	out = run(0, append([]string{"unseal", "remove"}, asBob...)...)
	remove := actionID.FindString(out)
	if remove == "" || !strings.Contains(out, "Waiting for approval") {
		t.Fatalf("removal by one admin of two: %s", out)
	}
	if out := run(0, "unseal", "status", "--data", data); !strings.Contains(out, `token "kh-two"`) {
		t.Fatalf("auto-unseal removed by one admin alone: %s", out)
	}
	run(0, append([]string{"requests", "approve", remove}, asAlice...)...)
	if out := run(0, "unseal", "status", "--data", data); !strings.Contains(out, "not set up") {
		t.Fatalf("status after the removal was approved: %s", out)
	}

	// The audit log holds the requests, the approvals and both changes,
	// made in the name of both admins.
	log := run(0, "audit", "export", "--data", data, "--json")
	for _, want := range []string{`"custody.auto_unseal.setup"`, `"custody.auto_unseal.remove"`, `"admin.deliver"`, `"officer:alice+bob"`, `"officer:bob+alice"`, setup, remove} {
		if !strings.Contains(log, want) {
			t.Errorf("audit log lacks %s", want)
		}
	}
	if strings.Contains(l.out.String()+l.err.String(), "pin-2222") {
		t.Fatal("the PIN appears in command output")
	}
}
