package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strings"

	"keyholder/backend/attest"
	"keyholder/backend/audit"
	"keyholder/backend/custody"
	"keyholder/backend/diskimage"
	"keyholder/backend/images"
	"keyholder/backend/quorum"
	"keyholder/backend/release"
	"keyholder/backend/store"
)

// Code classifies an error for the UI and the HTTP status it maps to.
type Code string

// Error codes the frontend branches on.
const (
	CodeInvalid      Code = "invalid"      // the request is malformed or a value is out of range
	CodeNotFound     Code = "not_found"    // the thing named does not exist
	CodeConflict     Code = "conflict"     // the state changed, or the thing exists already
	CodeUnauthorized Code = "unauthorized" // no officer session, or it is locked
	CodeForbidden    Code = "forbidden"    // the officer's role does not allow it
	CodeUnavailable  Code = "unavailable"  // busy database, locked key service
	CodeCanceled     Code = "canceled"     // the officer cancelled a long operation
	CodeInternal     Code = "internal"     // a bug or an environment problem; details are logged
	// CodeUnsupportedFormat: the disk image is in a container format the
	// console does not read; the message names it and the command that
	// converts it.
	CodeUnsupportedFormat Code = "unsupported_format"
	// CodeConfirmRaw: the raw source has no partition table and no
	// recognised filesystem; retry with the officer's confirmation.
	CodeConfirmRaw Code = "confirm_raw"
)

// Error is what a service method returns to the frontend: a stable code and a
// message that is safe to show (never a key, never a stack).
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
	// Field names the argument the message is about ("reason"), so the UI
	// shows it on that field; "" when it is about the call as a whole.
	Field string `json:"field,omitempty"`
}

// Error formats the error as "code: message"; the Wails transport parses it back.
func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Errorf makes an *Error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// toError maps a backend error to an *Error through errorCodes. Errors it
// does not recognise become CodeInternal with a generic message; the detail
// goes to the log (backend errors never carry key material).
func toError(log *slog.Logger, op string, err error) error {
	if err == nil {
		return nil
	}
	var ae *Error
	if errors.As(err, &ae) {
		return ae
	}
	if errors.Is(err, context.Canceled) {
		return &Error{Code: CodeCanceled, Message: "the operation was cancelled"}
	}
	for _, c := range errorCodes {
		if c.match(err) && c.applies(op) {
			msg := err.Error()
			if c.message != nil {
				msg = c.message(err)
			}
			return &Error{Code: c.code, Message: msg, Field: c.field}
		}
	}
	log.Error("service call failed", "op", op, "err", err)
	return &Error{Code: CodeInternal, Message: op + " failed; the console log has the details"}
}

// errorCode maps the backend errors match accepts to a code, with the
// error's own text as the message unless message gives a safer one.
type errorCode struct {
	match   func(error) bool
	code    Code
	message func(error) string
	field   string // the argument the error is about, when it is about one
	// ops, when set, limits the rule to the calls of these operations.
	ops []string
}

// applies reports whether the rule covers a call of op.
func (c errorCode) applies(op string) bool {
	return c.ops == nil || slices.Contains(c.ops, op)
}

// errorCodes is every backend error the UI branches on and its code: the
// one place where a sentinel becomes a code. The first match wins, so a
// package's errors come before the store's, which may wrap them.
var errorCodes = []errorCode{
	// custody: officers, passphrases and the key service.
	{match: isType[*custody.ThrottledError], code: CodeUnauthorized, message: func(err error) string {
		var te *custody.ThrottledError
		errors.As(err, &te)
		return te.Error()
	}},
	{match: is(custody.ErrWrongPassphrase), code: CodeUnauthorized, message: say("wrong officer name or passphrase")},
	{match: is(custody.ErrLocked), code: CodeUnavailable, message: say("the key service is locked; an officer must log in")},
	{match: is(custody.ErrNotInitialized), code: CodeConflict, message: say("the console is not initialised yet")},
	{match: is(custody.ErrForbidden), code: CodeForbidden},
	{match: is(custody.ErrInvalid, custody.ErrWeakPassphrase, custody.ErrConfirmation), code: CodeInvalid},
	{match: is(custody.ErrInitialized, custody.ErrOfficerExists, custody.ErrLastAdmin, custody.ErrRotationPending,
		custody.ErrNotPending, custody.ErrNotRevoked, custody.ErrRevoked, custody.ErrDestroyed, custody.ErrNoAutoUnseal), code: CodeConflict},
	{match: is(errNoToken), code: CodeConflict},

	// release: requests and their decisions, the release policy.
	{match: is(release.ErrNotPending, release.ErrExpired, release.ErrAlreadyApproved), code: CodeConflict},
	{match: is(release.ErrReauthenticate), code: CodeReauth},
	{match: is(release.ErrNoOfficer), code: CodeUnauthorized},
	{match: is(release.ErrInvalidPolicy), code: CodeInvalid},
	{match: is(release.ErrReasonRequired), code: CodeInvalid, field: "reason", message: say(release.ErrReasonRequired.Error())},

	// quorum: admin actions under the two-person rule.
	{match: is(quorum.ErrForbidden, quorum.ErrNotRequester), code: CodeForbidden},
	{match: is(quorum.ErrReauthenticate), code: CodeReauth},
	{match: is(quorum.ErrAlreadyVoted, quorum.ErrNotPending, quorum.ErrExpired, quorum.ErrChanged, quorum.ErrNotCollectable), code: CodeConflict},
	{match: is(quorum.ErrInvalid), code: CodeInvalid},

	// audit: the Audit screen's filters.
	{match: is(audit.ErrInvalidQuery), code: CodeInvalid, field: "to", message: say("the start of the date range must be before its end")},

	// attest: reference values.
	{match: is(attest.ErrInvalidReference), code: CodeInvalid},

	// diskimage and images: the wizard's source, output and name.
	{match: isType[*diskimage.ContainerError], code: CodeUnsupportedFormat},
	{match: is(diskimage.ErrUnrecognisedRaw), code: CodeConfirmRaw},
	{match: is(diskimage.ErrUnsupported, diskimage.ErrCorrupt, diskimage.ErrInvalid, images.ErrInvalidName), code: CodeInvalid},
	{match: is(diskimage.ErrOutputExists, images.ErrNameTaken), code: CodeConflict},

	// store: the database.
	{match: is(store.ErrNotFound), code: CodeNotFound},
	{match: is(store.ErrBusy, store.ErrInUse), code: CodeUnavailable, message: say("the database is busy; try again in a moment")},

	// A file the officer named in the image wizard is missing (some tools
	// say so only in words). Only the wizard's calls name files: elsewhere a
	// missing file is the console's own problem (a backup snapshot, a
	// certificate), and its path stays in the log, not in the officer's view.
	{match: func(err error) bool {
		return errors.Is(err, fs.ErrNotExist) || strings.Contains(err.Error(), "no such file")
	}, ops: []string{"inspect image", "prepare image"}, code: CodeNotFound},
}

// is matches an error that is, or wraps, one of targets.
func is(targets ...error) func(error) bool {
	return func(err error) bool {
		for _, t := range targets {
			if errors.Is(err, t) {
				return true
			}
		}
		return false
	}
}

// isType matches an error that is, or wraps, an error of type T.
func isType[T error](err error) bool {
	var t T
	return errors.As(err, &t)
}

// say replaces the error's text with a fixed message.
func say(msg string) func(error) string { return func(error) string { return msg } }
