package cli

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

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
