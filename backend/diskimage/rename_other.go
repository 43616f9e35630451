//go:build !linux

package diskimage

// renameNoReplace renames oldpath to newpath unless newpath exists: then it
// fails with an error wrapping fs.ErrExist and oldpath stays.
func renameNoReplace(oldpath, newpath string) error { return linkAndRemove(oldpath, newpath) }
