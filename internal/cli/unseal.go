package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"keyholder/backend/custody"
	"keyholder/backend/hsm"
	"keyholder/backend/quorum"
)

// pkcs11Flags say how to reach the auto-unseal token. Each falls back to
// an environment variable, so that a service manager can pass them.
type pkcs11Flags struct {
	module, tokenLabel, pinFile, keyLabel string
}

func addPKCS11Flags(fs *flag.FlagSet) *pkcs11Flags {
	f := &pkcs11Flags{}
	fs.StringVar(&f.module, "pkcs11-module", "", "PKCS#11 library of the auto-unseal token (default $KEYHOLDER_PKCS11_MODULE)")
	fs.StringVar(&f.tokenLabel, "token-label", "", "label of the auto-unseal token (default $KEYHOLDER_PKCS11_TOKEN, or the one set up)")
	fs.StringVar(&f.pinFile, "pin-file", "", "file holding the token's user PIN (default $KEYHOLDER_PKCS11_PIN_FILE, or the PIN in $KEYHOLDER_PKCS11_PIN)")
	fs.StringVar(&f.keyLabel, "key-label", "", "label of the AES wrapping key in the token (default "+hsm.DefaultKeyLabel+", or the one set up)")
	return f
}

func envOr(v, name string) string {
	if v != "" {
		return v
	}
	return os.Getenv(name)
}

// describe resolves the flags, the environment and (for a setup already
// made) the stored labels into the token's description, without the PIN
// and without touching the token.
func (f *pkcs11Flags) describe(stored custody.UnsealInfo) (custody.UnsealInfo, error) {
	info := custody.UnsealInfo{Kind: "pkcs11", Module: envOr(f.module, "KEYHOLDER_PKCS11_MODULE"), TokenLabel: envOr(f.tokenLabel, "KEYHOLDER_PKCS11_TOKEN"),
		KeyLabel: f.keyLabel, Mechanism: hsm.Mechanism}
	if info.TokenLabel == "" {
		info.TokenLabel = stored.TokenLabel
	}
	if info.KeyLabel == "" {
		info.KeyLabel = stored.KeyLabel
	}
	if info.KeyLabel == "" {
		info.KeyLabel = hsm.DefaultKeyLabel
	}
	if info.Module == "" {
		return info, errors.New("no PKCS#11 module given (--pkcs11-module or KEYHOLDER_PKCS11_MODULE)")
	}
	if info.TokenLabel == "" {
		return info, errors.New("no token label given (--token-label or KEYHOLDER_PKCS11_TOKEN)")
	}
	return info, nil
}

// config resolves the flags, the environment and (for a setup already
// made) the stored labels. The PIN is read here; the caller wipes cfg.PIN.
func (f *pkcs11Flags) config(env *cliEnv, stored custody.UnsealInfo) (hsm.Config, error) {
	info, err := f.describe(stored)
	cfg := hsm.Config{Module: info.Module, TokenLabel: info.TokenLabel, KeyLabel: info.KeyLabel}
	if err != nil {
		return cfg, err
	}
	switch file := envOr(f.pinFile, "KEYHOLDER_PKCS11_PIN_FILE"); {
	case file != "":
		pin, err := readSecretFile(env, file)
		if err != nil {
			return cfg, fmt.Errorf("token PIN: %w", err)
		}
		cfg.PIN = pin
	case os.Getenv("KEYHOLDER_PKCS11_PIN") != "":
		cfg.PIN = []byte(os.Getenv("KEYHOLDER_PKCS11_PIN"))
	default:
		return cfg, errors.New("no token PIN given (--pin-file, KEYHOLDER_PKCS11_PIN_FILE or KEYHOLDER_PKCS11_PIN)")
	}
	return cfg, nil
}

// opened describes an open token as describe does.
func opened(tok *hsm.Token, cfg hsm.Config) custody.UnsealInfo {
	return custody.UnsealInfo{Kind: "pkcs11", TokenLabel: tok.TokenLabel(), KeyLabel: tok.KeyLabel(), Mechanism: hsm.Mechanism, Module: cfg.Module}
}

// describer is app.Config.AutoUnsealTokenInfo for a console started with
// these flags: nil when no PKCS#11 module is given.
func (f *pkcs11Flags) describer() func() (custody.UnsealInfo, error) {
	if envOr(f.module, "KEYHOLDER_PKCS11_MODULE") == "" {
		return nil
	}
	return func() (custody.UnsealInfo, error) { return f.describe(custody.UnsealInfo{}) }
}

