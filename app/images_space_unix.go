//go:build unix

package app

import "golang.org/x/sys/unix"

// freeSpace returns the bytes an unprivileged writer may use in dir.
func freeSpace(dir string) (uint64, bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return uint64(st.Bavail) * uint64(st.Bsize), true
}
