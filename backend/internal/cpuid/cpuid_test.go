//go:build amd64 && !purego

package cpuid

import (
	"os"
	"strings"
	"testing"
)

// What CPUID says agrees with what the kernel says in /proc/cpuinfo.
func TestAgreesWithCPUInfo(t *testing.T) {
	info, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		t.Skip("no /proc/cpuinfo to compare with")
	}
	s := string(info)
	line := s[strings.Index(s, "\nflags")+1:]
	line = line[:strings.IndexByte(line, '\n')]
	flags := " " + strings.TrimSpace(line[strings.IndexByte(line, ':')+1:]) + " "
	ebx, ecx := Leaf7()
	for _, c := range []struct {
		flag string
		has  bool
	}{
		{"sha_ni", ebx&(1<<29) != 0},
		{"avx2", ebx&(1<<5) != 0},
		{"vaes", ecx&(1<<9) != 0},
		{"vpclmulqdq", ecx&(1<<10) != 0},
	} {
		if strings.Contains(flags, " "+c.flag+" ") != c.has {
			t.Errorf("%s: /proc/cpuinfo %v, CPUID %v", c.flag, !c.has, c.has)
		}
	}
	if IsAMD() != strings.Contains(s, "AuthenticAMD") {
		t.Errorf("IsAMD %v, /proc/cpuinfo says otherwise", IsAMD())
	}
}
