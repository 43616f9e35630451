//go:build !linux

package diskimage

import "os"

// directFile is the plain file where O_DIRECT is not used.
type directFile struct{ *os.File }

func openDirect(f *os.File, flag int) *directFile { return &directFile{f} }

// Close leaves the shared file open.
func (d *directFile) Close() error { return nil }
