package cli

import (
	"flag"
	"io"
	"keyholder/backend/custody"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

// testConfig is the binary's configuration in tests: a stand-in frontend and
// no desktop window.
var testConfig = Config{
	Version: "0.1.0-test",
	Assets:  fstest.MapFS{"index.html": {Data: []byte("<!doctype html><title>Keyholder</title>")}},
	// A cheap KDF keeps officer envelopes quick to make; production's is
	// custody.DefaultKDF. Tests copy testConfig to change it.
	Custody: custody.Options{KDF: custody.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}},
}

// run runs the command line as the binary does.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return Run(testConfig, args, stdin, stdout, stderr)
}

// TestHelpFromTable: `keyholder help CMD` lists the usage of every
// subcommand the table knows, and `keyholder help CMD SUB` the
// subcommand's own flags beside the shared ones.
func TestHelpFromTable(t *testing.T) {
	for _, c := range commands {
		if c.subcommands == nil {
			continue
		}
		code, out, _ := runCLI(t, "help", c.name)
		if code != 0 {
			t.Fatalf("help %s: exit %d", c.name, code)
		}
		subs := c.subcommands(flag.NewFlagSet("", flag.ContinueOnError), &cliEnv{})
		if len(subs) == 0 {
			t.Fatalf("%s has an empty subcommand table", c.name)
		}
		for _, s := range subs {
			first := strings.SplitN(s.synopsis, "\n", 2)[0]
			if !strings.HasPrefix(first, "keyholder "+c.name+" "+s.name) {
				t.Errorf("%s %s: synopsis %q does not name it", c.name, s.name, first)
			}
			if !strings.Contains(out, "  "+first+"\n") {
				t.Errorf("help %s does not show %q", c.name, first)
			}
		}
	}
	for _, tc := range []struct{ cmd, sub, flag string }{
		{"attest", "verify", "-report-data"},
		{"attest", "fetch-certs", "-kds"},
		{"requests", "approve", "-hash"},
		{"requests", "list", "-status"},
		{"image", "prepare", "-sector-size"},
		{"image", "prepare", "-output"},
	} {
		code, out, _ := runCLI(t, "help", tc.cmd, tc.sub)
		if code != 0 || !strings.Contains(out, "keyholder "+tc.cmd+" "+tc.sub) || !strings.Contains(out, "  "+tc.flag+" ") || !strings.Contains(out, "  -data ") {
			t.Errorf("help %s %s (exit %d) lacks its usage or %s:\n%s", tc.cmd, tc.sub, code, tc.flag, out)
		}
		// -h after the subcommand prints the same.
		code, sameOut, _ := runCLI(t, tc.cmd, tc.sub, "-h")
		if code != 0 || sameOut != out {
			t.Errorf("%s %s -h (exit %d) differs from help %s %s:\n%s", tc.cmd, tc.sub, code, tc.cmd, tc.sub, sameOut)
		}
	}
	// A flag only a sibling declares is refused.
	if code, _, errOut := runCLI(t, "requests", "list", "--hash", "x", "--data", t.TempDir()); code != 2 || !strings.Contains(errOut, "-hash") {
		t.Errorf("requests list --hash: exit %d, %q", code, errOut)
	}
}

// TestSubcommandDispatch: a missing or unknown subcommand is a usage error
// that names the ones there are; arguments are counted by the table.
func TestSubcommandDispatch(t *testing.T) {
	data := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"attest"}, "missing subcommand: verify, verify-tpm or fetch-certs"},
		{[]string{"requests", "frobnicate"}, `unknown subcommand "frobnicate": want list, approve or deny`},
		{[]string{"officers", "--data", data}, "missing subcommand: list, add, remove, role or passwd"},
		{[]string{"officers", "role", "bob", "--data", data}, "usage: keyholder officers role NAME ROLE"},
		{[]string{"officers", "list", "extra", "--data", data}, `unexpected argument "extra"`},
		{[]string{"image", "inspect"}, "usage: keyholder image inspect FILE"},
		// An unknown output is refused before anything is unlocked or read.
		{[]string{"image", "prepare", "--in", "src.raw", "--out", "dst", "--output", "ova", "--data", data}, `unknown output "ova": want raw, gcp, azure, aws or vmdk`},
		{[]string{"shares"}, "missing subcommand: combine"},
	} {
		code, _, errOut := runCLI(t, tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, %q; want 2 and %q", tc.args, code, errOut, tc.want)
		}
	}
}

// TestRequestIDBesideFlags: the request ID may stand before, between or
// after the flags; a flag's value is never taken for it, because the
// subcommand's flag set knows which flags take one.
func TestRequestIDBesideFlags(t *testing.T) {
	data := t.TempDir()
	missing := filepath.Join(data, "no-such-passphrase-file")
	for _, args := range [][]string{
		{"requests", "approve", "req_x", "--officer", "alice", "--passphrase-file", missing, "--data", data},
		{"requests", "approve", "--officer", "alice", "req_x", "--passphrase-file", missing, "--data", data},
		{"requests", "deny", "--note", "not ours", "--officer", "alice", "--passphrase-file", missing, "--data", data, "req_x"},
		{"requests", "approve", "--officer=alice", "--passphrase-file", missing, "--data", data, "req_x"},
	} {
		code, _, errOut := runCLI(t, args...)
		// The ID is taken: the command goes on to open the key service
		// (of a data directory with no console).
		if code != 1 || strings.Contains(errOut, "missing request ID") || strings.Contains(errOut, "unexpected argument") || !strings.Contains(errOut, "not initialised") {
			t.Errorf("%v: exit %d, %q", args, code, errOut)
		}
	}
	for _, args := range [][]string{
		{"requests", "approve", "--officer", "alice", "--data", data},
		{"requests", "deny", "--note", "req_x", "--data", data},
	} {
		if code, _, errOut := runCLI(t, args...); code != 2 || !strings.Contains(errOut, "missing request ID") {
			t.Errorf("%v: exit %d, %q; a flag's value taken for the ID", args, code, errOut)
		}
	}
}
