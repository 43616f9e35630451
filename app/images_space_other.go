//go:build !unix

package app

// freeSpace is unknown here; the preparation reports a full disk when it
// meets one.
func freeSpace(string) (uint64, bool) { return 0, false }
