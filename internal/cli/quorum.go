package cli

import (
	"fmt"
	"io"
	"time"

	"keyholder/backend/custody"
	"keyholder/backend/quorum"
	"keyholder/backend/store"
)

// quorumFor returns the two-person rule for a command run by officer o,
// who has just authenticated with their passphrase.
func quorumFor(db *store.DB, svc *custody.Service, o custody.Officer) (*quorum.Service, quorum.Actor) {
	return quorum.New(quorum.Config{DB: db, Custody: svc}), quorum.Actor{Officer: o, AuthenticatedAt: time.Now()}
}

// waiting tells the officer that their action waits for other admins.
// collect, when set, is the command that fetches a secret result once the
// action is approved.
func waiting(w io.Writer, a quorum.Action, collect string) {
	fmt.Fprintf(w, "Waiting for approval (two-person rule): %s.\n", a.Summary)
	fmt.Fprintf(w, "Admin action %s has %d of %d approvals; another admin approves it with 'keyholder requests approve %s' before %s.\n",
		a.ID, len(a.Votes), a.ApprovalsNeeded, a.ID, a.ExpiresAt.Local().Format(time.DateTime))
	if collect != "" {
		fmt.Fprintf(w, "Then run '%s' to receive the result (once).\n", collect)
	}
}
