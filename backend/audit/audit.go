// Package audit is Keyholder's append-only, hash-chained record of every
// decision: each entry carries the hash of the one before it, so an edited,
// removed or reordered entry breaks the chain at that point.
//
// What to use:
//   - A *Log is one database's log (NewLog). custody makes the console's
//     and hands it out (custody.Service.AuditLog) to every package that
//     appends: release, quorum, images, fleet, the app.
//   - Log.Append(ctx, tx, Entry) inside the transaction that makes the
//     change being recorded, so that both commit or neither does. Seq,
//     PrevHash and Hash are filled in; a zero At means now.
//   - Log.SetSigner puts the console's Ed25519 audit key in the log's
//     signer slot (custody does so at unlock, with the key unwrapped under
//     the master key, and empties the slot at lock). From then on Append
//     itself writes a signed checkpoint over the entry that makes N entries
//     follow the newest checkpoint, in the same transaction as that entry,
//     whoever appends through this Log (custody, the release engine's group
//     commit, a command). A Log with an empty slot (a tool working on a
//     locked store, a freshly restored database) appends unsigned entries.
//     SignCheckpoint/WriteCheckpoint sign the head on demand (custody does
//     at shutdown and before a backup, and to catch up after a locked
//     period).
//   - Verify walks the whole log and the checkpoints and returns a
//     *VerifyError naming the first bad entry, and a Report that says how
//     many entries follow the newest checkpoint; Export writes JSON lines.
//
// The canonical encoding that the hashes cover is specified in chain.go and
// pinned by testdata/vector-entry7.txt; the checkpoint message in verify.go.
//
// What truncation is detected, and what is not:
//   - Removing entries from the end of the log back to before the newest
//     checkpoint is detected: Verify names the first missing entry (the
//     checkpoint is signed, covers a sequence number beyond the new end, and
//     cannot be re-made without the key). Removing or changing any entry
//     in the middle breaks the chain as well.
//   - The entries after the newest checkpoint (Report.Unsigned) can be cut
//     off the end without detection. While the key service is unlocked that
//     tail is at most N-1 entries: a checkpoint commits with the Nth entry,
//     so no crash can leave N or more committed entries unsigned. After a
//     clean shutdown the tail is empty (custody signs it on Close). Entries
//     appended while the service is locked (before unlock, or by a process
//     that is not unlocked) are unsigned until the first append through a
//     Log with a signer or a custody Checkpoint, which then signs them all at once.
//   - Someone who can write the database can delete the tail together with
//     the checkpoints that cover it; the log then looks like a shorter one.
//     Only a copy of a checkpoint kept elsewhere (the head sequence number
//     and hash that `keyholder audit verify` prints, or an export) shows
//     that. Someone who also holds the audit key (that is, the master key)
//     can rewrite the log entirely. Verify with the key taken from custody
//     while unlocked, or compare the key fingerprint with a recorded one.
package audit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"keyholder/backend/store"
)

// Entry is one audit record.
type Entry struct {
	Seq int64     `json:"seq"` // 1, 2, ... without gaps
	At  time.Time `json:"at"`
	// Actor is who acted: "officer:NAME", "guest:VMID" or "system:WHAT".
	Actor string `json:"actor"`
	// Action is a dotted verb, e.g. "release", "volume.rotate", "officer.auth".
	Action string `json:"action"`
	// Subject is what it acted on: a VM, volume, image, officer or request ID.
	Subject string `json:"subject"`
	// Decision is "allow", "deny", "pending" or "ok" (a change was made).
	Decision string `json:"decision"`
	Reason   string `json:"reason"`
	// EvidenceHash is the hex SHA-256 of the evidence a decision rests on.
	EvidenceHash string `json:"evidence_hash"`
	PrevHash     string `json:"prev_hash"` // Hash of entry Seq-1 (GenesisHash for 1)
	Hash         string `json:"hash"`      // see HashEntry
}

// Query selects entries. Zero fields match everything; the fields combine
// with AND.
type Query struct {
	Search string `json:"search"` // substring of actor, action, subject or reason
	// Actor is an actor as stored ("officer:alice", "guest:vm-1",
	// "console") or the name after its kind ("alice" matches
	// "officer:alice" and "guest:alice").
	Actor string `json:"actor"`
	// Action is an action ("release.deny") or a family: "release" matches
	// "release" and every "release.*".
	Action string `json:"action"`
	// Class is a release event class (first_boot, migration, restore,
	// platform_change, rotation, routine_boot): the entries about requests
	// of that class (asked, approved, denied, expired) and the releases
	// and pending requests the release engine recorded with that class.
	Class string `json:"class"`
	// VM is a VM ID: what its guest did (actor "guest:VM"), the decisions
	// on its requests, and what was done to its volume.
	VM string `json:"vm"`
	// From and To bound the entry time: From <= at < To (zero: unbounded).
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// BeforeSeq pages backwards from here; 0 means the newest.
	BeforeSeq int64 `json:"before_seq"`
	Limit     int   `json:"limit"` // 0 means 200
}

