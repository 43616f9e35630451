// Package hsmtest makes SoftHSM2 tokens for tests: a private token
// directory and configuration per test (SOFTHSM2_CONF points at it for the
// rest of the test), initialised with softhsm2-util.
package hsmtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Module returns the path of SoftHSM2's PKCS#11 library; the test fails
// when SoftHSM2 is not installed (the softhsm2 package, see
// .ci/apt-packages.txt).
func Module(t testing.TB) string {
	t.Helper()
	if m := os.Getenv("KEYHOLDER_TEST_PKCS11_MODULE"); m != "" {
		return m
	}
	for _, m := range []string{
		"/usr/lib/softhsm/libsofthsm2.so",
		"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
		"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
		"/usr/local/lib/softhsm/libsofthsm2.so",
	} {
		if _, err := os.Stat(m); err == nil {
			return m
		}
	}
	t.Fatal("SoftHSM2 is required (Debian package softhsm2, see .ci/apt-packages.txt): libsofthsm2.so not found")
	return ""
}

// Token makes a fresh SoftHSM2 token labelled label with user PIN pin in a
// temporary directory, points SOFTHSM2_CONF at it (t.Setenv) and returns
// the module path.
func Token(t testing.TB, label, pin string) string {
	t.Helper()
	module := Module(t)
	util, err := exec.LookPath("softhsm2-util")
	if err != nil {
		t.Fatalf("softhsm2-util is required (Debian package softhsm2, see .ci/apt-packages.txt): %v", err)
	}
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	if err := os.WriteFile(conf, []byte("directories.tokendir = "+tokens+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", conf)
	cmd := exec.Command(util, "--init-token", "--free", "--label", label, "--so-pin", "so-"+pin, "--pin", pin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("softhsm2-util --init-token: %v\n%s", err, out)
	}
	return module
}
