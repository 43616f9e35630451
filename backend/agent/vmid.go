package agent

import (
	"errors"
	"os"
	"strings"
)

// Where DefaultVMID looks for this VM's identity.
const (
	// SystemUUIDPath is the SMBIOS system UUID the hypervisor gives each
	// instance (GCP, Azure and AWS do; QEMU with -uuid). It is the same in
	// the initramfs and in the running system.
	SystemUUIDPath = "/sys/class/dmi/id/product_uuid"
	// MachineIDPath is systemd's machine ID. Cloud images ship it empty and
	// systemd makes one at first boot, after the initramfs ran, so it is only
	// the fallback.
	MachineIDPath = "/etc/machine-id"
)

// placeholderUUIDs are system UUIDs that firmware reports when no one set a
// real one; many machines share them, so they identify nothing.
var placeholderUUIDs = map[string]bool{
	"00000000-0000-0000-0000-000000000000": true,
	"ffffffff-ffff-ffff-ffff-ffffffffffff": true,
	"03000200-0400-0500-0006-000700080009": true,
}

// DefaultVMID returns this VM's identity when none is given: "vm-" and the
// SMBIOS system UUID, else "vm-" and /etc/machine-id. readFile reads a file
// (os.ReadFile outside tests).
//
// The system UUID comes first because it is per instance and the same before
// and after the root file system is mounted; a machine ID copied into an
// initramfs when the image was built is shared by every VM made from it.
func DefaultVMID(readFile func(string) ([]byte, error)) (string, error) {
	if readFile == nil {
		readFile = os.ReadFile
	}
	if b, err := readFile(SystemUUIDPath); err == nil {
		u := strings.ToLower(strings.TrimSpace(string(b)))
		if isUUID(u) && !placeholderUUIDs[u] {
			return "vm-" + u, nil
		}
	}
	if b, err := readFile(MachineIDPath); err == nil {
		m := strings.TrimSpace(string(b))
		if len(m) == 32 && isHex(m) && strings.Trim(m, "0") != "" {
			return "vm-" + m, nil
		}
	}
	return "", errors.New("no --vm-id, no system UUID (" + SystemUUIDPath + ") and no machine ID (" + MachineIDPath + ")")
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch i {
		case 8, 13, 18, 23:
			if s[i] != '-' {
				return false
			}
		default:
			if !isHex(s[i : i+1]) {
				return false
			}
		}
	}
	return true
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
