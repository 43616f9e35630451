package cli

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"keyholder/backend/custody"
)

var recoverCommand = &command{
	name:  "recover",
	short: "rebuild access from recovery shares and set a new passphrase",
	usage: func(w io.Writer) {
		fmt.Fprint(w, `Usage: keyholder recover --officer NAME [--shares-file F] [--new-passphrase-file F] [--data DIR]

Combines M recovery shares (one per line in --shares-file, or typed in, an
empty line ends the list), checks that they rebuild this console's master
key, and gives officer NAME a new passphrase (a new name becomes an admin).
A share with a typo is named before anything is combined.
`)
	},
	flags: func(fs *flag.FlagSet, env *cliEnv) func([]string) error {
		officer := fs.String("officer", "", "officer who receives the new passphrase (required)")
		sharesFile := fs.String("shares-file", "", "file with one share per line (default: read them from standard input)")
		newPass := fs.String("new-passphrase-file", "", "read the new passphrase from this file instead of prompting")
		return func(args []string) error {
			if len(args) > 0 {
				return &exitError{code: 2, msg: fmt.Sprintf("unexpected argument %q", args[0])}
			}
			if *officer == "" {
				return &exitError{code: 2, msg: "--officer NAME is required"}
			}
			var r io.Reader = env.stdin
			if *sharesFile != "" {
				f, err := os.Open(*sharesFile)
				if err != nil {
					return fmt.Errorf("shares file: %w", err)
				}
				defer f.Close()
				r = f
			} else {
				fmt.Fprintln(env.stderr, "Enter the recovery shares, one per line; an empty line ends the list:")
			}
			var shares []string
			sc := bufio.NewScanner(r)
			for sc.Scan() {
				line := strings.TrimSpace(sc.Text())
				if line == "" {
					if len(shares) > 0 && *sharesFile == "" {
						break
					}
					continue
				}
				if _, s, ok := strings.Cut(line, ": "); ok && strings.HasPrefix(line, "share ") {
					line = s // accept the lines split-key printed
				}
				shares = append(shares, line)
			}
			if err := sc.Err(); err != nil {
				return fmt.Errorf("read shares: %w", err)
			}
			ctx, db, done, err := openCommandStore(env)
			if err != nil {
				return err
			}
			defer done()
			pass, err := readNewPassphrase(env, *newPass, fmt.Sprintf("New passphrase for %s: ", *officer))
			if err != nil {
				return err
			}
			defer clear(pass)
			svc := custody.New(db, env.cfg.Custody)
			o, err := svc.Recover(ctx, shares, *officer, pass)
			if err != nil {
				return err
			}
			defer svc.Close(ctx)
			fmt.Fprintf(env.stdout, "Access rebuilt from %d shares; %s (%s) has a new passphrase.\n", len(shares), o.Name, o.Role)
			return nil
		}
	},
}
