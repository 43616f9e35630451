package images

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"keyholder/backend/custody"
	"keyholder/backend/diskimage"
	"keyholder/backend/luks2"
	"keyholder/backend/store"
	"keyholder/backend/store/storetest"
)

type console struct {
	db  *store.DB
	svc *custody.Service
	reg *Registrar
}

// newConsole is a store with an initialised, unlocked custody service and
// the release settings the listener publishes.
func newConsole(t *testing.T) *console {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, storetest.Location(t, t.TempDir()), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	svc := custody.New(db, custody.Options{KDF: custody.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}})
	if _, err := svc.Init(ctx, "alice", []byte("correct horse battery")); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO settings(key, value, updated_at) VALUES (?, ?, ?), (?, ?, ?)`,
		store.SettingReleaseURL, `"https://console.example:8443/v1/release"`, "x", store.SettingSPKIPin, `"pinpinpin="`, "x"); err != nil {
		t.Fatal(err)
	}
	return &console{db: db, svc: svc, reg: &Registrar{DB: db, Custody: svc}}
}

// source writes a 1 MiB random raw disk.
func source(t *testing.T) string {
	t.Helper()
	b := make([]byte, 1<<20)
	rand.Read(b)
	p := filepath.Join(t.TempDir(), "src.raw")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// registerOnly hides the Registrar's Reserver: Prepare then registers
// last (the header written inside the registration).
type registerOnly struct{ r *Registrar }

func (o registerOnly) Register(ctx context.Context, req diskimage.Registration, finish func(diskimage.Issued) error) error {
	return o.r.Register(ctx, req, finish)
}

// failLate fails the registration after Prepare's step inside it
// succeeded (the header and manifest written).
type failLate struct {
	registerOnly
	reserve bool
}

var errBoom = errors.New("boom")

func (f failLate) Register(ctx context.Context, req diskimage.Registration, finish func(diskimage.Issued) error) error {
	return f.r.Register(ctx, req, func(is diskimage.Issued) error {
		if err := finish(is); err != nil {
			return err
		}
		return errBoom
	})
}

// TestRegistrarPrepare: a prepared image is registered in one step with its
// volume (whose release secret opens the header's release keyslot) and an
// audit entry, and its token names the release settings; on both of
// Prepare's paths.
func TestRegistrarPrepare(t *testing.T) {
	for _, tc := range []struct {
		name string
		reg  func(c *console) diskimage.Registrar
	}{
		{"header first", func(c *console) diskimage.Registrar { return c.reg }},
		{"register last", func(c *console) diskimage.Registrar { return registerOnly{c.reg} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newConsole(t)
			ctx := context.Background()
			dst := filepath.Join(t.TempDir(), "web.img")
			res, err := diskimage.Prepare(ctx, diskimage.Options{Source: source(t), Dest: dst, Name: "web", Actor: "officer:alice", ConfirmRaw: true}, tc.reg(c))
			if err != nil {
				t.Fatal(err)
			}
			m := res.Manifest
			ims, _ := New(c.db).List(ctx)
			vols, _ := custody.ListVolumes(ctx, c.db)
			if len(ims) != 1 || ims[0].Name != "web" || ims[0].ID != m.ImageID || ims[0].CreatedBy != "officer:alice" ||
				len(vols) != 1 || vols[0].ID != m.VolumeID || vols[0].ImageID != m.ImageID {
				t.Fatalf("registered %+v %+v; manifest %+v", ims, vols, m)
			}
			var n int
			c.db.QueryRow(`SELECT COUNT(*) FROM audit_log WHERE action = 'image.prepare' AND subject = ? AND actor = 'officer:alice'`, m.ImageID).Scan(&n)
			if n != 1 {
				t.Fatalf("%d audit entries", n)
			}
			f, err := os.Open(dst)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			v, err := luks2.Open(f)
			if err != nil {
				t.Fatal(err)
			}
			tok, ok := v.Token()
			if !ok || tok.VolumeID != m.VolumeID || tok.ReleaseURL != "https://console.example:8443/v1/release" || tok.SPKIPin != "pinpinpin=" {
				t.Fatalf("token %+v", tok)
			}
			secret, err := c.svc.ReleaseSecret(ctx, m.VolumeID, 1)
			if err != nil {
				t.Fatal(err)
			}
			if _, slot, err := v.Unlock(f, secret); err != nil || slot != 0 {
				t.Fatalf("the stored release secret does not open the header: slot %d, %v", slot, err)
			}
		})
	}
}

// TestRegistrarRefuses: a taken name and a locked key service are refused
// before anything is written; a registration that fails late, and a
// release setting that cannot be read, leave nothing registered and no
// file.
func TestRegistrarRefuses(t *testing.T) {
	for _, tc := range []struct {
		name    string
		setup   func(c *console) diskimage.Registrar
		wantIs  error
		wantMsg string
	}{
		{"name taken", func(c *console) diskimage.Registrar {
			c.db.Exec(`INSERT INTO images(id, name, created_at) VALUES ('img_x', 'web', 'x')`)
			return c.reg
		}, ErrNameTaken, ""},
		{"locked", func(c *console) diskimage.Registrar { c.svc.Lock(); return c.reg }, custody.ErrLocked, ""},
		{"fails late", func(c *console) diskimage.Registrar { return failLate{registerOnly: registerOnly{c.reg}} }, errBoom, ""},
		{"unreadable release URL, header first", func(c *console) diskimage.Registrar {
			c.db.Exec(`UPDATE settings SET value = 'https://not-json' WHERE key = ?`, store.SettingReleaseURL)
			return c.reg
		}, nil, "release.url"},
		{"unreadable pin, register last", func(c *console) diskimage.Registrar {
			c.db.Exec(`UPDATE settings SET value = '{"a":1}' WHERE key = ?`, store.SettingSPKIPin)
			return registerOnly{c.reg}
		}, nil, "release.spki_sha256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newConsole(t)
			ctx := context.Background()
			out := t.TempDir()
			_, err := diskimage.Prepare(ctx, diskimage.Options{Source: source(t), Dest: filepath.Join(out, "web.img"), Name: "web", ConfirmRaw: true}, tc.setup(c))
			if err == nil || (tc.wantIs != nil && !errors.Is(err, tc.wantIs)) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("err %v, want %v %q", err, tc.wantIs, tc.wantMsg)
			}
			if ents, _ := os.ReadDir(out); len(ents) != 0 {
				t.Fatalf("left %v", ents)
			}
			vols, _ := custody.ListVolumes(ctx, c.db)
			var audits int
			c.db.QueryRow(`SELECT COUNT(*) FROM audit_log WHERE action = 'image.prepare'`).Scan(&audits)
			ims, _ := New(c.db).List(ctx)
			if len(vols) != 0 || audits != 0 || len(ims) > 1 || len(ims) == 1 && ims[0].ID != "img_x" {
				t.Fatalf("registered after a refusal: %v %v, %d audit entries", ims, vols, audits)
			}
		})
	}
}
