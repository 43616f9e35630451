package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"keyholder/backend/images"
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
}

// Error formats the error as "code: message"; the Wails transport parses it back.
func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Errorf makes an *Error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// toError maps a backend error to an *Error. Errors it does not recognise
// become CodeInternal with a generic message; the detail goes to the log
// (backend errors never carry key material).
func toError(log *slog.Logger, op string, err error) error {
	if err == nil {
		return nil
	}
	var ae *Error
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, context.Canceled):
		return &Error{Code: CodeCanceled, Message: "the operation was cancelled"}
	case errors.Is(err, store.ErrNotFound):
		return &Error{Code: CodeNotFound, Message: err.Error()}
	case errors.Is(err, store.ErrBusy), errors.Is(err, store.ErrLocked):
		return &Error{Code: CodeUnavailable, Message: "the database is busy; try again in a moment"}
	case errors.Is(err, images.ErrInvalidName):
		return &Error{Code: CodeInvalid, Message: err.Error()}
	case errors.Is(err, images.ErrExists):
		return &Error{Code: CodeConflict, Message: err.Error()}
	}
	if ce := custodyError(err); ce != nil {
		return ce
	}
	log.Error("service call failed", "op", op, "err", err)
	return &Error{Code: CodeInternal, Message: op + " failed; the console log has the details"}
}
