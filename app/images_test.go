package app

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"keyholder/backend/custody"
	"keyholder/backend/diskimage"
	"keyholder/backend/store"
	"keyholder/backend/store/storetest"
)

func newImagesConsole(t *testing.T) (*Services, *Hub, Caller) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	db := storetest.Open(t, store.Options{})
	cust := custody.New(db, custody.Options{KDF: custody.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}})
	hub := NewHub()
	svcs := New(ctx, Config{Mode: "web", Custody: cust}, db, hub)
	alice := setupAs(t, svcs, "alice", "alice's passphrase")
	return svcs, hub, alice
}

// waitFinished reads progress events of op until the final one.
func waitFinished(t *testing.T, events <-chan []byte, op string) (stages []string, final Progress) {
	t.Helper()
	deadline := time.After(2 * time.Minute) // a hang guard, not a timing assertion
	for {
		select {
		case raw := <-events:
			var ev struct {
				Name string   `json:"name"`
				Data Progress `json:"data"`
			}
			json.Unmarshal(raw, &ev)
			if ev.Name != EventProgress || ev.Data.ID != op {
				continue
			}
			if ev.Data.Finished {
				return stages, ev.Data
			}
			stages = append(stages, ev.Data.Stage)
		case <-deadline:
			t.Fatal("no final progress event")
		}
	}
}

func TestImagesPrepare(t *testing.T) {
	svcs, hub, alice := newImagesConsole(t)
	events, unsub := hub.Subscribe()
	defer unsub()
	dir := t.TempDir()
	src := filepath.Join(dir, "disk.raw")
	data := make([]byte, 2<<20)
	rand.Read(data)
	os.WriteFile(src, data, 0o644)
	if err := svcs.Images.SetImageFolders(alice, []string{dir}); err != nil {
		t.Fatal(err)
	}

	info, err := svcs.Images.Inspect(alice, src)
	if err != nil || info.Format != diskimage.Raw || info.VirtualSize != int64(len(data)) {
		t.Fatalf("inspect: %+v %v", info, err)
	}
	var ae *Error
	if _, err := svcs.Images.Inspect(alice, filepath.Join(dir, "missing")); !errors.As(err, &ae) || ae.Code != CodeNotFound {
		t.Fatalf("inspect missing file: %v", err)
	}

	// Random bytes: no partition table, no filesystem. Inspect says so, and
	// Prepare refuses it until the officer confirms it is a raw disk.
	if info.RawWarning == "" {
		t.Fatal("inspect: no raw warning for a file without a partition table or filesystem")
	}
	qed := filepath.Join(dir, "disk.qed")
	os.WriteFile(qed, append([]byte("QED\x00"), data...), 0o644)
	if _, err := svcs.Images.Inspect(alice, qed); !errors.As(err, &ae) || ae.Code != CodeUnsupportedFormat ||
		!strings.Contains(ae.Message, "QED") || !strings.Contains(ae.Message, "qemu-img convert -f qed -O raw "+qed) {
		t.Fatalf("inspect a QED image: %v", err)
	}

	dst := filepath.Join(dir, "out", "disk.img")
	os.Mkdir(filepath.Dir(dst), 0o755)
	op0, err := svcs.Images.Prepare(alice, PrepareRequest{Source: src, Dest: dst, Name: "web", SectorSize: 512})
	if err != nil {
		t.Fatal(err)
	}
	if _, final := waitFinished(t, events, op0); final.Error == nil || final.Error.Code != CodeConfirmRaw {
		t.Fatalf("unconfirmed raw source: %+v", final.Error)
	}
	op, err := svcs.Images.Prepare(alice, PrepareRequest{Source: src, Dest: dst, Name: "web", SectorSize: 512, ConfirmRaw: true})
	if err != nil {
		t.Fatal(err)
	}
	_, final := waitFinished(t, events, op)
	if final.Error != nil {
		t.Fatalf("prepare failed: %+v", final.Error)
	}
	res, err := svcs.Images.Result(alice, op)
	if err != nil || res.Manifest.ImageName != "web" || res.Manifest.SectorSize != 512 {
		t.Fatalf("result %+v %v", res, err)
	}
	if _, err := os.Stat(dst); err != nil {
		t.Fatal(err)
	}
	ims, _ := svcs.Images.List()
	if len(ims) != 1 || ims[0].Volumes != 1 {
		t.Fatalf("images %+v", ims)
	}

	// The same request again fails with a conflict (the output exists),
	// at once: paths are checked before an operation starts.
	if _, err := svcs.Images.Prepare(alice, PrepareRequest{Source: src, Dest: dst, Name: "web2", ConfirmRaw: true}); !errors.As(err, &ae) || ae.Code != CodeConflict {
		t.Fatalf("second prepare: %v", err)
	}
	if err := svcs.Images.Cancel(alice, "op_missing"); !errors.As(err, &ae) || ae.Code != CodeNotFound {
		t.Fatalf("cancel unknown: %v", err)
	}
	if _, err := svcs.Images.Prepare(alice, PrepareRequest{Source: src, Dest: dst + "x", Mode: "bogus"}); err != nil {
		t.Fatal(err) // validation happens in the background and arrives as an event
	}
}

func TestImagesPrepareNeedsSession(t *testing.T) {
	svcs, _, alice := newImagesConsole(t)
	svcs.Session.Logout(alice)
	var ae *Error
	if _, err := svcs.Images.Prepare(alice, PrepareRequest{Source: "a", Dest: "b"}); !errors.As(err, &ae) || (ae.Code != CodeUnauthorized && ae.Code != CodeForbidden) {
		t.Fatalf("prepare without a session: %v", err)
	}
}
