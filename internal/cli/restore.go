package cli

import (
	"flag"
	"fmt"
	"io"
	"os"

	"keyholder/backend/custody"
)

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
			info, err := custody.RestoreBackup(ctx, f, databaseLocation(env), custody.RestoreOptions{
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
