package agent

import (
	"io/fs"
	"strings"
	"testing"
)

func TestDefaultVMID(t *testing.T) {
	const uuid = "6f1c2a9e-3b1d-4c55-9a0e-0d2b7c1e4f10"
	const mid = "0123456789abcdef0123456789abcdef"
	cases := []struct {
		name    string
		files   map[string]string
		want    string
		wantErr string
	}{
		{"system uuid first", map[string]string{SystemUUIDPath: uuid + "\n", MachineIDPath: mid + "\n"}, "vm-" + uuid, ""},
		{"upper-case uuid is folded", map[string]string{SystemUUIDPath: strings.ToUpper(uuid)}, "vm-" + uuid, ""},
		{"zero uuid falls back to the machine id", map[string]string{SystemUUIDPath: "00000000-0000-0000-0000-000000000000", MachineIDPath: mid}, "vm-" + mid, ""},
		{"placeholder uuid falls back", map[string]string{SystemUUIDPath: "03000200-0400-0500-0006-000700080009", MachineIDPath: mid}, "vm-" + mid, ""},
		{"garbled uuid falls back", map[string]string{SystemUUIDPath: "Not Settable", MachineIDPath: mid}, "vm-" + mid, ""},
		{"no uuid file", map[string]string{MachineIDPath: mid}, "vm-" + mid, ""},
		{"uninitialized machine id", map[string]string{MachineIDPath: "uninitialized\n"}, "", "no --vm-id"},
		{"empty machine id", map[string]string{MachineIDPath: ""}, "", "no --vm-id"},
		{"zero machine id", map[string]string{MachineIDPath: strings.Repeat("0", 32)}, "", "no --vm-id"},
		{"nothing", map[string]string{}, "", "no --vm-id"},
	}
	for _, c := range cases {
		read := func(p string) ([]byte, error) {
			s, ok := c.files[p]
			if !ok {
				return nil, fs.ErrNotExist
			}
			return []byte(s), nil
		}
		got, err := DefaultVMID(read)
		if got != c.want || (c.wantErr == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), c.wantErr) {
			t.Errorf("%s: got %q, %v; want %q, error containing %q", c.name, got, err, c.want, c.wantErr)
		}
	}
}
