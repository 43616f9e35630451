package cli

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"keyholder/backend/custody"
	"keyholder/backend/quorum"
	"keyholder/backend/release"
)

var backupCommand = &command{
	name:  "backup",
	short: "write an encrypted backup of the whole console",
	usage: func(w io.Writer) {
		fmt.Fprint(w, `Usage: keyholder backup --out FILE [--collect ID] [--officer ADMIN] [--passphrase-file F] [--data DIR]

Writes the whole console state (database, officer envelopes, wrapped
secrets, audit log, and the release listener's TLS identity, whose pin the
image manifests carry) encrypted and integrity-protected under a key
derived from the master key. It works beside a running console. Restore it with
'keyholder restore' and the passphrase of an officer of the time. Needs an
admin. Under the two-person rule, on a console with more than one admin the
export waits for other admins' approval ('keyholder requests approve ID');
the admin who asked then writes it once with --collect ID.
`)
	},
	flags: func(fs *flag.FlagSet, env *cliEnv) func([]string) error {
		of := addOfficerFlags(fs)
		out := fs.String("out", "", "backup file to write (required)")
		collect := fs.String("collect", "", "receive the backup of admin action ID once other admins approved it")
		return func(args []string) error {
			if len(args) > 0 {
				return &exitError{code: 2, msg: fmt.Sprintf("unexpected argument %q", args[0])}
			}
			if *out == "" {
				return &exitError{code: 2, msg: "--out FILE is required"}
			}
			ctx, cancel := signalContext()
			defer cancel()
			db, svc, o, done, err := of.openUnlocked(ctx, env)
			if err != nil {
				return err
			}
			defer done()
			q, by := quorumFor(db, svc, o)
			id := *collect
			if id == "" {
				a, err := q.RequestBackup(ctx, by, release.TLSCertFile, release.TLSKeyFile)
				if err != nil {
					return err
				}
				if a.Status != quorum.StatusApproved {
					waiting(env.stdout, a, "keyholder backup --out "+*out+" --collect "+a.ID)
					return nil
				}
				id = a.ID
			}
			// Write beside the target and rename, so a killed run never
			// leaves a file that looks like a finished backup.
			tmp, err := os.CreateTemp(filepath.Dir(*out), "."+filepath.Base(*out)+".*.tmp")
			if err != nil {
				return fmt.Errorf("create backup file: %w", err)
			}
			defer os.Remove(tmp.Name())
			info, err := q.CollectBackup(ctx, by, id, tmp)
			if err == nil {
				err = tmp.Sync()
			}
			if cerr := tmp.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			if err := os.Rename(tmp.Name(), *out); err != nil {
				return fmt.Errorf("install backup file: %w", err)
			}
			fmt.Fprintf(env.stdout, "Backup of console %s written to %s (%d bytes of state, officers: %v, files: %v).\n", info.ConsoleID, *out, info.Bytes, info.Officers, info.Files)
			return nil
		}
	},
}

var restoreCommand = &command{
	name:  "restore",
	short: "restore a console from an encrypted backup",
	usage: func(w io.Writer) {
		fmt.Fprint(w, `Usage: keyholder restore --in FILE [--officer NAME] [--passphrase-file F] [--replace] [--data DIR]

Restores a backup made by 'keyholder backup' into the data directory,
opening it with the passphrase of an officer who existed when it was made.
A damaged, truncated or tampered file is refused before anything changes.
An existing database is replaced only with --replace and only by a backup
of the same console; stop the console first.
`)
	},
	flags: func(fs *flag.FlagSet, env *cliEnv) func([]string) error {
		of := addOfficerFlags(fs)
		in := fs.String("in", "", "backup file to read (required)")
		replace := fs.Bool("replace", false, "replace an existing database of the same console")
		return func(args []string) error {
			if len(args) > 0 {
				return &exitError{code: 2, msg: fmt.Sprintf("unexpected argument %q", args[0])}
			}
			if *in == "" {
				return &exitError{code: 2, msg: "--in FILE is required"}
			}
			ctx, cancel := signalContext()
			defer cancel()
			f, err := os.Open(*in)
			if err != nil {
				return fmt.Errorf("open backup: %w", err)
			}
			defer f.Close()
			pass, err := of.passphrase(env, "Passphrase of an officer in the backup: ")
			if err != nil {
				return err
			}
			defer clear(pass)
			if err := os.MkdirAll(env.dataDir, 0o700); err != nil {
				return fmt.Errorf("create data directory: %w", err)
			}
			info, err := custody.RestoreBackup(ctx, f, filepath.Join(env.dataDir, "keyholder.db"), custody.RestoreOptions{
				Officer: of.officer, Passphrase: pass, Replace: *replace})
			if err != nil {
				return err
			}
			fmt.Fprintf(env.stdout, "Restored console %s (backup of %s, %d bytes of state) into %s.\n",
				info.ConsoleID, info.CreatedAt.Local().Format("2006-01-02 15:04"), info.Bytes, env.dataDir)
			return nil
		}
	},
}
