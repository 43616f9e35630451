// Command fleetseed adds N SIMULATED guests to a console's store, for the
// UI load benchmark (bench/ui.sh). It writes through backend/fleet exactly as
// the release engine records a verified heartbeat, in one transaction, beside
// a running console (the store is shared). It is a benchmark tool: the
// guests it makes never asked for a key.
package main

import (
	"context"
	"crypto/sha512"
	"database/sql"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"keyholder/backend/fleet"
	"keyholder/backend/store"
)

func main() {
	data := flag.String("data", "", "the console's data directory")
	n := flag.Int("guests", 10000, "how many guests to add")
	flag.Parse()
	if *data == "" {
		fmt.Fprintln(os.Stderr, "fleetseed: --data DIR is required")
		os.Exit(2)
	}
	if err := seed(*data, *n); err != nil {
		fmt.Fprintln(os.Stderr, "fleetseed:", err)
		os.Exit(1)
	}
}

func seed(dir string, n int) error {
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(dir, "keyholder.db"), store.Options{BusyTimeout: 30 * time.Second})
	if err != nil {
		return err
	}
	defer db.Close()
	var images []string
	rows, err := db.QueryContext(ctx, `SELECT id FROM images ORDER BY id`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var id string
		rows.Scan(&id)
		images = append(images, id)
	}
	rows.Close()
	products := []string{"Milan", "Genoa", "Turin"}
	statuses := []fleet.Status{fleet.Verified, fleet.Verified, fleet.Verified, fleet.Verified, fleet.Stale, fleet.Failing, fleet.Pending}
	// Evidence times lie in the last two minutes, spread over at most 100 s
	// and all in the past: 300 ms apart (the old spacing) put 100,000
	// guests hours into the future, ahead of every live heartbeat in the
	// newest-first order the benchmark watches.
	step := min(300*time.Millisecond, 100*time.Second/time.Duration(max(n, 1)))
	t0 := time.Now().Add(-2 * time.Minute)
	start := time.Now()
	err = db.Tx(ctx, func(tx *sql.Tx) error {
		for i := 0; i < n; i++ {
			id := fmt.Sprintf("vm-load-%05d", i)
			chip := sha512.Sum512([]byte(fmt.Sprintf("load chip %d", i%97)))
			meas := sha512.Sum384([]byte(fmt.Sprintf("load image %d", i%3)))
			img := ""
			if len(images) > 0 {
				img = images[i%len(images)]
			}
			st := statuses[i%len(statuses)]
			_, err := fleet.Record(ctx, tx, fleet.Observation{
				At: t0.Add(time.Duration(i) * step), VMID: id, ImageID: img, Kind: "heartbeat",
				Result: map[bool]string{true: fleet.ResultVerified, false: fleet.ResultFailing}[st != fleet.Failing],
				Status: st, Class: "routine_boot", Authentic: true, Product: products[i%3], ChipID: hex.EncodeToString(chip[:]),
				Measurement: hex.EncodeToString(meas[:]), TCB: fleet.TCB{Bootloader: 4, SNP: 23, Microcode: 213}, Simulated: true,
				HeartbeatEvery: time.Minute, Create: true,
			})
			if err != nil {
				return fmt.Errorf("guest %s: %w", id, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Printf("fleetseed: %d SIMULATED guests added in %v\n", n, time.Since(start).Round(time.Millisecond))
	return nil
}
