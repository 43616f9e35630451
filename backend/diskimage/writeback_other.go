//go:build !linux

package diskimage

import (
	"os"
	"time"
)

// directFile is the plain file where O_DIRECT is not used.
type directFile struct{ *os.File }

func openDirect(f *os.File, flag int) *directFile { return &directFile{f} }

// Close leaves the shared file open.
func (d *directFile) Close() error { return nil }

// staleAfter: without a lock to ask, only temporaries a day old count as
// abandoned.
const staleAfter = 24 * time.Hour

func lockTemp(f *os.File) {}

func tempAbandoned(f *os.File) bool { return true }

const oNoFollow = 0

// bufferedFile is the plain file.
func bufferedFile(f *os.File) *directFile { return &directFile{f} }

// preallocate does nothing where fallocate is not used.
func preallocate(f *os.File, size int64) error { return nil }
