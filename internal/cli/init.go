package cli

import (
	"flag"
	"fmt"
	"io"

	"keyholder/backend/custody"
)

var initCommand = &command{
	name:  "init",
	short: "initialise a console: master key and first officer",
	usage: func(w io.Writer) {
		fmt.Fprint(w, `Usage: keyholder init [--officer NAME] [--passphrase-file F] [--data DIR]

Creates the console's master key (kept only wrapped under each officer's
passphrase with Argon2id) and its first officer, an admin. Without
--passphrase-file the passphrase is asked for twice without echo. Afterwards,
split the master key into recovery shares: keyholder split-key.
`)
	},
	flags: func(fs *flag.FlagSet, env *cliEnv) func([]string) error {
		officer := fs.String("officer", "admin", "name of the first officer (an admin)")
		passFile := fs.String("passphrase-file", "", "read the new passphrase from this file (- for standard input) instead of prompting")
		return func(args []string) error {
			if len(args) > 0 {
				return &exitError{code: 2, msg: fmt.Sprintf("unexpected argument %q", args[0])}
			}
			ctx, db, done, err := openCommandStore(env)
			if err != nil {
				return err
			}
			defer done()
			if ok, err := custody.Initialized(ctx, db); err != nil {
				return err
			} else if ok {
				return &exitError{code: 1, msg: "this data directory holds an initialised console already"}
			}
			pass, err := readNewPassphrase(env, *passFile, fmt.Sprintf("New passphrase for %s: ", *officer))
			if err != nil {
				return err
			}
			defer clear(pass)
			svc := custody.New(db, env.cfg.Custody)
			o, err := svc.Init(ctx, *officer, pass)
			if err != nil {
				return err
			}
			defer svc.Close(ctx)
			st, _ := svc.State(ctx)
			fmt.Fprintf(env.stdout, "Initialised console %s with officer %s (%s).\n", st.ConsoleID, o.Name, o.Role)
			fmt.Fprintln(env.stdout, "Next: split the master key into recovery shares (keyholder split-key) and keep them apart.")
			return nil
		}
	},
}
