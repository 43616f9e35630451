//go:build amd64 && !purego

package p384

import "keyholder/backend/internal/cpuid"

//go:generate go run gen_amd64.go

// haveADX: the CPU has MULX (BMI2, leaf 7 EBX bit 8) and ADCX/ADOX (ADX,
// bit 19), which the assembly multiplication uses.
var haveADX = func() bool {
	ebx, _ := cpuid.Leaf7()
	return ebx&(1<<8) != 0 && ebx&(1<<19) != 0
}()

// feMul sets z = x·y (fe_amd64.s): with MULX, ADCX and ADOX if useADX,
// else by jumping to feMulGeneric.
//
//go:noescape
func feMul(z, x, y *fe)
