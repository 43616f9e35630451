package diskimage

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestPreallocate: on a disk file system the output's blocks are reserved
// before the pipeline writes them; on tmpfs nothing is allocated up front.
func TestPreallocate(t *testing.T) {
	const size = 8 << 20
	for _, dir := range []string{t.TempDir(), "/dev/shm"} {
		f, err := os.CreateTemp(dir, ".keyholder-prealloc-test-*")
		if err != nil {
			t.Fatal(err)
		}
		defer os.Remove(f.Name())
		defer f.Close()
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
		if err := preallocate(f, size); err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		var st unix.Stat_t
		var fs unix.Statfs_t
		if err := unix.Fstat(int(f.Fd()), &st); err != nil {
			t.Fatal(err)
		}
		if err := unix.Fstatfs(int(f.Fd()), &fs); err != nil {
			t.Fatal(err)
		}
		allocated := st.Blocks * 512
		if fs.Type == unix.TMPFS_MAGIC {
			if allocated != 0 {
				t.Errorf("%s (tmpfs): %d bytes allocated up front", filepath.Base(dir), allocated)
			}
		} else if allocated < size {
			t.Errorf("%s: %d of %d bytes allocated", dir, allocated, size)
		}
	}
}
