package diskimage

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
)

// testRegistry is the registrar the pipeline's tests register with: it
// issues volumes and keeps what it registered in memory, and it can reserve
// (the header-first path) and check up front, as the store's registrar
// (images.Registrar, tested through Prepare in backend/images) does.
type testRegistry struct {
	mu      sync.Mutex
	locked  bool
	n       int
	images  []string          // names registered, in order
	secrets map[string][]byte // volume ID → generation-1 release secret
}

var errNameTaken = errors.New("test registry: the image name is taken")

var errRegistryLocked = errors.New("test registry: locked")

func newTestRegistry() *testRegistry { return &testRegistry{secrets: map[string][]byte{}} }

func (r *testRegistry) issue() (string, []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n++
	s := make([]byte, 32)
	rand.Read(s)
	return fmt.Sprintf("vol_test%d", r.n), s
}

func (r *testRegistry) Check(ctx context.Context, req Registration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.locked {
		return errRegistryLocked
	}
	for _, n := range r.images {
		if n == req.ImageName {
			return fmt.Errorf("%w: %q", errNameTaken, n)
		}
	}
	return nil
}

func (r *testRegistry) Register(ctx context.Context, req Registration, finish func(Issued) error) error {
	id, s := r.issue()
	return r.commit(ctx, req, Issued{VolumeID: id, Generation: 1, Secret: s}, finish)
}

func (r *testRegistry) Reserve(ctx context.Context, req Registration) (*Reservation, error) {
	if err := r.Check(ctx, req); err != nil {
		return nil, err
	}
	id, s := r.issue()
	return &Reservation{VolumeID: id, Generation: 1, Secret: s,
		ReleaseURL: "https://console.example:8443/v1/release", SPKIPin: "pinpinpin="}, nil
}

func (r *testRegistry) RegisterReserved(ctx context.Context, req Registration, res *Reservation, finish func(Issued) error) error {
	return r.commit(ctx, req, Issued{VolumeID: res.VolumeID, Generation: res.Generation, Secret: res.Secret}, finish)
}

// commit registers is if finish succeeds (as one transaction would): the
// secret is copied, since Prepare wipes its own.
func (r *testRegistry) commit(ctx context.Context, req Registration, is Issued, finish func(Issued) error) error {
	if err := r.Check(ctx, req); err != nil {
		return err
	}
	is.ImageID = "img_" + req.ImageName
	is.ReleaseURL, is.SPKIPin = "https://console.example:8443/v1/release", "pinpinpin="
	if err := finish(is); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.images = append(r.images, req.ImageName)
	r.secrets[is.VolumeID] = append([]byte(nil), is.Secret...)
	return nil
}

// registered returns the names registered and the number of volumes.
func (r *testRegistry) registered() ([]string, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.images...), len(r.secrets)
}

func (r *testRegistry) secret(volumeID string) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.secrets[volumeID]
	if !ok {
		return nil, fmt.Errorf("test registry: no volume %s", volumeID)
	}
	return s, nil
}