// opener is app.Config.AutoUnsealToken for a console started with these
// flags: nil when no PKCS#11 module is given. Each call reads the PIN,
// opens the token (making the AES key when it has none) and wipes the PIN.
// It runs only to carry out an approved setup.
func (f *pkcs11Flags) opener(env *cliEnv) func() (custody.KeyWrapper, custody.UnsealInfo, func(), error) {
	if envOr(f.module, "KEYHOLDER_PKCS11_MODULE") == "" {
		return nil
	}
	return func() (custody.KeyWrapper, custody.UnsealInfo, func(), error) {
		cfg, err := f.config(env, custody.UnsealInfo{})
		defer clear(cfg.PIN)
		if err != nil {
			return nil, custody.UnsealInfo{}, nil, err
		}
		tok, err := hsm.Open(cfg, true)
		if err != nil {
			return nil, custody.UnsealInfo{}, nil, err
		}
		return tok, opened(tok, cfg), func() { tok.Close() }, nil
	}
}

var unsealCommand = &command{
	name:  "unseal",
	short: "set up, show or remove auto-unseal through a PKCS#11 token",
	usage: func(w io.Writer) {
		fmt.Fprint(w, `Auto-unseal stores the master key a second time, wrapped (AES-GCM) by an
AES key inside a PKCS#11 token (an HSM; SoftHSM2 for trials). setup creates
the key in the token when it has none. A console started with access to
the token (keyholder serve with the same module, token and PIN, from flags
or KEYHOLDER_PKCS11_MODULE, _TOKEN, _PIN_FILE or _PIN) unlocks itself
without an officer; without it, it stays locked and says why. The PIN is
never stored.

setup and remove are admin actions under the two-person rule: on a
console with two admins or more, one admin's setup or remove waits until
another admin approves it ('keyholder requests approve ID', or the
Approvals screen); the rules say how many (keyholder requests list shows
them as auto_unseal.setup and auto_unseal.remove). A setup request names
the token (library, token label, key label) and touches nothing; the
admins approve that token, and then the admin who asked runs
'keyholder unseal setup --collect ID' with the same token flags: only then
is the key created in the token when it has none, and the master key
wrapped by it (never shown) and stored. Another token is refused. The
approving admins need not reach the token. On a console with one admin,
setup does both at once.
`)
	},
	subcommands: func(fs *flag.FlagSet, env *cliEnv) []*subcommand {
		of := addOfficerFlags(fs)
		pf := addPKCS11Flags(fs)
		asJSON := fs.Bool("json", false, "status: print JSON")
		collect := fs.String("collect", "", "setup: carry out approved auto-unseal setup `ID` (the admin who asked, with the same token flags)")
		run := func(sub string) error {
			ctx, cancel := signalContext()
			defer cancel()
			switch sub {
			case "status":
				db, err := openStore(ctx, env, false)
				if err != nil {
					return err
				}
				defer db.Close()
				info, err := custody.New(db, env.cfg.Custody).AutoUnsealInfo(ctx)
				if errors.Is(err, custody.ErrNoAutoUnseal) {
					if *asJSON {
						return json.NewEncoder(env.stdout).Encode(map[string]any{"auto_unseal": false})
					}
					fmt.Fprintln(env.stdout, "Auto-unseal is not set up: an officer unlocks the console.")
					return nil
				}
				if err != nil {
					return err
				}
				if *asJSON {
					return json.NewEncoder(env.stdout).Encode(map[string]any{"auto_unseal": true, "key": info})
				}
				fmt.Fprintf(env.stdout, "Auto-unseal: %s key %q on token %q (%s).\n", info.Kind, info.KeyLabel, info.TokenLabel, info.Mechanism)
				return nil
			case "setup":
				cfg, err := pf.config(env, custody.UnsealInfo{})
				defer clear(cfg.PIN)
				if err != nil {
					return &exitError{code: 2, msg: err.Error()}
				}
				info, err := pf.describe(custody.UnsealInfo{})
				if err != nil {
					return &exitError{code: 2, msg: err.Error()}
				}
				db, svc, o, done, err := of.openUnlocked(ctx, env)
				if err != nil {
					return err
				}
				defer done()
				q, by := quorumFor(db, svc, o)
				id := *collect
				if id == "" {
					a, err := q.SetupAutoUnseal(ctx, by, info)
					if err != nil {
						return err
					}
					if a.Status != quorum.StatusApproved {
						waiting(env.stdout, a, collectUnsealCommand(a.ID, info, pf))
						return nil
					}
					id = a.ID
				}
				// Approved: only now, and only for the approved token, is
				// the token opened (and its key made).
				approved, err := q.ApprovedAutoUnseal(ctx, by, id)
				if err != nil {
					return err
				}
				if err := quorum.MatchAutoUnseal(id, approved, info); err != nil {
					return err
				}
				tok, err := hsm.Open(cfg, true)
				if err != nil {
					return err
				}
				defer tok.Close()
				if err := q.CollectAutoUnseal(ctx, by, id, tok, opened(tok, cfg)); err != nil {
					return err
				}
				if tok.Created() {
					fmt.Fprintf(env.stdout, "Created AES key %q in token %q.\n", info.KeyLabel, info.TokenLabel)
				}
				fmt.Fprintf(env.stdout, "Auto-unseal is set up: a console with access to token %q unlocks itself at start.\n", info.TokenLabel)
				return nil
			case "remove":
				db, svc, o, done, err := of.openUnlocked(ctx, env)
				if err != nil {
					return err
				}
				defer done()
				q, by := quorumFor(db, svc, o)
				a, err := q.RemoveAutoUnseal(ctx, by)
				if err != nil {
					return err
				}
				if a.Status != quorum.StatusDone {
					waiting(env.stdout, a, "")
					return nil
				}
				fmt.Fprintln(env.stdout, "Auto-unseal is removed: the next start waits for an officer.")
				return nil
			}
			return &exitError{code: 2, msg: fmt.Sprintf("unknown subcommand %q", sub)}
		}
		sub := func(name string) func(*flag.FlagSet) func([]string) error {
			return sharedFlagsOnly(func([]string) error { return run(name) })
		}
		return []*subcommand{
			{name: "setup", synopsis: "keyholder unseal setup  --pkcs11-module LIB --token-label L --pin-file F [--key-label K] [--collect ID] [--officer ADMIN --passphrase-file F]", flags: sub("setup")},
			{name: "status", synopsis: "keyholder unseal status [--json]", flags: sub("status")},
			{name: "remove", synopsis: "keyholder unseal remove [--officer ADMIN --passphrase-file F]", flags: sub("remove")},
		}
	},
}

