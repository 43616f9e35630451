package cli

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"keyholder/backend/custody"
	"keyholder/backend/quorum"
)

var recoverySharesCommand = &command{
	name:  "split-key",
	short: "split the master key into M-of-N recovery shares",
	usage: func(w io.Writer) {
		fmt.Fprint(w, `Usage: keyholder split-key --threshold M --shares N [--officer ADMIN] [--passphrase-file F] [--data DIR]
       keyholder split-key --collect ID [--officer ADMIN] [--passphrase-file F] [--data DIR]

Splits the master key with Shamir's scheme into N printable shares, any M of
which rebuild access with 'keyholder recover'. Each share carries a checksum,
so a typo is found before combining. Hand each share to a different person;
the console keeps no copy. Needs an admin. Under the two-person rule, on a
console with more than one admin the split waits for other admins'
approval ('keyholder requests approve ID'); the admin who asked then
receives the shares once with --collect ID.
`)
	},
	flags: func(fs *flag.FlagSet, env *cliEnv) func([]string) error {
		of := addOfficerFlags(fs)
		m := fs.Int("threshold", 3, "M: shares needed to recover")
		n := fs.Int("shares", 5, "N: shares to make")
		collect := fs.String("collect", "", "receive the shares of admin action ID once other admins approved it")
		return func(args []string) error {
			if len(args) > 0 {
				return &exitError{code: 2, msg: fmt.Sprintf("unexpected argument %q", args[0])}
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
				a, err := q.RequestRecoveryShares(ctx, by, *m, *n)
				if err != nil {
					return err
				}
				if a.Status != quorum.StatusApproved {
					waiting(env.stdout, a, "keyholder split-key --collect "+a.ID)
					return nil
				}
				id = a.ID
			}
			a, err := quorum.Get(ctx, db, id)
			if err != nil {
				return err
			}
			shares, err := q.CollectShares(ctx, by, id)
			if err != nil {
				return err
			}
			var split struct {
				M int `json:"m"`
				N int `json:"n"`
			}
			if err := json.Unmarshal(a.Shown, &split); err != nil {
				return fmt.Errorf("admin action %s: %w", id, err)
			}
			*m, *n = split.M, split.N
			fmt.Fprintf(env.stdout, "Recovery shares (any %d of %d rebuild access). Give each to a different person:\n\n", *m, *n)
			for i, s := range shares {
				fmt.Fprintf(env.stdout, "share %d of %d: %s\n", i+1, *n, s)
			}
			return nil
		}
	},
}

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
			ctx, cancel := signalContext()
			defer cancel()
			db, err := openStore(ctx, env, false)
			if err != nil {
				return err
			}
			defer db.Close()
			pass, err := readNewPassphrase(env, *newPass, fmt.Sprintf("New passphrase for %s: ", *officer))
			if err != nil {
				return err
			}
			defer clear(pass)
			svc := custody.New(db, custodyOptions)
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