// escapeLike quotes s for a LIKE pattern with ESCAPE '\'.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// where returns the SQL condition and arguments for q. The class and VM
// filters read approval_requests and vms (the release engine's and the
// fleet's tables) to find which requests and volumes belong to them.
func (q Query) where() (string, []any) {
	w := `1=1`
	var args []any
	if q.BeforeSeq > 0 {
		w += ` AND seq < ?`
		args = append(args, q.BeforeSeq)
	}
	if s := strings.TrimSpace(q.Search); s != "" {
		like := "%" + escapeLike(strings.ToLower(s)) + "%"
		w += ` AND (lower(actor) LIKE ? ESCAPE '\' OR lower(action) LIKE ? ESCAPE '\' OR lower(subject) LIKE ? ESCAPE '\' OR lower(reason) LIKE ? ESCAPE '\')`
		args = append(args, like, like, like, like)
	}
	if a := strings.TrimSpace(q.Actor); a != "" {
		w += ` AND actor IN (?, ?, ?, ?)`
		args = append(args, a, "officer:"+a, "guest:"+a, "system:"+a)
	}
	if a := strings.TrimSpace(q.Action); a != "" {
		w += ` AND (action = ? OR action LIKE ? ESCAPE '\')`
		args = append(args, a, escapeLike(a)+".%")
	}
	if c := strings.TrimSpace(q.Class); c != "" {
		// The release engine's own entries start their reason with the
		// class ("restore; ...", "first_boot needs 1 approval(s); ...",
		// "migration + platform_change needs 2 approval(s); ...").
		w += ` AND (subject IN (SELECT id FROM approval_requests WHERE class = ?)
			OR (action = 'release' AND (reason LIKE ? ESCAPE '\' OR reason LIKE ? ESCAPE '\' OR reason LIKE ? ESCAPE '\' OR reason LIKE ? ESCAPE '\')))`
		e := escapeLike(c)
		args = append(args, c, e+";%", e+" needs %", e+" + %", "% + "+e+" needs %")
	}
	if v := strings.TrimSpace(q.VM); v != "" {
		w += ` AND (actor = ? OR subject = ?
			OR subject IN (SELECT id FROM approval_requests WHERE vm_id = ?)
			OR subject IN (SELECT volume_id FROM vms WHERE id = ? AND volume_id IS NOT NULL)
			OR subject IN (SELECT volume_id FROM vm_volumes WHERE vm_id = ?))`
		args = append(args, "guest:"+v, v, v, v, v)
	}
	if !q.From.IsZero() {
		w += ` AND at >= ?`
		args = append(args, store.Time(q.From))
	}
	if !q.To.IsZero() {
		w += ` AND at < ?`
		args = append(args, store.Time(q.To))
	}
	return w, args
}

// List returns the entries matching q, newest first.
func List(ctx context.Context, db *store.DB, q Query) ([]Entry, error) {
	if q.Limit <= 0 || q.Limit > 5000 {
		q.Limit = 200
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.From.Before(q.To) {
		return nil, fmt.Errorf("list audit entries: %w: the start of the date range must be before its end", ErrInvalidQuery)
	}
	w, args := q.where()
	sqlq := `SELECT seq, at, actor, action, subject, decision, reason, evidence_hash, prev_hash, hash FROM audit_log WHERE ` + w +
		fmt.Sprintf(` ORDER BY seq DESC LIMIT %d`, q.Limit)
	rows, err := db.QueryContext(ctx, sqlq, args...)
	if err != nil {
		return nil, fmt.Errorf("list audit entries: %w", store.Classify(err))
	}
	defer rows.Close()
	out := []Entry{}
	for rows.Next() {
		var e Entry
		var at string
		if err := rows.Scan(&e.Seq, &at, &e.Actor, &e.Action, &e.Subject, &e.Decision, &e.Reason, &e.EvidenceHash, &e.PrevHash, &e.Hash); err != nil {
			return nil, err
		}
		e.At, _ = store.ParseTime(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

// ErrInvalidQuery means a Query cannot be answered as asked (an empty date
// range).
var ErrInvalidQuery = errors.New("invalid audit query")
