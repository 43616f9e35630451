package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Notifications between console processes that share a database
// (PostgreSQL's LISTEN/NOTIFY). On SQLite one process owns the database,
// so there is no one to tell: Notify does nothing and Listen returns at
// once.

// Notify sends payload (at most 7,900 bytes) to every process listening on
// channel, this one included.
func (db *DB) Notify(ctx context.Context, channel, payload string) error {
	if db.dialect != Postgres {
		return nil
	}
	if _, err := db.ExecContext(ctx, `SELECT pg_notify(?, ?)`, channel, payload); err != nil {
		return fmt.Errorf("notify %s: %w", channel, classify(err))
	}
	return nil
}

// NotifyAll sends each payload to every process listening on channel, in
// order, in one transaction: one commit (and one wait for the disk) for all
// of them, where Notify takes one each.
func (db *DB) NotifyAll(ctx context.Context, channel string, payloads []string) error {
	if db.dialect != Postgres || len(payloads) == 0 {
		return nil
	}
	var b Batch
	for _, p := range payloads {
		b.Exec(`SELECT pg_notify(?, ?)`, channel, p)
	}
	if err := RunBatch(ctx, db, &b); err != nil {
		return fmt.Errorf("notify %s: %w", channel, err)
	}
	return nil
}

// Listen calls fn with the payload of every notification on channel until
// ctx ends, on a connection of its own; after a lost connection it
// reconnects with back-off (notifications sent meanwhile are lost, so a
// listener treats a reconnect as "reload": ready is called again). ready,
// if not nil, is called each time the listener is (re)established.
func (db *DB) Listen(ctx context.Context, channel string, ready func(), fn func(payload string)) error {
	if db.dialect != Postgres {
		return nil
	}
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := db.listenOnce(ctx, channel, ready, fn)
		if ctx.Err() != nil {
			return nil
		}
		_ = err
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	return nil
}

func (db *DB) listenOnce(ctx context.Context, channel string, ready func(), fn func(string)) error {
	conn, err := pgx.Connect(ctx, db.location)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, `LISTEN `+pgx.Identifier{channel}.Sanitize()); err != nil {
		return err
	}
	if ready != nil {
		ready()
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		fn(n.Payload)
	}
}
