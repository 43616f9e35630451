package cli

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"keyholder/backend/audit"
	"keyholder/backend/custody"
	"keyholder/backend/store"
)

var auditCommand = &command{
	name:  "audit",
	short: "verify or export the hash-chained audit log",
	usage: func(w io.Writer) {
		fmt.Fprint(w, `verify checks every entry's hash and link and every signed checkpoint, and
names the first bad entry. A log cut back to before its newest checkpoint is
named as truncated; the entries after the newest checkpoint (fewer than N,
64 by default, while the console runs unlocked; none after a clean
shutdown) are counted, since they could be cut off unnoticed. Keep the
printed head to detect a later cut that also removes checkpoints. With an
officer passphrase the checkpoint key is taken from its wrapped private half
(so a public key swapped in the database is caught); without one, from the
database, and the fingerprint is printed to compare with a recorded one.
export writes the entries oldest first: JSON lines with --json, else text.
`)
	},
	subcommands: func(fs *flag.FlagSet, env *cliEnv) []*subcommand {
		of := addOfficerFlags(fs)
		asJSON := fs.Bool("json", false, "JSON output (export: JSON lines)")
		out := fs.String("out", "", "export: write to this file instead of standard output")
		run := func(sub string) error {
			ctx, db, done, err := openCommandStore(env)
			if err != nil {
				return err
			}
			defer done()
			if sub == "export" {
				return exportAudit(env, db, *asJSON, *out)
			}
			svc := custody.New(db, env.cfg.Custody)
			if of.passphraseFile != "" {
				svc, _, err = of.unlock(ctx, env, db)
				if err != nil {
					return err
				}
				defer svc.Close(ctx)
			}
			pub, authentic, err := svc.AuditPublicKey(ctx)
			if err != nil && !errors.Is(err, custody.ErrNotInitialized) {
				return err
			}
			rep, verr := audit.Verify(ctx, db, pub)
			if *asJSON {
				res := map[string]any{"ok": verr == nil, "report": rep, "key_authenticated": authentic}
				var ve *audit.VerifyError
				if errors.As(verr, &ve) {
					res["first_bad_entry"] = ve.Seq
					res["problem"] = ve.Problem
				}
				json.NewEncoder(env.stdout).Encode(res)
			}
			if verr != nil {
				var ve *audit.VerifyError
				if errors.As(verr, &ve) {
					return &exitError{code: 1, msg: fmt.Sprintf("audit log does NOT verify: first bad entry is %d: %s (%d entries, %d signed checkpoints)",
						ve.Seq, ve.Problem, rep.Entries, rep.Checkpoints)}
				}
				return verr
			}
			if !*asJSON {
				fp := "none"
				if len(pub) > 0 {
					fp = hex.EncodeToString(pub)
				}
				fmt.Fprintf(env.stdout, "audit log verifies: %d entries, head %s\n", rep.Entries, rep.Head)
				fmt.Fprintf(env.stdout, "%d signed checkpoints, the last at entry %d; %d entries follow it (protected by the chain only: they could be cut off the end unnoticed until the next checkpoint)\n",
					rep.Checkpoints, rep.LastCheckpoint, rep.Unsigned)
				if authentic {
					fmt.Fprintf(env.stdout, "checkpoint key %s (opened with the officer's passphrase)\n", fp)
				} else {
					fmt.Fprintf(env.stdout, "checkpoint key %s (read from the database; pass --passphrase-file to authenticate it)\n", fp)
				}
			}
			return nil
		}
		return []*subcommand{
			{name: "verify", synopsis: "keyholder audit verify [--passphrase-file F [--officer NAME]] [--json] [--data DIR]",
				flags: sharedFlagsOnly(func([]string) error { return run("verify") })},
			{name: "export", synopsis: "keyholder audit export [--json] [--out FILE] [--data DIR]",
				flags: sharedFlagsOnly(func([]string) error { return run("export") })},
		}
	},
}

func exportAudit(env *cliEnv, sdb *store.DB, asJSON bool, out string) error {
	ctx, cancel := signalContext()
	defer cancel()
	var w io.Writer = env.stdout
	var tmp *os.File
	if out != "" {
		var err error
		tmp, err = os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*.tmp")
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
		defer os.Remove(tmp.Name())
		w = tmp
	}
	bw := bufio.NewWriter(w)
	if asJSON {
		if _, err := audit.Export(ctx, sdb, bw); err != nil {
			return err
		}
	} else {
		pr, pw := io.Pipe()
		go func() {
			_, err := audit.Export(ctx, sdb, pw)
			pw.CloseWithError(err)
		}()
		dec := json.NewDecoder(pr)
		for dec.More() {
			var e audit.Entry
			if err := dec.Decode(&e); err != nil {
				return fmt.Errorf("export: %w", err)
			}
			fmt.Fprintf(bw, "%6d  %s  %-22s %-26s %-28s %-8s %s\n", e.Seq, e.At.Local().Format("2006-01-02 15:04:05"), e.Actor, e.Action, e.Subject, e.Decision, e.Reason)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if tmp != nil {
		if err := tmp.Close(); err != nil {
			return fmt.Errorf("export: %w", err)
		}
		if err := os.Rename(tmp.Name(), out); err != nil {
			return fmt.Errorf("export: %w", err)
		}
	}
	return nil
}