// collectUnsealCommand is the command that carries out approved setup id
// with the token it names (the PIN as it was given).
func collectUnsealCommand(id string, info custody.UnsealInfo, pf *pkcs11Flags) string {
	cmd := fmt.Sprintf("keyholder unseal setup --collect %s --pkcs11-module %s --token-label %s --key-label %s", id, info.Module, info.TokenLabel, info.KeyLabel)
	if pf.pinFile != "" {
		cmd += " --pin-file " + pf.pinFile
	}
	return cmd
}

// autoUnsealHook is the consoleHooks.unlock of serve and the desktop app:
// autoUnsealAtStart, which never stops the start.
func autoUnsealHook(log *slog.Logger, pf *pkcs11Flags, env *cliEnv, enabled bool) func(context.Context, *custody.Service) error {
	return func(ctx context.Context, cust *custody.Service) error {
		autoUnsealAtStart(ctx, log, cust, pf, env, enabled)
		return nil
	}
}

// autoUnsealAtStart unlocks the console's key service through its PKCS#11
// token when auto-unseal is set up (and enabled). Whatever fails (no
// module or PIN given, token absent, wrong PIN, another key), the console
// keeps running locked: the reason goes to the log and to the key
// service's State, which the officer screens show. It reports whether the
// service is unlocked afterwards.
func autoUnsealAtStart(ctx context.Context, log *slog.Logger, cust *custody.Service, pf *pkcs11Flags, env *cliEnv, enabled bool) bool {
	if cust.Unlocked() {
		return true
	}
	info, err := cust.AutoUnsealInfo(ctx)
	if errors.Is(err, custody.ErrNoAutoUnseal) || errors.Is(err, custody.ErrNotInitialized) {
		return false
	}
	locked := func(reason string) bool {
		cust.SetLockedReason(reason)
		log.Warn("key service stays locked", "reason", reason)
		return false
	}
	if err != nil {
		return locked("auto-unseal: " + err.Error())
	}
	if !enabled {
		return locked("auto-unseal is set up but turned off (--auto-unseal=false); an officer must log in")
	}
	cfg, err := pf.config(env, info)
	if err != nil {
		return locked(fmt.Sprintf("auto-unseal is set up (token %q) but %s", info.TokenLabel, err))
	}
	defer clear(cfg.PIN)
	tok, err := hsm.Open(cfg, false)
	if err != nil {
		return locked("auto-unseal: " + err.Error())
	}
	defer tok.Close()
	if err := cust.AutoUnseal(ctx, tok); err != nil {
		log.Warn("key service stays locked", "reason", cust.LockedReason())
		return false
	}
	log.Info("key service unlocked through the PKCS#11 token", "token", info.TokenLabel, "key", info.KeyLabel)
	return true
}
