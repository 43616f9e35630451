package cli

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"keyholder/backend/audit"
	"keyholder/backend/fleet"
)

var fleetCommand = &command{
	name:  "fleet",
	short: "print every guest with its attestation status, chip, TCB and last evidence",
	usage: func(w io.Writer) {
		fmt.Fprint(w, `Usage: keyholder fleet [--status verified|stale|failing|pending|revoked] [--search TEXT] [--json] [--data DIR]

Prints the guests the console knows: status (verified: fresh evidence;
stale: no heartbeat for three intervals; failing: evidence refused; pending:
waiting for an officer; revoked), image, the volumes released to it (its
root and data disks), chip, TCB, generation and the time of the last
evidence. SIMULATED marks guests whose evidence came from the simulated AMD
root.
`)
	},
	flags: func(fs *flag.FlagSet, env *cliEnv) func([]string) error {
		status := fs.String("status", "", "only guests with this status")
		search := fs.String("search", "", "only guests whose ID, name, image or chip contains this")
		asJSON := fs.Bool("json", false, "print JSON")
		return func(args []string) error {
			if len(args) > 0 {
				return &exitError{code: 2, msg: fmt.Sprintf("unexpected argument %q", args[0])}
			}
			ok := *status == ""
			for _, s := range fleet.Statuses {
				ok = ok || string(s) == *status
			}
			if !ok {
				return &exitError{code: 2, msg: fmt.Sprintf("--status %q: want verified, stale, failing, pending or revoked", *status)}
			}
			ctx, db, done, err := openCommandStore(env)
			if err != nil {
				return err
			}
			defer done()
			// Listing appends nothing; the log is a locked store's (unsigned).
			gs, err := fleet.New(db, audit.NewLog(db)).List(ctx, fleet.Filter{Status: fleet.Status(*status), Search: *search})
			if err != nil {
				return err
			}
			if *asJSON {
				return printJSON(env.stdout, gs)
			}
			if len(gs) == 0 {
				fmt.Fprintln(env.stdout, "No guests yet.")
				return nil
			}
			tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "GUEST\tSTATUS\tIMAGE\tVOLUMES\tPRODUCT\tCHIP\tTCB (bl/tee/snp/ucode[/fmc])\tGEN\tLAST EVIDENCE\t")
			for _, g := range gs {
				st := string(g.Status)
				if g.Simulated {
					st += " SIMULATED"
				}
				chip := g.ChipIdentity
				if len(chip) > 16 && g.Signer != "VLEK" {
					chip = chip[:16] + "…"
				}
				last := "never"
				if g.LastEvidenceAt != nil {
					last = g.LastEvidenceAt.Local().Format(time.DateTime)
				}
				tcb := fmt.Sprintf("%d/%d/%d/%d", g.TCB.Bootloader, g.TCB.TEE, g.TCB.SNP, g.TCB.Microcode)
				if g.TCB.FMC != 0 {
					tcb += fmt.Sprintf("/%d", g.TCB.FMC)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t\n", g.ID, st, orDash(g.ImageName), orDash(strings.Join(g.Volumes, ",")), orDash(g.Product), orDash(chip),
					tcb, g.Generation, last)
			}
			return tw.Flush()
		}
	},
}
