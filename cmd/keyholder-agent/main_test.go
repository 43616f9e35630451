package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestCommandLine(t *testing.T) {
	cases := []struct {
		name    string
		args    []string
		code    int
		wantErr string
	}{
		{"help", []string{"help"}, 0, ""},
		{"unknown command", []string{"open"}, 2, "unknown command"},
		{"bad flag", []string{"unlock", "--bogus"}, 2, "flag provided but not defined"},
		{"unlock without device", []string{"unlock", "--name", "root"}, 1, "--device and --name are required"},
		{"no token and no flags", []string{"unlock", "--device", "/nonexistent/disk", "--name", "x"}, 1, "no such file"},
		{"bad vm id", []string{"unlock", "--device", "d", "--name", "x", "--console", "https://c:1", "--pin", strings.Repeat("a", 64), "--volume", "vol_1", "--vm-id", "a b"}, 1, "--vm-id"},
		{"plain http console", []string{"unlock", "--device", "d", "--name", "x", "--console", "http://c:1", "--pin", strings.Repeat("a", 64), "--volume", "vol_1", "--vm-id", "vm-1"}, 1, "must be https"},
		{"bad pin", []string{"heartbeat", "--console", "https://c:1", "--pin", "xyz", "--volume", "vol_1", "--vm-id", "vm-1", "--once"}, 1, "pin must be"},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		code := run(c.args, &out, &errb)
		if code != c.code || !strings.Contains(errb.String(), c.wantErr) {
			t.Errorf("%s: exit %d, stderr %q; want %d and %q", c.name, code, errb.String(), c.code, c.wantErr)
		}
	}
}
