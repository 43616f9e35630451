package remote

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Modes of the desktop app.
const (
	// ModeLocal: this computer is the console (its own store and services).
	ModeLocal = "local"
	// ModeRemote: the desktop is a client of a shared console.
	ModeRemote = "remote"
)

// maxChoiceFile bounds the choice file.
const maxChoiceFile = 16 << 10

// Choice is what the desktop app remembers between starts: which console it
// is. It holds no secret (no passphrase, no session token); the pin and the
// CA file name are public.
type Choice struct {
	Mode string `json:"mode"`
	// URL, Pin and CAFile name the shared console (ModeRemote only).
	URL    string `json:"url,omitempty"`
	Pin    string `json:"pin,omitempty"`
	CAFile string `json:"ca_file,omitempty"`
}

// Options returns the client options for a remote choice.
func (c Choice) Options(userAgent string) Options {
	return Options{URL: c.URL, Pin: c.Pin, CAFile: c.CAFile, UserAgent: userAgent}
}

// ChoicePath is where the desktop app keeps its choice: desktop.json in
// keyholder's folder of the user's configuration directory.
func ChoicePath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("find the configuration directory: %w", err)
	}
	return filepath.Join(dir, "keyholder", "desktop.json"), nil
}

// ParseChoice reads a choice file's content and checks it: a remote choice
// needs an https URL and exactly one of a pin and a CA file.
func ParseChoice(b []byte) (Choice, error) {
	var c Choice
	if len(b) > maxChoiceFile {
		return c, errors.New("choice file: too large")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Choice{}, fmt.Errorf("choice file: %w", err)
	}
	if dec.More() {
		return Choice{}, errors.New("choice file: more than one JSON value")
	}
	switch c.Mode {
	case ModeLocal:
		if c.URL != "" || c.Pin != "" || c.CAFile != "" {
			return Choice{}, errors.New("choice file: a local console names no remote console")
		}
	case ModeRemote:
		if _, _, err := parseURL(c.URL); err != nil {
			return Choice{}, fmt.Errorf("choice file: %w", err)
		}
		if err := checkTrust(c.Pin, c.CAFile); err != nil {
			return Choice{}, fmt.Errorf("choice file: %w", err)
		}
	default:
		return Choice{}, fmt.Errorf("choice file: mode %q is neither %q nor %q", c.Mode, ModeLocal, ModeRemote)
	}
	return c, nil
}

// LoadChoice reads the choice at path; ok is false when there is none yet.
func LoadChoice(path string) (c Choice, ok bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Choice{}, false, nil
	}
	if err != nil {
		return Choice{}, false, fmt.Errorf("read %s: %w", path, err)
	}
	c, err = ParseChoice(b)
	if err != nil {
		return Choice{}, false, fmt.Errorf("%s: %w", path, err)
	}
	return c, true, nil
}

// SaveChoice writes c to path (owner-only, replaced atomically).
func SaveChoice(path string, c Choice) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	if _, err := ParseChoice(b); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("save the desktop choice: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".desktop-*.json")
	if err != nil {
		return fmt.Errorf("save the desktop choice: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("save the desktop choice: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save the desktop choice: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save the desktop choice: %w", err)
	}
	return nil
}

// ForgetChoice removes the choice (the next start asks again).
func ForgetChoice(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("forget the desktop choice: %w", err)
	}
	return nil
}
