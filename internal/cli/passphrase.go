package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"golang.org/x/term"

	"keyholder/backend/custody"
	"keyholder/backend/store"
)

// officerFlags are the flags of a command that unlocks the key service:
// --officer NAME (optional when the console has one officer) and
// --passphrase-file F ("-" reads standard input; without it the passphrase
// is prompted for on the terminal without echo).
type officerFlags struct {
	officer        string
	passphraseFile string
}

// addOfficerFlags declares --officer and --passphrase-file on fs.
func addOfficerFlags(fs *flag.FlagSet) *officerFlags {
	f := &officerFlags{}
	fs.StringVar(&f.officer, "officer", "", "officer name (default: the only officer)")
	fs.StringVar(&f.passphraseFile, "passphrase-file", "", "read the officer passphrase from this file (- for standard input) instead of prompting")
	return f
}

// passphrase returns the officer's passphrase from the file or the terminal.
// The caller wipes it.
func (f *officerFlags) passphrase(env *cliEnv, prompt string) ([]byte, error) {
	return readPassphrase(env, f.passphraseFile, prompt)
}

// unlock opens the key service with the officer's passphrase.
func (f *officerFlags) unlock(ctx context.Context, env *cliEnv, db *store.DB) (*custody.Service, custody.Officer, error) {
	svc := custody.New(db, env.cfg.Custody)
	if ok, err := custody.Initialized(ctx, db); err != nil {
		return nil, custody.Officer{}, err
	} else if !ok {
		return nil, custody.Officer{}, custody.ErrNotInitialized
	}
	who := f.officer
	if who == "" {
		who = "officer"
	}
	pass, err := f.passphrase(env, fmt.Sprintf("Passphrase for %s: ", who))
	if err != nil {
		return nil, custody.Officer{}, err
	}
	defer clear(pass)
	o, err := svc.Unlock(ctx, f.officer, pass)
	if err != nil {
		return nil, o, err
	}
	return svc, o, nil
}

// openUnlocked opens the store in env's data directory (shared with a
// running console) and unlocks the key service with the officer's
// passphrase. done signs the audit tail, locks the service and closes the
// store, in that order.
func (f *officerFlags) openUnlocked(ctx context.Context, env *cliEnv) (db *store.DB, svc *custody.Service, o custody.Officer, done func(), err error) {
	db, err = openStore(ctx, env, false)
	if err != nil {
		return nil, nil, o, nil, err
	}
	svc, o, err = f.unlock(ctx, env, db)
	if err != nil {
		db.Close()
		return nil, nil, o, nil, err
	}
	return db, svc, o, func() { svc.Close(ctx); db.Close() }, nil
}

// readPassphrase reads a passphrase: the first line of file ("-" is
// standard input), or a no-echo prompt on the terminal when file is "".
func readPassphrase(env *cliEnv, file, prompt string) ([]byte, error) {
	if file != "" {
		return readSecretFile(env, file)
	}
	in, ok := env.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(in.Fd())) {
		return nil, &exitError{code: 2, msg: "no terminal to ask for the passphrase; pass --passphrase-file FILE (or - for standard input)"}
	}
	fmt.Fprint(env.stderr, prompt)
	p, err := term.ReadPassword(int(in.Fd()))
	fmt.Fprintln(env.stderr)
	if err != nil {
		return nil, fmt.Errorf("read passphrase: %w", err)
	}
	return p, nil
}

// readNewPassphrase reads a new passphrase: from file, or prompted twice.
func readNewPassphrase(env *cliEnv, file, prompt string) ([]byte, error) {
	p, err := readPassphrase(env, file, prompt)
	if err != nil || file != "" {
		return p, err
	}
	again, err := readPassphrase(env, "", "Repeat it: ")
	if err != nil {
		clear(p)
		return nil, err
	}
	defer clear(again)
	if !bytes.Equal(p, again) {
		clear(p)
		return nil, &exitError{code: 1, msg: "the passphrases differ"}
	}
	return p, nil
}

// readSecretFile returns the first line of file without its line ending.
func readSecretFile(env *cliEnv, file string) ([]byte, error) {
	var r io.Reader
	if file == "-" {
		r = env.stdin
	} else {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("passphrase file: %w", err)
		}
		defer f.Close()
		r = f
	}
	// Byte by byte, so that two passphrases can come one per line from the
	// same standard input (--passphrase-file - --new-passphrase-file -).
	line := make([]byte, 0, 128)
	var b [1]byte
	for len(line) < 4096 {
		n, err := r.Read(b[:])
		if n == 1 {
			if b[0] == '\n' {
				break
			}
			line = append(line, b[0])
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			clear(line)
			return nil, fmt.Errorf("passphrase file: %w", err)
		}
	}
	p := bytes.Clone(bytes.TrimRight(line, "\r"))
	clear(line)
	clear(b[:])
	if len(p) == 0 {
		return nil, &exitError{code: 2, msg: "the passphrase file is empty"}
	}
	return p, nil
}

// custodyHint adds what the person can do about a custody error.
func custodyHint(err error) string {
	var te *custody.ThrottledError
	switch {
	case errors.As(err, &te):
		return err.Error()
	case errors.Is(err, custody.ErrNotInitialized):
		return "the console is not initialised; run 'keyholder init' first"
	case errors.Is(err, custody.ErrWrongPassphrase):
		return err.Error() + " (each failure is audited; repeated failures slow down)"
	}
	return ""
}
