package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"keyholder/backend/audit"
)

// checkPrepare checks a preparation's paths before it starts, so that the
// wizard shows the problem at once instead of an operation that fails in
// the background: the output must not be the input (by path, symlink or
// hard link), its folder must exist, it must not exist yet, and its folder
// must have room for it (when the file system says how much it has).
func checkPrepare(req PrepareRequest) error {
	if req.Source == "" || req.Dest == "" {
		return &Error{Code: CodeInvalid, Message: "choose both the disk image to encrypt and where the encrypted image goes"}
	}
	srcInfo, err := os.Stat(req.Source)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return &Error{Code: CodeNotFound, Message: fmt.Sprintf("the disk image %s does not exist", req.Source)}
		}
		return &Error{Code: CodeInvalid, Message: fmt.Sprintf("the disk image %s cannot be read: %v", req.Source, err)}
	}
	srcAbs, _ := filepath.Abs(req.Source)
	dstAbs, _ := filepath.Abs(req.Dest)
	if realSrc, err := filepath.EvalSymlinks(srcAbs); err == nil {
		srcAbs = realSrc
	}
	if srcAbs == dstAbs {
		return &Error{Code: CodeInvalid, Message: "the output is the same file as the input; choose another output path"}
	}
	if dstInfo, err := os.Stat(req.Dest); err == nil {
		if os.SameFile(srcInfo, dstInfo) {
			return &Error{Code: CodeInvalid, Message: "the output is the same file as the input (a link to it); choose another output path"}
		}
		return &Error{Code: CodeConflict, Message: fmt.Sprintf("the output %s exists already; choose another name (Keyholder never overwrites a file)", req.Dest)}
	} else if !errors.Is(err, os.ErrNotExist) {
		return &Error{Code: CodeInvalid, Message: fmt.Sprintf("the output %s cannot be checked: %v", req.Dest, err)}
	}
	if dl, err := os.Lstat(req.Dest); err == nil && dl.Mode()&os.ModeSymlink != 0 {
		return &Error{Code: CodeConflict, Message: fmt.Sprintf("the output %s exists already (a dangling link); choose another name", req.Dest)}
	}
	folder := filepath.Dir(dstAbs)
	fi, err := os.Stat(folder)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return &Error{Code: CodeNotFound, Message: fmt.Sprintf("the output folder %s does not exist; create it or choose another", folder)}
	case err != nil:
		return &Error{Code: CodeInvalid, Message: fmt.Sprintf("the output folder %s cannot be checked: %v", folder, err)}
	case !fi.IsDir():
		return &Error{Code: CodeInvalid, Message: fmt.Sprintf("%s is not a folder", folder)}
	}
	// The output is about the size of the input (a raw image plus the LUKS2
	// header, 16 MiB); packaged formats are smaller, never much larger.
	need := srcInfo.Size() + 16<<20
	if free, ok := freeSpace(folder); ok && free < uint64(need) {
		return &Error{Code: CodeUnavailable, Message: fmt.Sprintf("the output folder %s has %d MiB free; the encrypted image needs about %d MiB", folder, free>>20, need>>20)}
	}
	return nil
}

// auditPrepareFailure records a preparation that failed (or was refused
// before it started) with its reason; the officer and the log see every
// attempt, not only the successes.
func (i *Images) auditPrepareFailure(actor string, req PrepareRequest, err error) {
	decision := "failed"
	if errors.Is(err, context.Canceled) {
		decision = "canceled"
	}
	var ae *Error
	reason := err.Error()
	if errors.As(err, &ae) {
		reason = ae.Message
	}
	if _, aerr := i.custody.AuditLog().AppendDB(i.ctx, audit.Entry{At: i.db.Now(), Actor: actor, Action: "image.prepare", Subject: req.Dest,
		Decision: decision, Reason: reason}); aerr != nil {
		i.log.Error("audit a failed preparation", "err", aerr)
	}
}
