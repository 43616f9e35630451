package wire

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
)

// RotationConfirm is the body of POST /v1/rotation/confirm: the agent says
// its volume opens with the new generation. Proof shows it holds that
// generation's secret:
//
//	proof = HMAC-SHA256(key = new secret, lp("keyholder-rotation-confirm-v1") ‖ lp(request_id) ‖ lp(volume_id) ‖ uint32_be(generation))
type RotationConfirm struct {
	RequestID  string `json:"request_id"`
	VMID       string `json:"vm_id"`
	VolumeID   string `json:"volume_id"`
	Generation int    `json:"generation"`
	Proof      []byte `json:"proof"`
}

// RotationProof computes a RotationConfirm's proof.
func RotationProof(newSecret []byte, requestID, volumeID string, generation int) []byte {
	m := hmac.New(sha256.New, newSecret)
	b := appendLP(nil, []byte("keyholder-rotation-confirm-v1"))
	b = appendLP(b, []byte(requestID))
	b = appendLP(b, []byte(volumeID))
	b = binary.BigEndian.AppendUint32(b, uint32(generation))
	m.Write(b)
	return m.Sum(nil)
}

// DecodeRotationConfirm reads a RotationConfirm as strictly as
// DecodeReleaseRequest reads a release request.
func DecodeRotationConfirm(r io.Reader) (*RotationConfirm, error) {
	body, err := io.ReadAll(io.LimitReader(r, MaxBody+1))
	if err != nil || len(body) > MaxBody {
		return nil, fmt.Errorf("%w: body unreadable or larger than %d bytes", ErrDecode, MaxBody)
	}
	var c RotationConfirm
	if err := decodeStrict(bytes.TrimSpace(body), &c); err != nil {
		return nil, err
	}
	for _, id := range []string{c.RequestID, c.VMID, c.VolumeID} {
		if err := CheckID(id); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrDecode, err)
		}
	}
	if c.Generation < 1 || c.Generation > 1<<20 || len(c.Proof) != sha256.Size {
		return nil, fmt.Errorf("%w: generation or proof out of range", ErrDecode)
	}
	return &c, nil
}
