package app

import (
	"os"

	"keyholder/backend/attest"
	"keyholder/backend/replica"
	"runtime"
)

// Console answers questions about the running console itself (the Settings
// screen and the header).
type Console struct{ *base }

// ConsoleInfo describes the running console.
type ConsoleInfo struct {
	Version       string `json:"version"`
	Mode          string `json:"mode"`
	DataDir       string `json:"data_dir"`
	DatabasePath  string `json:"database_path"`
	SchemaVersion int    `json:"schema_version"`
	// DevSimulatedRoot is on when the console trusts the simulated AMD root.
	DevSimulatedRoot bool   `json:"dev_simulated_root"`
	Platform         string `json:"platform"`
	Hostname         string `json:"hostname"`
	// TrustedRoots are the AMD roots evidence must chain to.
	TrustedRoots []TrustedRoot `json:"trusted_roots"`
	// Database is "sqlite" or "postgres".
	Database string `json:"database"`
	// Replica is the ID of the replica that answers ("" in the desktop
	// app); Replicas are all console processes on the database.
	Replica  string         `json:"replica"`
	Replicas []replica.Info `json:"replicas"`
}

// TrustedRoot is one AMD root of trust (ARK) the verifier accepts.
type TrustedRoot struct {
	Product        string `json:"product"`
	ARKFingerprint string `json:"ark_sha256"`
	HasVLEKRoot    bool   `json:"vlek"`
}

// Info returns the console's version, mode, data location and schema.
func (c *Console) Info() (ConsoleInfo, error) {
	v, err := c.db.SchemaVersion(c.ctx)
	if err != nil {
		return ConsoleInfo{}, toError(c.log, "read console info", err)
	}
	host, _ := os.Hostname()
	roots := []TrustedRoot{}
	if prod, err := attest.ProductionRoots(); err == nil {
		for _, r := range prod {
			roots = append(roots, TrustedRoot{Product: string(r.Product), ARKFingerprint: r.Fingerprint(), HasVLEKRoot: r.ASVK != nil})
		}
	}
	self := ""
	if c.cfg.Replica != nil {
		self = c.cfg.Replica.ID()
	}
	reps, err := replica.List(c.ctx, c.db, self)
	if err != nil {
		return ConsoleInfo{}, toError(c.log, "read console info", err)
	}
	return ConsoleInfo{
		Database:         c.db.Dialect().String(),
		Replica:          self,
		Replicas:         reps,
		Version:          c.cfg.Version,
		Mode:             c.cfg.Mode,
		DataDir:          c.cfg.DataDir,
		DatabasePath:     c.db.Path(),
		SchemaVersion:    v,
		DevSimulatedRoot: c.cfg.DevTrustSimulatedRoot,
		Platform:         runtime.GOOS + "/" + runtime.GOARCH,
		Hostname:         host,
		TrustedRoots:     roots,
	}, nil
}

// PickFile opens the desktop's native file dialog and returns the chosen
// path ("" when cancelled). The web console has no dialogs: it answers
// unavailable and the wizard asks for a path on the console's machine.
func (c *Console) PickFile(title string) (string, error) {
	if c.cfg.Dialogs == nil {
		return "", &Error{Code: CodeUnavailable, Message: "file dialogs exist only in the desktop app; type a path on the console's machine"}
	}
	p, err := c.cfg.Dialogs.OpenFile(title)
	return p, toError(c.log, "open file dialog", err)
}

// PickSaveFile opens the native save dialog (desktop only).
func (c *Console) PickSaveFile(title, defaultName string) (string, error) {
	if c.cfg.Dialogs == nil {
		return "", &Error{Code: CodeUnavailable, Message: "file dialogs exist only in the desktop app; type a path on the console's machine"}
	}
	p, err := c.cfg.Dialogs.SaveFile(title, defaultName)
	return p, toError(c.log, "save file dialog", err)
}
