package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"keyholder/backend/quorum"
)

// splitKeyCommand splits the console's master key into recovery shares
// (custody); its counterpart is recoverCommand. Not to be confused with
// passphraseSharesCommand, the shares of one image's recovery passphrase.
var splitKeyCommand = &command{
	name:  "split-key",
	short: "split the console's master key into M-of-N recovery shares",
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
(Shares of an image's recovery passphrase, from the image wizard, are
another thing: 'keyholder shares combine' combines them.)
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
