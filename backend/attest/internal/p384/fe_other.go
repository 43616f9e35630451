//go:build !amd64 || purego

package p384

const haveADX = false

// feMul sets z = x·y.
func feMul(z, x, y *fe) { feMulGeneric(z, x, y) }
