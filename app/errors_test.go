package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"

	"keyholder/backend/attest"
	"keyholder/backend/custody"
	"keyholder/backend/diskimage"
	"keyholder/backend/images"
	"keyholder/backend/quorum"
	"keyholder/backend/release"
	"keyholder/backend/store"
)

// TestToErrorCodes: every backend error the UI branches on gets its code
// through the one table, also when wrapped with context; what it does not
// know becomes internal with a message that names the operation only.
func TestToErrorCodes(t *testing.T) {
	_, statErr := os.Stat("/nonexistent/keyholder/disk.raw")
	cases := []struct {
		err  error
		code Code
		msg  string // substring of the message, if it matters
	}{
		{custody.ErrWrongPassphrase, CodeUnauthorized, "wrong officer name or passphrase"},
		{custody.ErrLocked, CodeUnavailable, "key service is locked"},
		{custody.ErrNotInitialized, CodeConflict, "not initialised"},
		{custody.ErrForbidden, CodeForbidden, ""},
		{custody.ErrWeakPassphrase, CodeInvalid, ""},
		{custody.ErrConfirmation, CodeInvalid, ""},
		{custody.ErrOfficerExists, CodeConflict, ""},
		{custody.ErrLastAdmin, CodeConflict, ""},
		{custody.ErrDestroyed, CodeConflict, ""},
		{release.ErrExpired, CodeConflict, ""},
		{release.ErrAlreadyApproved, CodeConflict, ""},
		{release.ErrReauthenticate, CodeReauth, ""},
		{release.ErrNoOfficer, CodeUnauthorized, ""},
		{release.ErrInvalidPolicy, CodeInvalid, ""},
		{quorum.ErrNotRequester, CodeForbidden, ""},
		{quorum.ErrReauthenticate, CodeReauth, ""},
		{quorum.ErrAlreadyVoted, CodeConflict, ""},
		{quorum.ErrNotCollectable, CodeConflict, ""},
		{quorum.ErrInvalid, CodeInvalid, ""},
		{attest.ErrInvalidReference, CodeInvalid, ""},
		{&diskimage.ContainerError{}, CodeUnsupportedFormat, ""},
		{diskimage.ErrUnrecognisedRaw, CodeConfirmRaw, ""},
		{diskimage.ErrCorrupt, CodeInvalid, ""},
		{diskimage.ErrOutputExists, CodeConflict, ""},
		{images.ErrInvalidName, CodeInvalid, ""},
		{images.ErrNameTaken, CodeConflict, ""},
		{store.ErrNotFound, CodeNotFound, ""},
		{store.ErrBusy, CodeUnavailable, "database is busy"},
		{store.ErrInUse, CodeUnavailable, "database is busy"},
		{context.Canceled, CodeCanceled, "cancelled"},
		{&Error{Code: CodeForbidden, Message: "as is"}, CodeForbidden, "as is"},
		{errors.New("disk on fire"), CodeInternal, "frob the widget failed"},
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, c := range cases {
		for _, err := range []error{c.err, fmt.Errorf("frob widget 7: %w", c.err)} {
			var ae *Error
			if !errors.As(toError(log, "frob the widget", err), &ae) {
				t.Fatalf("%v: not an *Error", err)
			}
			if ae.Code != c.code {
				t.Errorf("%v: code %q, want %q", err, ae.Code, c.code)
			}
			if !strings.Contains(ae.Message, c.msg) {
				t.Errorf("%v: message %q, want it to contain %q", err, ae.Message, c.msg)
			}
			if c.code == CodeInternal && strings.Contains(ae.Message, "fire") {
				t.Errorf("%v: an unknown error's text reached the UI: %q", err, ae.Message)
			}
		}
	}
	// A file the officer named in the wizard is missing: they see which.
	for _, op := range []string{"inspect image", "prepare image"} {
		var ae *Error
		if !errors.As(toError(log, op, fmt.Errorf("open source: %w", statErr)), &ae) || ae.Code != CodeNotFound || !strings.Contains(ae.Message, "disk.raw") {
			t.Errorf("%s of a missing file: %+v, want not_found naming disk.raw", op, ae)
		}
	}
	// Elsewhere a missing file is the console's own (a backup snapshot, a
	// certificate): its path stays in the log.
	var ae *Error
	if !errors.As(toError(log, "download a backup", fmt.Errorf("snapshot: %w", statErr)), &ae) || ae.Code != CodeInternal || strings.Contains(ae.Message, "nonexistent") {
		t.Errorf("a missing server file outside the wizard: %+v, want internal without its path", ae)
	}
	if toError(log, "x", nil) != nil {
		t.Error("toError(nil) is not nil")
	}
}
