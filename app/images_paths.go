package app

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"

	"keyholder/backend/audit"
	"keyholder/backend/custody"
	"keyholder/backend/store"
)

// settingImageFolders is the settings key of the folders on the console's
// machine that the web console may read images from and write them to.
const settingImageFolders = store.SettingImageFolders

// ImageFolders returns the folders on the console's machine that the web
// console may read disk images from and write prepared images to (empty:
// none). Any officer may read them.
func (i *Images) ImageFolders(c Caller) ([]string, error) {
	if _, err := i.session.requireOfficer(c); err != nil {
		return nil, err
	}
	fs, err := i.imageFolders(i.ctx)
	return fs, toError(i.log, "read image folders", err)
}

func (i *Images) imageFolders(ctx context.Context) ([]string, error) {
	var raw string
	err := i.db.QueryRowContext(ctx, `SELECT value FROM settings WHERE key = ?`, settingImageFolders).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return []string{}, nil
	}
	if err != nil {
		return nil, store.Classify(err)
	}
	out := []string{}
	if err := json.Unmarshal([]byte(raw), &out); err != nil {
		return nil, errors.New("the image folders setting is not a JSON list of paths")
	}
	return out, nil
}

// SetImageFolders sets the folders the web console may read images from
// and write them to; each must be an absolute path to an existing folder.
// Admins only, recently authenticated; audited.
func (i *Images) SetImageFolders(c Caller, folders []string) error {
	o, err := i.session.requireFresh(c, custody.RoleAdmin)
	if err != nil {
		return err
	}
	clean := []string{}
	for _, f := range folders {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !filepath.IsAbs(f) {
			return &Error{Code: CodeInvalid, Message: "image folders must be absolute paths: " + f}
		}
		f = filepath.Clean(f)
		if st, err := os.Stat(f); err != nil || !st.IsDir() {
			return &Error{Code: CodeInvalid, Message: "not a folder on the console's machine: " + f}
		}
		clean = append(clean, f)
	}
	val, _ := json.Marshal(clean)
	now := i.db.Now()
	err = i.db.Tx(i.ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(i.ctx, `INSERT INTO settings(key, value, updated_at) VALUES (?, ?, ?)
			ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`, settingImageFolders, string(val), store.Time(now)); err != nil {
			return store.Classify(err)
		}
		_, err := i.custody.AuditLog().Append(i.ctx, tx, audit.Entry{At: now, Actor: "officer:" + o.Name, Action: "settings.image_folders", Decision: "ok", Reason: string(val)})
		return err
	})
	i.events.Emit(EventAuditAppended, nil)
	return toError(i.log, "set image folders", err)
}

// checkPath decides whether the caller may have the console read (output
// false) or write (output true) path on the console's machine. The
// desktop console runs on the officer's own machine: any path. The web
// console runs on a server the officer reaches over the network: only
// admins and approvers, and only inside the folders an admin configured
// (SetImageFolders; none by default), after resolving symbolic links.
func (i *Images) checkPath(c Caller, path string, output bool) error {
	o, err := i.session.requireOfficer(c)
	if err != nil {
		return err
	}
	if i.cfg.Mode != "web" {
		return nil
	}
	if c.SessionID == "" {
		return errNoSession // the web console always needs an officer here
	}
	if err := checkRole(o, []custody.Role{custody.RoleAdmin, custody.RoleApprover}); err != nil {
		return err
	}
	if !filepath.IsAbs(path) {
		return &Error{Code: CodeInvalid, Message: "give an absolute path on the console's machine"}
	}
	folders, err := i.imageFolders(c.Context())
	if err != nil {
		return &Error{Code: CodeUnavailable, Message: "cannot read the image folders setting; refused"}
	}
	if len(folders) == 0 {
		return &Error{Code: CodeForbidden, Message: "the web console may not touch files until an admin sets image folders in Settings"}
	}
	var roots []string
	for _, f := range folders {
		if root, err := filepath.EvalSymlinks(f); err == nil {
			roots = append(roots, root)
		}
	}
	outside := &Error{Code: CodeForbidden, Message: "that path is outside the image folders an admin allowed"}
	// missing answers a path that does not resolve: not found inside the
	// folders, but outside them the same refusal as for a file that exists
	// (whether a file exists there is not the caller's to learn).
	missing := func(target string, e *Error) error {
		if within(roots, target) || within(folders, target) {
			return e
		}
		return outside
	}
	// Resolve links: the file itself for reading, its folder for writing
	// (the file does not exist yet).
	target := filepath.Clean(path)
	if output {
		dir, err := filepath.EvalSymlinks(filepath.Dir(target))
		if err != nil {
			return missing(target, &Error{Code: CodeNotFound, Message: "no such folder: " + filepath.Dir(target)})
		}
		target = filepath.Join(dir, filepath.Base(target))
		if st, err := os.Lstat(target); err == nil && st.Mode()&os.ModeSymlink != 0 {
			return &Error{Code: CodeForbidden, Message: "the output is a symbolic link"}
		}
	} else {
		t, err := filepath.EvalSymlinks(target)
		if err != nil {
			return missing(target, &Error{Code: CodeNotFound, Message: "no such file: " + path})
		}
		target = t
	}
	if within(roots, target) {
		return nil
	}
	return outside
}

// within reports whether path lies strictly inside one of the folders
// (lexically: both sides already cleaned or resolved).
func within(folders []string, path string) bool {
	for _, f := range folders {
		if rel, err := filepath.Rel(f, path); err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return true
		}
	}
	return false
}
