package diskimage

import "os"

// linkAndRemove gives oldpath the name newpath, failing (fs.ErrExist) when
// newpath exists, then removes the old name.
func linkAndRemove(oldpath, newpath string) error {
	if err := os.Link(oldpath, newpath); err != nil {
		return err
	}
	return os.Remove(oldpath)
}
