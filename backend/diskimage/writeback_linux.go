package diskimage

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// startWriteback asks Linux to start writing the range to disk now, without
// waiting, so the final fsync has little left to do.
func startWriteback(w io.WriterAt, off, n int64) {
	if f, ok := w.(*os.File); ok {
		_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
	}
}

// directFile does the bulk I/O of the output with O_DIRECT, as cryptsetup
// does: no page-cache copy, no dirty-page throttling (here about three
// times the buffered write rate). What the kernel refuses for alignment
// goes through the buffered file instead.
type directFile struct {
	direct, buffered *os.File
}

func openDirect(f *os.File, flag int) *directFile {
	// Reopen the very inode through /proc (not by name, which another
	// process could have replaced in the folder meanwhile).
	d, err := os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", f.Fd()), flag|unix.O_DIRECT, 0)
	if err != nil {
		return &directFile{buffered: f}
	}
	return &directFile{direct: d, buffered: f}
}

func (d *directFile) WriteAt(p []byte, off int64) (int, error) {
	if d.direct != nil {
		if n, err := d.direct.WriteAt(p, off); err == nil {
			return n, nil
		}
	}
	n, err := d.buffered.WriteAt(p, off)
	if err == nil {
		startWriteback(d.buffered, off, int64(n))
	}
	return n, err
}

func (d *directFile) ReadAt(p []byte, off int64) (int, error) {
	if d.direct != nil {
		n, err := d.direct.ReadAt(p, off)
		if err == nil || errors.Is(err, io.EOF) {
			return n, err
		}
	}
	return d.buffered.ReadAt(p, off)
}

func (d *directFile) Close() error {
	if d.direct != nil {
		return d.direct.Close()
	}
	return nil
}

// staleAfter is how old a temporary must be before a later run may remove
// it; the lock below is what really tells an abandoned temporary from one
// in use, the age only covers the moment between its creation and locking.
const staleAfter = time.Minute

// lockTemp marks a temporary output as in use by this run: an exclusive
// flock, which the kernel drops when the run's process ends however it
// ends (kill -9 included).
func lockTemp(f *os.File) { _ = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) }

// tempAbandoned reports whether no run holds f's lock (and takes it).
func tempAbandoned(f *os.File) bool {
	return unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil
}

const oNoFollow = unix.O_NOFOLLOW

// bufferedFile writes f through the page cache, starting the write-back of
// each write (for output that is not laid out in aligned sectors).
func bufferedFile(f *os.File) *directFile { return &directFile{buffered: f} }

// preallocate reserves the output's size blocks in one call, before the
// pipeline writes them: on ext4 (the development disk, 1 MiB O_DIRECT
// writes from four workers) each write into a hole otherwise allocates
// its own blocks, and preallocated writes ran 10-25 % faster for about
// half the system time. A full disk is an error now rather than minutes
// later. On tmpfs and ramfs it would allocate and zero every page up
// front on one core, where the workers do it in parallel, so it is
// skipped there; file systems without fallocate are left as they are.
func preallocate(f *os.File, size int64) error {
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err == nil && (st.Type == unix.TMPFS_MAGIC || st.Type == unix.RAMFS_MAGIC) {
		return nil
	}
	err := unix.Fallocate(int(f.Fd()), 0, 0, size)
	if errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT) {
		return err
	}
	return nil
}
