package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"keyholder/backend/custody"
	"keyholder/backend/quorum"
	"keyholder/backend/release"
	"keyholder/backend/store"
)

var requestsCommand = &command{
	name:  "requests",
	short: "list, approve or deny release requests and admin actions that wait for officers",
	usage: func(w io.Writer) {
		fmt.Fprint(w, `Release requests (req_...) wait for officers to release a disk key to a
guest; admin actions (act_...) are custody changes under the two-person
rule (recovery shares, backups, officers and roles, lowered approval counts,
reference values, volume destruction, the rule itself). Both are listed;
--json prints {"release_requests": [...], "admin_actions": [...]}.

The same rules as the Approvals screen: a release request is decided by an
approver or an admin, an admin action by an admin; the officer
authenticates for each decision; an approval is bound to the request's
evidence hash or the action's parameter hash (--hash makes sure it is the
one you reviewed) and expires; it stays pending until M distinct officers
approved; the same officer cannot approve twice; a denial is final; every
decision is audited. It works beside a running console (the guest that
waits collects its secret at its next poll; the admin who asked for shares
or a backup collects it in the console, once).
`)
	},
	subcommands: func(_ *flag.FlagSet, env *cliEnv) []*subcommand {
		return []*subcommand{
			{name: "list", synopsis: "keyholder requests list [--status pending|approved|denied|expired|completed|done|delivered|failed|all] [--json]",
				flags: func(fs *flag.FlagSet) func([]string) error { return requestsList(env, fs) }},
			{name: "approve", synopsis: "keyholder requests approve ID [--note TEXT] [--hash HASH] [--officer NAME] [--passphrase-file F]", args: -1,
				flags: func(fs *flag.FlagSet) func([]string) error { return requestsDecide(env, "approve", fs) }},
			{name: "deny", synopsis: "keyholder requests deny ID [--note TEXT] [--officer NAME] [--passphrase-file F]", args: -1,
				flags: func(fs *flag.FlagSet) func([]string) error { return requestsDecide(env, "deny", fs) }},
		}
	},
}

// requestsListing is what `requests list --json` prints.
type requestsListing struct {
	ReleaseRequests []release.Request `json:"release_requests"`
	AdminActions    []quorum.Action   `json:"admin_actions"`
}

func requestsList(env *cliEnv, fs *flag.FlagSet) func([]string) error {
	status := fs.String("status", "pending", "which ones: pending, approved, denied, expired, completed (requests), done, delivered, failed (actions) or all")
	asJSON := fs.Bool("json", false, "print JSON")
	return func([]string) error {
		st := *status
		if st == "all" {
			st = ""
		}
		switch st {
		case "", string(release.StatusPending), string(release.StatusApproved), string(release.StatusDenied), string(release.StatusExpired),
			string(release.StatusCompleted), quorum.StatusDone, quorum.StatusDelivered, quorum.StatusFailed:
		default:
			return &exitError{code: 2, msg: fmt.Sprintf("--status %q: want pending, approved, denied, expired, completed, done, delivered, failed or all", *status)}
		}
		ctx, db, done, err := openCommandStore(env)
		if err != nil {
			return err
		}
		defer done()
		rs, err := release.ListRequests(ctx, db, release.RequestStatus(st))
		if err != nil {
			return err
		}
		as, err := quorum.List(ctx, db, st)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(env.stdout, requestsListing{ReleaseRequests: rs, AdminActions: as})
		}
		if len(rs) == 0 && len(as) == 0 {
			fmt.Fprintln(env.stdout, "No requests.")
			return nil
		}
		tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
		if len(rs) > 0 {
			fmt.Fprintln(tw, "ID\tVM\tVOLUME\tCLASS\tSTATUS\tAPPROVALS\tEXPIRES\t")
			for _, r := range rs {
				cls := string(r.Class)
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
		}
		if len(as) > 0 {
			if len(rs) > 0 {
				fmt.Fprintln(tw, "\t\t\t\t\t\t\t")
			}
			fmt.Fprintln(tw, "ADMIN ACTION\tKIND\tREQUESTED BY\tSTATUS\tAPPROVALS\tEXPIRES\tWHAT\t")
			for _, a := range as {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\t\n", a.ID, a.Kind, a.RequestedBy, a.Status, len(a.Votes), a.ApprovalsNeeded,
					a.ExpiresAt.Local().Format(time.DateTime), a.Summary)
			}
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
}

func requestsDecide(env *cliEnv, verb string, fs *flag.FlagSet) func([]string) error {
	note := fs.String("note", "", "a note for the audit log (required to deny a release request: the reason)")
	hash := fs.String("hash", "", "admin actions: approve only if the action's parameter hash is this one (from 'requests list --json')")
	of := addOfficerFlags(fs)
	return func(args []string) error {
		if len(args) == 0 {
			return &exitError{code: 2, msg: "missing request ID (see 'keyholder requests list')"}
		}
		if len(args) > 1 {
			return &exitError{code: 2, msg: fmt.Sprintf("unexpected argument %q", args[1])}
		}
		id := args[0]
		ctx, db, done, err := openCommandStore(env)
		if err != nil {
			return err
		}
		defer done()
		cust, o, err := of.unlock(ctx, env, db)
		if err != nil {
			return err
		}
		defer cust.Lock()
		if strings.HasPrefix(id, "act_") {
			return adminDecide(ctx, env, db, cust, o, verb, id, *hash, *note)
		}
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
}

// adminDecide approves or denies an admin action as officer o, who has
// just authenticated.
func adminDecide(ctx context.Context, env *cliEnv, db *store.DB, cust *custody.Service, o custody.Officer, verb, id, hash, note string) error {
	if o.Role != custody.RoleAdmin {
		return &exitError{code: 1, msg: fmt.Sprintf("%s is %s; only admins decide admin actions", o.Name, o.Role)}
	}
	q := quorum.New(quorum.Config{DB: db, Custody: cust})
	by := quorum.Actor{Officer: o, AuthenticatedAt: time.Now()}
	var a quorum.Action
	var err error
	if verb == "approve" {
		var cur quorum.Action
		if cur, err = quorum.Get(ctx, db, id); err != nil {
			return err
		}
		if hash == "" {
			hash = cur.Hash
		}
		fmt.Fprintf(env.stdout, "%s: %s (requested by %s, parameter hash %s)\n", cur.ID, cur.Summary, cur.RequestedBy, cur.Hash)
		a, err = q.Approve(ctx, by, id, hash)
	} else {
		a, err = q.Deny(ctx, by, id, note)
	}
	if err != nil {
		return err
	}
	switch a.Status {
	case quorum.StatusDone:
		fmt.Fprintf(env.stdout, "Done: %s (approved by %d admins).\n", a.Summary, len(a.Votes))
	case quorum.StatusApproved:
		fmt.Fprintf(env.stdout, "Approved %s. %s collects the result in the console, once, until %s.\n", a.ID, a.RequestedBy, a.ExpiresAt.Local().Format(time.DateTime))
	case quorum.StatusPending:
		fmt.Fprintf(env.stdout, "Recorded your approval of %s: %d of %d approvals.\n", a.ID, len(a.Votes), a.ApprovalsNeeded)
	default:
		fmt.Fprintf(env.stdout, "Admin action %s is %s.\n", a.ID, a.Status)
	}
	return nil
}
