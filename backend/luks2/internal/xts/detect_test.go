//go:build amd64 && !purego

package xts

import (
	"os"
	"runtime"
	"strings"
	"testing"
)

// TestVAESDetected fails if the kernel chosen by default is not the one
// the CPU flags in /proc/cpuinfo call for: ZMM VAES on AMD with AVX-512,
// YMM VAES with AVX2, else AES-NI (so a broken CPUID check cannot quietly
// leave the fast path unused).
func TestVAESDetected(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc/cpuinfo flags; Linux only")
	}
	info, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		t.Skip(err)
	}
	var flags map[string]bool
	amd := false
	for _, line := range strings.Split(string(info), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "vendor_id":
			amd = strings.TrimSpace(v) == "AuthenticAMD"
		case "flags":
			if flags == nil {
				flags = map[string]bool{}
				for _, f := range strings.Fields(v) {
					flags[f] = true
				}
			}
		}
	}
	if flags == nil {
		t.Skip("no flags line in /proc/cpuinfo")
	}
	vaes := flags["aes"] && flags["sse4_1"] && flags["avx2"] && flags["pclmulqdq"] && flags["vaes"] && flags["vpclmulqdq"]
	vaes512 := vaes && flags["avx512f"] && flags["avx512bw"]
	if haveVAES != vaes || haveVAES512 != vaes512 {
		t.Fatalf("haveVAES %v haveVAES512 %v, /proc/cpuinfo says %v %v", haveVAES, haveVAES512, vaes, vaes512)
	}
	want := 0
	switch {
	case vaes512 && amd:
		want = 512
	case vaes:
		want = 256
	}
	if vaesKernel != want {
		t.Fatalf("default kernel %d, want %d", vaesKernel, want)
	}
}
