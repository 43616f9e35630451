package diskimage

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// TestRenameNoReplace: the prepared image never replaces a file that
// appeared at its destination while it was being written; it stays under
// its temporary name.
func TestRenameNoReplace(t *testing.T) {
	for name, rename := range map[string]func(string, string) error{"rename": renameNoReplace, "link": linkAndRemove} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			src, dst := filepath.Join(dir, "out.tmp"), filepath.Join(dir, "out.img")
			os.WriteFile(src, []byte("prepared"), 0o600)
			os.WriteFile(dst, []byte("someone else's"), 0o600)
			if err := rename(src, dst); !errors.Is(err, fs.ErrExist) {
				t.Fatalf("rename over an existing file: %v, want fs.ErrExist", err)
			}
			if b, _ := os.ReadFile(dst); string(b) != "someone else's" {
				t.Fatalf("the existing file now holds %q", b)
			}
			if b, _ := os.ReadFile(src); string(b) != "prepared" {
				t.Fatalf("the prepared file now holds %q", b)
			}
			os.Remove(dst)
			if err := rename(src, dst); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(src); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("the temporary name is still there: %v", err)
			}
			if b, _ := os.ReadFile(dst); string(b) != "prepared" {
				t.Fatalf("destination holds %q", b)
			}
		})
	}
}
