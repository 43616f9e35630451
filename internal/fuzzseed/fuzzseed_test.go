package fuzzseed

import (
	"os"
	"path/filepath"
	"testing"
)

// fakeT records a Fatal instead of stopping the test.
type fakeT struct {
	testing.TB
	failed bool
}

func (f *fakeT) Helper()           {}
func (f *fakeT) Fatal(args ...any) { f.failed = true }

func TestWriteReadsBackAndFailsOnError(t *testing.T) {
	dir := t.TempDir()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chdir(wd) })

	Write(t, "FuzzX", "seed0", []byte("a\x00\"b\n"))
	got, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzX", "seed0"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "go test fuzz v1\n[]byte(\"a\\x00\\\"b\\n\")\n"; string(got) != want {
		t.Fatalf("seed file %q, want %q", got, want)
	}

	// A file where the target's folder should be: the write fails the test.
	if err := os.WriteFile(filepath.Join("testdata", "fuzz", "FuzzY"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ft := &fakeT{TB: t}
	Write(ft, "FuzzY", "seed0", []byte("x"))
	if !ft.failed {
		t.Fatal("Write into an impossible folder did not fail the test")
	}
}
