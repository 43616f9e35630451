package app

import (
	"context"
	"errors"
	"sync"

	"keyholder/backend/custody"
	"keyholder/backend/diskimage"
	"keyholder/backend/images"
	"keyholder/backend/store"
)

// Images serves the Images screen: registered images and the preparation wizard.
type Images struct {
	*base
	svc *images.Service

	mu  sync.Mutex
	ops map[string]*prepareOp
}

type prepareOp struct {
	cancel context.CancelFunc
	done   bool
	result *diskimage.Result
	err    error
}

func newImages(b *base) *Images {
	return &Images{base: b, svc: images.New(b.db), ops: map[string]*prepareOp{}}
}

// List returns every registered image.
func (i *Images) List() ([]images.Image, error) {
	ims, err := i.svc.List(i.ctx)
	return ims, toError(i.log, "list images", err)
}

// Inspect describes the disk image at path (format, virtual size,
// partitions, filesystems, the partition os mode would encrypt). In the
// web console only admins and approvers may, inside the image folders an
// admin set (see checkPath).
func (i *Images) Inspect(c Caller, path string) (*diskimage.Info, error) {
	if err := i.checkPath(c, path, false); err != nil {
		return nil, err
	}
	info, err := diskimage.Inspect(path)
	return info, toError(i.log, "inspect image", err)
}

// PrepareRequest is what the preparation wizard asks for.
type PrepareRequest struct {
	Source     string `json:"source"`
	Dest       string `json:"dest"`
	Mode       string `json:"mode"`        // "data" (default) or "os"
	Output     string `json:"output"`      // "raw" (default), "gcp", "azure", "aws" (raw), "vmdk"
	SectorSize int    `json:"sector_size"` // 512 or 4096 (default)
	Name       string `json:"name"`
	// RecoveryPassphrase, if not empty, adds a recovery keyslot.
	RecoveryPassphrase string `json:"recovery_passphrase"`
	// ConfirmRaw is the officer's confirmation that a raw source Inspect
	// flagged (raw_warning) is a disk.
	ConfirmRaw bool `json:"confirm_raw"`
}

// Prepare starts encrypting req.Source into req.Dest in the background and
// returns the operation's ID. Progress arrives as EventProgress events with
// that ID (stage "encrypt", then "hash" where the output is hashed in a
// second pass: an os-mode raw, aws or azure output, or else "sync" while
// the written output is made durable); the last one has Finished set, and an
// Error unless it succeeded. Result returns the outcome. Needs a fresh
// admin session (it creates a volume and its release secret).
func (i *Images) Prepare(c Caller, req PrepareRequest) (string, error) {
	o, err := i.session.requireFresh(c, custody.RoleAdmin)
	if err != nil {
		return "", toError(i.log, "prepare image", err)
	}
	if err := i.checkPath(c, req.Source, false); err != nil {
		i.auditPrepareFailure("officer:"+o.Name, req, err)
		return "", err
	}
	if err := i.checkPath(c, req.Dest, true); err != nil {
		i.auditPrepareFailure("officer:"+o.Name, req, err)
		return "", err
	}
	if !i.custody.Unlocked() {
		return "", &Error{Code: CodeUnavailable, Message: "the key service is locked"}
	}
	if err := checkPrepare(req); err != nil {
		i.auditPrepareFailure("officer:"+o.Name, req, err)
		return "", err
	}
	id := store.NewID("op")
	ctx, cancel := context.WithCancel(i.ctx)
	op := &prepareOp{cancel: cancel}
	i.mu.Lock()
	i.ops[id] = op
	i.mu.Unlock()
	opts := diskimage.Options{Source: req.Source, Dest: req.Dest, Mode: req.Mode, Output: req.Output, SectorSize: req.SectorSize,
		Name: req.Name, Actor: "officer:" + o.Name, ConfirmRaw: req.ConfirmRaw}
	if req.RecoveryPassphrase != "" {
		opts.RecoveryPassphrase = []byte(req.RecoveryPassphrase)
	}
	opts.Progress = func(p diskimage.Progress) {
		i.events.Emit(EventProgress, Progress{ID: id, Stage: p.Stage, Done: p.Done, Total: p.Total, Rate: p.Rate})
	}
	go func() {
		defer cancel()
		defer clear(opts.RecoveryPassphrase)
		res, err := diskimage.Prepare(ctx, opts, &images.Registrar{DB: i.db, Custody: i.custody, Now: i.cfg.Now})
		i.mu.Lock()
		op.done, op.result, op.err = true, res, err
		i.mu.Unlock()
		final := Progress{ID: id, Stage: "done", Finished: true}
		if err != nil {
			i.auditPrepareFailure(opts.Actor, req, err)
			var ae *Error
			if errors.As(toError(i.log, "prepare image", err), &ae) {
				final.Error = ae
			}
		} else {
			final.Done, final.Total = res.Manifest.Output.Size, res.Manifest.Output.Size
		}
		i.events.Emit(EventProgress, final)
	}()
	return id, nil
}

// Cancel stops a running preparation; it ends with a CodeCanceled error
// and leaves no output and no registered volume.
func (i *Images) Cancel(c Caller, opID string) error {
	if _, err := i.session.requireOfficer(c); err != nil {
		return err
	}
	i.mu.Lock()
	op, ok := i.ops[opID]
	i.mu.Unlock()
	if !ok {
		return &Error{Code: CodeNotFound, Message: "no such operation"}
	}
	op.cancel()
	return nil
}

// Result returns the outcome of a finished preparation (the manifest).
func (i *Images) Result(c Caller, opID string) (*diskimage.Result, error) {
	if _, err := i.session.requireOfficer(c); err != nil {
		return nil, err
	}
	i.mu.Lock()
	op, ok := i.ops[opID]
	i.mu.Unlock()
	switch {
	case !ok:
		return nil, &Error{Code: CodeNotFound, Message: "no such operation"}
	case !op.done:
		return nil, &Error{Code: CodeConflict, Message: "the operation is still running"}
	}
	return op.result, toError(i.log, "prepare image", op.err)
}
