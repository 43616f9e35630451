package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"keyholder/backend/release"
)

var requestsCommand = &command{
	name:  "requests",
	short: "list, approve or deny release requests that wait for an officer",
	usage: func(w io.Writer) {
		fmt.Fprint(w, `Usage:
  keyholder requests list [--status pending|approved|denied|expired|completed|all] [--json]
  keyholder requests approve ID [--note TEXT] [--officer NAME] [--passphrase-file F]
  keyholder requests deny ID [--note TEXT] [--officer NAME] [--passphrase-file F]

The same rules as the Approvals screen: the officer must be an approver or
an admin and authenticates for each decision; an approval is bound to the
request's evidence hash and expires; a class that needs M of N officers stays
pending until M distinct officers approved; a denial is final; every
decision is audited. It works beside a running console (the guest that
waits collects its secret at its next poll).
`)
	},
	flags: func(fs *flag.FlagSet, env *cliEnv) func([]string) error {
		return func(args []string) error {
			if len(args) == 0 {
				return &exitError{code: 2, msg: "missing subcommand: list, approve or deny"}
			}
			switch args[0] {
			case "list":
				return requestsList(env, args[1:])
			case "approve", "deny":
				return requestsDecide(env, args[0], args[1:])
			}
			return &exitError{code: 2, msg: fmt.Sprintf("unknown subcommand %q: want list, approve or deny", args[0])}
		}
	},
}

func requestsList(env *cliEnv, args []string) error {
	fs := subFlags(env, "list")
	fs.Init("keyholder requests list", flag.ContinueOnError)
	status := fs.String("status", "pending", "which requests: pending, approved, denied, expired, completed or all")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseSub(env, fs, args); err != nil {
		return err
	}
	st := *status
	if st == "all" {
		st = ""
	}
	switch st {
	case "", release.StatusPending, release.StatusApproved, release.StatusDenied, release.StatusExpired, release.StatusCompleted:
	default:
		return &exitError{code: 2, msg: fmt.Sprintf("--status %q: want pending, approved, denied, expired, completed or all", *status)}
	}
	ctx, cancel := signalContext()
	defer cancel()
	db, err := openStore(ctx, env, false)
	if err != nil {
		return err
	}
	defer db.Close()
	rs, err := release.ListRequests(ctx, db, st)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(env.stdout, rs)
	}
	if len(rs) == 0 {
		fmt.Fprintln(env.stdout, "No requests.")
		return nil
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tVM\tVOLUME\tCLASS\tSTATUS\tAPPROVALS\tEXPIRES\t")
	for _, r := range rs {
		cls := r.Class
		if r.Simulated {
			cls += " (SIMULATED)"
		}
		var sum struct {
			Signer string `json:"signer"`
		}
		json.Unmarshal(r.Summary, &sum)
		if sum.Signer == "VLEK" {
			cls += " [chip identity: none (VLEK)]"
		}
		if len(r.Competing) > 0 {
			cls += fmt.Sprintf(" [COMPETES with %s]", strings.Join(r.Competing, ", "))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d/%d\t%s\t\n", r.ID, r.VMID, r.VolumeID, cls, r.Status, len(r.Approvals), r.ApprovalsNeeded,
			r.ExpiresAt.Local().Format(time.DateTime))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range rs {
		var sum struct {
			Pins string `json:"pins"`
		}
		if json.Unmarshal(r.Summary, &sum) == nil && sum.Pins != "" && (r.Status == release.StatusPending || r.Status == release.StatusApproved) {
			fmt.Fprintf(env.stdout, "\n%s: %s\n", r.ID, sum.Pins)
			if len(r.Competing) > 0 {
				fmt.Fprintf(env.stdout, "%s: %d other launch(es) claim this volume's first boot; at most one is your guest, and approving one denies the others.\n", r.ID, len(r.Competing))
			}
		}
	}
	return nil
}

// splitID takes the request ID from before or after the flags.
func splitID(args []string) (string, []string) {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		return args[0], args[1:]
	}
	if n := len(args); n > 0 && !strings.HasPrefix(args[n-1], "-") && (n < 2 || !needsValue(args[n-2])) {
		return args[n-1], args[:n-1]
	}
	return "", args
}

func needsValue(flagArg string) bool {
	name := strings.TrimLeft(flagArg, "-")
	if strings.Contains(name, "=") {
		return false
	}
	switch name {
	case "note", "officer", "passphrase-file", "data":
		return true
	}
	return false
}

func requestsDecide(env *cliEnv, verb string, args []string) error {
	id, rest := splitID(args)
	fs := subFlags(env, verb)
	fs.Init("keyholder requests "+verb, flag.ContinueOnError)
	note := fs.String("note", "", "a note for the audit log")
	of := addOfficerFlags(fs)
	if err := parseSub(env, fs, rest); err != nil {
		return err
	}
	if id == "" {
		return &exitError{code: 2, msg: "missing request ID (see 'keyholder requests list')"}
	}
	ctx, cancel := signalContext()
	defer cancel()
	db, err := openStore(ctx, env, false)
	if err != nil {
		return err
	}
	defer db.Close()
	cust, o, err := of.unlock(ctx, env, db)
	if err != nil {
		return err
	}
	defer cust.Lock()
	if !o.Role.CanApprove() {
		return &exitError{code: 1, msg: fmt.Sprintf("%s is %s; only approvers and admins decide release requests", o.Name, o.Role)}
	}
	eng, err := release.New(release.Config{DB: db, Secrets: cust})
	if err != nil {
		return err
	}
	by := release.Approver{Name: o.Name, AuthenticatedAt: time.Now()}
	var r release.Request
	if verb == "approve" {
		r, err = eng.Approve(ctx, id, by, *note)
	} else {
		r, err = eng.Deny(ctx, id, by, *note)
	}
	if err != nil {
		return err
	}
	switch r.Status {
	case release.StatusApproved:
		fmt.Fprintf(env.stdout, "Approved %s (%s of %s). The guest receives its secret at its next poll, until %s.\n", r.ID, r.Class, r.VMID, r.ExpiresAt.Local().Format(time.DateTime))
	case release.StatusPending:
		fmt.Fprintf(env.stdout, "Recorded your approval of %s: %d of %d approvals.\n", r.ID, len(r.Approvals), r.ApprovalsNeeded)
	default:
		fmt.Fprintf(env.stdout, "Request %s is %s.\n", r.ID, r.Status)
	}
	return nil
}
