// Package fuzzseed writes seed corpora for `go test -fuzz` targets, in the
// format the fuzzing engine reads (testdata/fuzz/FuzzX/NAME holding one
// []byte value). It is for the TestWriteSeeds generators of the packages
// with parsers.
package fuzzseed

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// Encode returns b as the contents of a seed file with one []byte value.
func Encode(b []byte) []byte {
	return []byte("go test fuzz v1\n[]byte(" + strconv.Quote(string(b)) + ")\n")
}

// Write writes b as seed name of fuzz target fuzz below testdata/fuzz in
// the current directory (a test's is its package's), making the folder. Any
// error fails the test: a corpus written in part would pass silently.
func Write(t testing.TB, fuzz, name string, b []byte) {
	t.Helper()
	dir := filepath.Join("testdata", "fuzz", fuzz)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), Encode(b), 0o644); err != nil {
		t.Fatal(err)
	}
}
