package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"

	"keyholder/backend/custody"
	"keyholder/backend/quorum"
)

var officersCommand = &command{
	name:  "officers",
	short: "list, add or remove officers",
	usage: func(w io.Writer) {
		fmt.Fprint(w, `Each officer has their own envelope of the master key; adding or removing
one re-encrypts no secret. Changes need an admin's passphrase. Under the
two-person rule, adding or removing an officer and raising a role (or
changing an admin's) wait for other admins' approval when the console has
more than one admin ('keyholder requests').
`)
	},
	subcommands: func(fs *flag.FlagSet, env *cliEnv) []*subcommand {
		of := addOfficerFlags(fs)
		asJSON := fs.Bool("json", false, "print JSON")
		role := fs.String("role", "approver", "role of a new officer: admin, approver or viewer")
		newPass := fs.String("new-passphrase-file", "", "read the new officer's passphrase from this file (- for standard input) instead of prompting")
		list := func([]string) error {
			ctx, db, done, err := openCommandStore(env)
			if err != nil {
				return err
			}
			defer done()
			list, err := custody.New(db, env.cfg.Custody).Officers(ctx)
			if err != nil {
				return err
			}
			if *asJSON {
				return json.NewEncoder(env.stdout).Encode(list)
			}
			tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tROLE\tLAST LOGIN\tFAILED")
			for _, o := range list {
				last := "never"
				if !o.LastLoginAt.IsZero() {
					last = o.LastLoginAt.Local().Format("2006-01-02 15:04")
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", o.Name, o.Role, last, o.FailedAttempts)
			}
			return tw.Flush()
		}
		passwd := func([]string) error {
			ctx, db, done, err := openCommandStore(env)
			if err != nil {
				return err
			}
			defer done()
			svc := custody.New(db, env.cfg.Custody)
			old, err := of.passphrase(env, "Current passphrase: ")
			if err != nil {
				return err
			}
			defer clear(old)
			p, err := readNewPassphrase(env, *newPass, "New passphrase: ")
			if err != nil {
				return err
			}
			defer clear(p)
			if err := svc.ChangePassphrase(ctx, of.officer, old, p); err != nil {
				return err
			}
			defer svc.Close(ctx)
			fmt.Fprintln(env.stdout, "Passphrase changed.")
			return nil
		}
		// change runs add, remove or role as an admin, under the
		// two-person rule.
		change := func(sub string) func([]string) error {
			return func(rest []string) error {
				ctx, db, done, err := openCommandStore(env)
				if err != nil {
					return err
				}
				defer done()
				svc, admin, err := of.unlock(ctx, env, db)
				if err != nil {
					return err
				}
				defer svc.Close(ctx)
				q, by := quorumFor(db, svc, admin)
				var a quorum.Action
				switch sub {
				case "add":
					p, err := readNewPassphrase(env, *newPass, fmt.Sprintf("Passphrase for the new officer %s: ", rest[0]))
					if err != nil {
						return err
					}
					defer clear(p)
					a, err = q.AddOfficer(ctx, by, rest[0], custody.Role(*role), p)
					if err != nil {
						return err
					}
				case "remove":
					if a, err = q.RemoveOfficer(ctx, by, rest[0]); err != nil {
						return err
					}
				case "role":
					if a, err = q.SetRole(ctx, by, rest[0], custody.Role(rest[1])); err != nil {
						return err
					}
				}
				if a.Status != quorum.StatusDone {
					waiting(env.stdout, a, "")
					return nil
				}
				switch sub {
				case "add":
					fmt.Fprintf(env.stdout, "Added officer %s (%s).\n", rest[0], *role)
				case "remove":
					fmt.Fprintf(env.stdout, "Removed officer %s.\n", rest[0])
				case "role":
					fmt.Fprintf(env.stdout, "%s is now %s.\n", rest[0], rest[1])
				}
				return nil
			}
		}
		return []*subcommand{
			{name: "list", synopsis: "keyholder officers list [--json]", flags: sharedFlagsOnly(list)},
			{name: "add", synopsis: "keyholder officers add NAME --role admin|approver|viewer --new-passphrase-file F [--officer ADMIN --passphrase-file F]",
				args: 1, flags: sharedFlagsOnly(change("add"))},
			{name: "remove", synopsis: "keyholder officers remove NAME [--officer ADMIN --passphrase-file F]", args: 1, flags: sharedFlagsOnly(change("remove"))},
			{name: "role", synopsis: "keyholder officers role NAME ROLE [--officer ADMIN --passphrase-file F]", args: 2, flags: sharedFlagsOnly(change("role"))},
			{name: "passwd", synopsis: "keyholder officers passwd [--officer NAME --passphrase-file F --new-passphrase-file F]", flags: sharedFlagsOnly(passwd)},
		}
	},
}
