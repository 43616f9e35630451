package images

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"keyholder/backend/audit"
	"keyholder/backend/custody"
	"keyholder/backend/diskimage"
	"keyholder/backend/store"
)

// Registrar registers the images diskimage.Prepare makes in the console's
// store: the image (CreateTx), the volume with its generation-1 release
// secret (custody, which must be unlocked) and an audit entry (in custody's
// AuditLog), in one transaction. It implements diskimage.Registrar, Reserver and Checker.
type Registrar struct {
	DB      *store.DB
	Custody *custody.Service
	Now     func() time.Time
}

var (
	_ diskimage.Reserver = (*Registrar)(nil)
	_ diskimage.Checker  = (*Registrar)(nil)
)

// Register implements diskimage.Registrar.
func (r *Registrar) Register(ctx context.Context, req diskimage.Registration, finish func(diskimage.Issued) error) error {
	var secret []byte
	defer func() { clear(secret) }()
	return r.register(ctx, req, finish, func(tx *sql.Tx, imageID string) (diskimage.Issued, error) {
		volID, gen, s, err := r.Custody.CreateVolumeTx(ctx, tx, req.Actor, imageID, req.VolumeName)
		secret = s
		if err != nil {
			return diskimage.Issued{}, err
		}
		url, pin, err := releaseSettings(ctx, tx)
		if err != nil {
			return diskimage.Issued{}, err
		}
		return diskimage.Issued{VolumeID: volID, Generation: gen, Secret: secret, ReleaseURL: url, SPKIPin: pin}, nil
	})
}

// register is Register and RegisterReserved: in one transaction, the image,
// the volume (volume makes it and fills in what the token needs), finish,
// and the audit entry. The secret is the caller's to wipe.
func (r *Registrar) register(ctx context.Context, req diskimage.Registration, finish func(diskimage.Issued) error,
	volume func(tx *sql.Tx, imageID string) (diskimage.Issued, error)) error {
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	return r.DB.Tx(ctx, func(tx *sql.Tx) error {
		im, err := CreateTx(ctx, tx, now(), req.ImageName, req.Description, req.Actor)
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
		_, err = r.Custody.AuditLog().Append(ctx, tx, audit.Entry{At: now(), Actor: req.Actor, Action: "image.prepare", Subject: im.ID, Decision: "ok",
			Reason: fmt.Sprintf("image %q prepared with volume %s (generation %d)", im.Name, is.VolumeID, is.Generation)})
		return err
	})
}

// Reserve implements diskimage.Reserver: a volume ID and release secret
// from custody (in memory only) and the release settings the LUKS2 token
// names.
func (r *Registrar) Reserve(ctx context.Context, req diskimage.Registration) (*diskimage.Reservation, error) {
	if !r.Custody.Unlocked() {
		return nil, custody.ErrLocked
	}
	url, pin, err := releaseSettings(ctx, r.DB)
	if err != nil {
		return nil, err
	}
	id, secret := custody.NewVolumeReservation()
	return &diskimage.Reservation{VolumeID: id, Generation: 1, Secret: secret, ReleaseURL: url, SPKIPin: pin}, nil
}

// RegisterReserved implements diskimage.Reserver: as Register, with the
// reserved volume ID and secret, which custody wraps and stores in the
// transaction.
func (r *Registrar) RegisterReserved(ctx context.Context, req diskimage.Registration, res *diskimage.Reservation, finish func(diskimage.Issued) error) error {
	return r.register(ctx, req, finish, func(tx *sql.Tx, imageID string) (diskimage.Issued, error) {
		gen, err := r.Custody.CreateReservedVolumeTx(ctx, tx, req.Actor, imageID, req.VolumeName, res.VolumeID, res.Secret)
		if err != nil {
			return diskimage.Issued{}, err
		}
		return diskimage.Issued{VolumeID: res.VolumeID, Generation: gen, Secret: res.Secret,
			ReleaseURL: res.ReleaseURL, SPKIPin: res.SPKIPin}, nil
	})
}

// Check implements diskimage.Checker: the key service must be unlocked and
// the image name free.
func (r *Registrar) Check(ctx context.Context, req diskimage.Registration) error {
	if !r.Custody.Unlocked() {
		return custody.ErrLocked
	}
	var n int
	if err := r.DB.QueryRowContext(ctx, `SELECT COUNT(*) FROM images WHERE name = ?`, strings.TrimSpace(req.ImageName)).Scan(&n); err != nil {
		return store.Classify(err)
	}
	if n > 0 {
		return fmt.Errorf("%w: %q", ErrNameTaken, req.ImageName)
	}
	return nil
}

// releaseSettings are the release API's URL and pin that new volumes'
// tokens name (empty if the release listener never published them).
func releaseSettings(ctx context.Context, q store.RowQuerier) (url, pin string, err error) {
	if url, err = store.SettingString(ctx, q, store.SettingReleaseURL); err != nil {
		return "", "", err
	}
	if pin, err = store.SettingString(ctx, q, store.SettingSPKIPin); err != nil {
		return "", "", err
	}
	return url, pin, nil
}
