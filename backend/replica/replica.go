// Package replica lets several console processes (`keyholder serve`) share
// one database as replicas of one console: each registers itself and
// heartbeats, so officers see which replicas are alive; a lease names the
// one replica that runs a periodic job; and events cross between them
// (Bridge). On SQLite there is one process, which is its only replica.
package replica

import (
	"context"
	"fmt"
	"os"
	"time"

	"keyholder/backend/store"
)

// Interval is how often a replica refreshes its heartbeat; one that missed
// three is shown as gone.
const Interval = 5 * time.Second

// Info is one replica as officers see it.
type Info struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	ConsoleURL  string    `json:"console_url"`
	ReleaseAddr string    `json:"release_addr"`
	StartedAt   time.Time `json:"started_at"`
	HeartbeatAt time.Time `json:"heartbeat_at"`
	Alive       bool      `json:"alive"`
	Self        bool      `json:"self"` // the replica that answers
}

// Replica is this process's registration.
type Replica struct {
	db  *store.DB
	id  string
	now func() time.Time
}

// Register records this process as a replica of the console on db.
func Register(ctx context.Context, db *store.DB, consoleURL, releaseAddr string) (*Replica, error) {
	host, _ := os.Hostname()
	r := &Replica{db: db, id: store.NewID("rep"), now: db.Now}
	now := store.Time(r.now())
	_, err := db.ExecContext(ctx, `INSERT INTO replicas(id, name, console_url, release_addr, started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?, ?)`,
		r.id, fmt.Sprintf("%s pid %d", host, os.Getpid()), consoleURL, releaseAddr, now, now)
	if err != nil {
		return nil, fmt.Errorf("register replica: %w", store.Classify(err))
	}
	return r, nil
}

// ID names this replica.
func (r *Replica) ID() string { return r.id }

// Heartbeat records that this replica is alive (re-registering it if an
// officer's cleanup removed it).
func (r *Replica) Heartbeat(ctx context.Context) error {
	now := store.Time(r.now())
	res, err := r.db.ExecContext(ctx, `UPDATE replicas SET heartbeat_at = ? WHERE id = ?`, now, r.id)
	if err != nil {
		return fmt.Errorf("replica heartbeat: %w", store.Classify(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		host, _ := os.Hostname()
		if _, err := r.db.ExecContext(ctx, `INSERT INTO replicas(id, name, started_at, heartbeat_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			r.id, fmt.Sprintf("%s pid %d", host, os.Getpid()), now, now); err != nil {
			return fmt.Errorf("replica heartbeat: %w", store.Classify(err))
		}
	}
	// Replicas gone for a day are forgotten.
	_, err = r.db.ExecContext(ctx, `DELETE FROM replicas WHERE heartbeat_at < ?`, store.Time(r.now().Add(-24*time.Hour)))
	return err
}

// Run heartbeats every Interval until ctx ends, then removes the
// registration and gives up its leases.
func (r *Replica) Run(ctx context.Context) {
	t := time.NewTicker(Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			r.Close(context.WithoutCancel(ctx))
			return
		case <-t.C:
			r.Heartbeat(ctx)
		}
	}
}

// Close removes the registration and gives up this replica's leases, so
// another replica takes over its jobs at once.
func (r *Replica) Close(ctx context.Context) {
	r.db.ExecContext(ctx, `DELETE FROM leases WHERE holder = ?`, r.id)
	r.db.ExecContext(ctx, `DELETE FROM replicas WHERE id = ?`, r.id)
}

// Lease takes or renews the lease on job for ttl and reports whether this
// replica holds it: a lease held by another replica is taken over only
// once it has expired (its holder died or stopped renewing). One
// statement, atomic on either database.
func (r *Replica) Lease(ctx context.Context, job string, ttl time.Duration) (bool, error) {
	now := r.now()
	res, err := r.db.ExecContext(ctx, `INSERT INTO leases(name, holder, expires_at) VALUES (?1, ?2, ?3)
		ON CONFLICT(name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
		WHERE leases.holder = excluded.holder OR leases.expires_at <= ?4`,
		job, r.id, store.Time(now.Add(ttl)), store.Time(now))
	if err != nil {
		return false, fmt.Errorf("lease %s: %w", job, store.Classify(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("lease %s: %w", job, err)
	}
	return n == 1, nil
}

// List returns every registered replica, alive ones first; self marks the
// one whose ID is self.
func List(ctx context.Context, db *store.DB, self string) ([]Info, error) {
	rows, err := db.QueryContext(ctx, `SELECT id, name, console_url, release_addr, started_at, heartbeat_at FROM replicas ORDER BY heartbeat_at DESC, id`)
	if err != nil {
		return nil, fmt.Errorf("list replicas: %w", store.Classify(err))
	}
	defer rows.Close()
	now := db.Now()
	out := []Info{}
	for rows.Next() {
		var i Info
		var started, beat string
		if err := rows.Scan(&i.ID, &i.Name, &i.ConsoleURL, &i.ReleaseAddr, &started, &beat); err != nil {
			return nil, fmt.Errorf("list replicas: %w", err)
		}
		i.StartedAt, _ = store.ParseTime(started)
		i.HeartbeatAt, _ = store.ParseTime(beat)
		i.Alive = now.Sub(i.HeartbeatAt) < 3*Interval
		i.Self = i.ID == self
		out = append(out, i)
	}
	return out, rows.Err()
}
