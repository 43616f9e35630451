package diskimage

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks Linux to start writing the range to disk now, without
// waiting, so the final fsync has little left to do.
func startWriteback(w io.WriterAt, off, n int64) {
	if f, ok := w.(*os.File); ok {
		_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
	}
}
