package diskimage

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"keyholder/backend/audit"
	"keyholder/backend/custody"
	"keyholder/backend/images"
	"keyholder/backend/store"
)

// Settings keys the registrar reads (JSON strings; absent means empty).
const (
	SettingReleaseURL = "release.url"         // the guests' release API, https://host:port/path
	SettingSPKIPin    = "release.spki_sha256" // base64 SHA-256 of its certificate's public key
	SettingRefVersion = "reference_values.version"
)

// StoreRegistrar registers prepared images in the console's store: the
// image (images.CreateTx), the volume with its generation-1 release secret
// (custody, which must be unlocked) and an audit entry, in one transaction.
type StoreRegistrar struct {
	DB      *store.DB
	Custody *custody.Service
	Now     func() time.Time
}

// Register implements Registrar.
func (r *StoreRegistrar) Register(ctx context.Context, req Registration, finish func(Issued) error) error {
	var secret []byte
	defer func() { clear(secret) }()
	return r.register(ctx, req, finish, func(tx *sql.Tx, imageID string) (Issued, error) {
		volID, gen, s, err := r.Custody.CreateVolumeTx(ctx, tx, req.Actor, imageID, req.VolumeName)
		secret = s
		if err != nil {
			return Issued{}, err
		}
		return Issued{VolumeID: volID, Generation: gen, Secret: secret,
			ReleaseURL:             setting(ctx, tx, SettingReleaseURL),
			SPKIPin:                setting(ctx, tx, SettingSPKIPin),
			ReferenceValuesVersion: setting(ctx, tx, SettingRefVersion)}, nil
	})
}

// register is Register and RegisterReserved: in one transaction, the image,
// the volume (volume makes it and fills in what the token needs), finish,
// and the audit entry. The secret is the caller's to wipe.
func (r *StoreRegistrar) register(ctx context.Context, req Registration, finish func(Issued) error, volume func(tx *sql.Tx, imageID string) (Issued, error)) error {
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	return r.DB.Tx(ctx, func(tx *sql.Tx) error {
		im, err := images.CreateTx(ctx, tx, now(), req.ImageName, req.Description, req.Actor)
		if err != nil {
			return err
		}
		is, err := volume(tx, im.ID)
		if err != nil {
			return err
		}
		is.ImageID = im.ID
		if err := finish(is); err != nil {
			return err
		}
		_, err = audit.Append(ctx, tx, audit.Entry{At: now(), Actor: req.Actor, Action: "image.prepare", Subject: im.ID, Decision: "ok",
			Reason: fmt.Sprintf("image %q prepared with volume %s (generation %d)", im.Name, is.VolumeID, is.Generation)})
		return err
	})
}

// Reserve implements Reserver: a volume ID and release secret from custody
// (in memory only) and the release settings the LUKS2 token names.
func (r *StoreRegistrar) Reserve(ctx context.Context, req Registration) (*Reservation, error) {
	if !r.Custody.Unlocked() {
		return nil, custody.ErrLocked
	}
	id, secret := custody.NewVolumeReservation()
	return &Reservation{VolumeID: id, Generation: 1, Secret: secret,
		ReleaseURL:             setting(ctx, r.DB, SettingReleaseURL),
		SPKIPin:                setting(ctx, r.DB, SettingSPKIPin),
		ReferenceValuesVersion: setting(ctx, r.DB, SettingRefVersion)}, nil
}

// RegisterReserved implements Reserver: as Register, with the reserved
// volume ID and secret, which custody wraps and stores in the transaction.
func (r *StoreRegistrar) RegisterReserved(ctx context.Context, req Registration, res *Reservation, finish func(Issued) error) error {
	return r.register(ctx, req, finish, func(tx *sql.Tx, imageID string) (Issued, error) {
		gen, err := r.Custody.CreateReservedVolumeTx(ctx, tx, req.Actor, imageID, req.VolumeName, res.VolumeID, res.Secret)
		if err != nil {
			return Issued{}, err
		}
		return Issued{VolumeID: res.VolumeID, Generation: gen, Secret: res.Secret,
			ReleaseURL: res.ReleaseURL, SPKIPin: res.SPKIPin, ReferenceValuesVersion: res.ReferenceValuesVersion}, nil
	})
}

// Check implements Checker: the key service must be unlocked and the image
// name free.
func (r *StoreRegistrar) Check(ctx context.Context, req Registration) error {
	if !r.Custody.Unlocked() {
		return custody.ErrLocked
	}
	var n int
	if err := r.DB.QueryRowContext(ctx, `SELECT COUNT(*) FROM images WHERE name = ?`, strings.TrimSpace(req.ImageName)).Scan(&n); err != nil {
		return store.Classify(err)
	}
	if n > 0 {
		return fmt.Errorf("%w: %q", images.ErrExists, req.ImageName)
	}
	return nil
}

func setting(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, key string) string {
	var raw string
	if q.QueryRowContext(ctx, `SELECT value FROM settings WHERE key = ?`, key).Scan(&raw) != nil {
		return ""
	}
	var s string
	if json.Unmarshal([]byte(raw), &s) != nil {
		return ""
	}
	return s
}
