package luks2

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
)

// ErrUnsupported wraps valid LUKS2 features this package does not handle.
var ErrUnsupported = errors.New("unsupported LUKS2 feature")

// validate checks the metadata of a header copy the way cryptsetup does
// (and a little stricter): every reference resolves, every area lies in
// the keyslots area without overlap, every number is in range. It reports
// every problem at once.
func validate(hdrSize uint64, md *metadata) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	ksStart := 2 * hdrSize
	ksEnd := ksStart + uint64(md.Config.KeyslotsSize)
	if md.Config.KeyslotsSize%areaAlign != 0 || ksEnd < ksStart {
		bad("config keyslots_size %d is not a multiple of %d", md.Config.KeyslotsSize, areaAlign)
	}
	if md.Config.Requirements != nil {
		errs = append(errs, fmt.Errorf("%w: config requirements (reencryption or similar)", ErrUnsupported))
	}

	if len(md.Segments) != 1 || md.Segments["0"] == nil {
		errs = append(errs, fmt.Errorf("%w: want exactly one data segment \"0\", have %d", ErrUnsupported, len(md.Segments)))
	} else {
		s := md.Segments["0"]
		switch {
		case s.Type != "crypt":
			errs = append(errs, fmt.Errorf("%w: segment type %q", ErrUnsupported, s.Type))
		case s.Encryption != cipherName:
			errs = append(errs, fmt.Errorf("%w: segment cipher %q (only %s)", ErrUnsupported, s.Encryption, cipherName))
		case s.Integrity != nil:
			errs = append(errs, fmt.Errorf("%w: segment integrity", ErrUnsupported))
		}
		if !validSectorSize(s.SectorSize) {
			bad("segment sector_size %d is not 512, 1024, 2048 or 4096", s.SectorSize)
		} else if uint64(s.Offset)%uint64(s.SectorSize) != 0 {
			bad("segment offset %d is not a multiple of the sector size %d", s.Offset, s.SectorSize)
		}
		if uint64(s.Offset) < ksEnd {
			bad("segment offset %d lies inside the metadata and keyslots areas (which end at %d)", s.Offset, ksEnd)
		}
		if s.Size != "dynamic" {
			n, err := strconv.ParseUint(s.Size, 10, 64)
			if err != nil || (s.SectorSize > 0 && n%uint64(s.SectorSize) != 0) {
				bad("segment size %q is neither \"dynamic\" nor a whole number of sectors", truncate([]byte(s.Size)))
			}
		}
		if len(s.Flags) > 0 {
			errs = append(errs, fmt.Errorf("%w: segment flags %v", ErrUnsupported, s.Flags))
		}
	}

	type span struct {
		id         string
		start, end uint64
	}
	var spans []span
	for id, ks := range md.Keyslots {
		if !validID(id) {
			bad("keyslot id %q is not 0..31", truncate([]byte(id)))
			continue
		}
		if ks == nil {
			bad("keyslot %s is null", id)
			continue
		}
		if ks.Type != "luks2" {
			errs = append(errs, fmt.Errorf("%w: keyslot %s type %q", ErrUnsupported, id, ks.Type))
			continue
		}
		if ks.KeySize != 32 && ks.KeySize != 64 {
			bad("keyslot %s key_size %d (want 32 or 64)", id, ks.KeySize)
		}
		if ks.AF.Type != "luks1" || ks.AF.Stripes < 1 || ks.AF.Stripes > 65536 {
			bad("keyslot %s af %q with %d stripes", id, ks.AF.Type, ks.AF.Stripes)
		}
		if _, err := hashFunc(ks.AF.Hash); err != nil {
			bad("keyslot %s af: %v", id, err)
		}
		a := ks.Area
		if a.Type != "raw" || a.Encryption != cipherName || (a.KeySize != 32 && a.KeySize != 64) {
			errs = append(errs, fmt.Errorf("%w: keyslot %s area %q %q with key_size %d", ErrUnsupported, id, a.Type, a.Encryption, a.KeySize))
		}
		need := roundUp(uint64(ks.KeySize)*uint64(max(ks.AF.Stripes, 0)), 512)
		end := uint64(a.Offset) + uint64(a.Size)
		if uint64(a.Size) < need || end < uint64(a.Offset) || uint64(a.Offset) < ksStart || end > ksEnd || a.Offset%512 != 0 {
			bad("keyslot %s area [%d, +%d) is not inside the keyslots area [%d, %d) or too small for %d bytes", id, a.Offset, a.Size, ksStart, ksEnd, need)
		} else {
			spans = append(spans, span{id, uint64(a.Offset), end})
		}
		if err := ks.KDF.kdf().check(true); err != nil {
			bad("keyslot %s kdf: %v", id, err)
		}
		if len(ks.KDF.Salt) == 0 || len(ks.KDF.Salt) > 256 {
			bad("keyslot %s kdf salt of %d bytes", id, len(ks.KDF.Salt))
		}
		if ks.Priority != nil && (*ks.Priority < 0 || *ks.Priority > 2) {
			bad("keyslot %s priority %d", id, *ks.Priority)
		}
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].start < spans[j].start })
	for i := 1; i < len(spans); i++ {
		if spans[i].start < spans[i-1].end {
			bad("keyslot %s and %s areas overlap", spans[i-1].id, spans[i].id)
		}
	}

	digested := map[string]bool{}
	for id, d := range md.Digests {
		if !validID(id) || d == nil {
			bad("digest id %q is not 0..31", truncate([]byte(id)))
			continue
		}
		if d.Type != "pbkdf2" {
			errs = append(errs, fmt.Errorf("%w: digest %s type %q", ErrUnsupported, id, d.Type))
			continue
		}
		if _, err := hashFunc(d.Hash); err != nil {
			bad("digest %s: %v", id, err)
		}
		if d.Iterations < 1 || d.Iterations > maxPBKDF2Iterations {
			bad("digest %s iterations %d", id, d.Iterations)
		}
		if len(d.Salt) == 0 || len(d.Salt) > 256 || len(d.Digest) < 16 || len(d.Digest) > 64 {
			bad("digest %s salt of %d or digest of %d bytes", id, len(d.Salt), len(d.Digest))
		}
		for _, k := range d.Keyslots {
			if md.Keyslots[k] == nil {
				bad("digest %s names missing keyslot %q", id, truncate([]byte(k)))
			}
			if digested[k] {
				bad("keyslot %s is in two digests", k)
			}
			digested[k] = true
		}
		for _, s := range d.Segments {
			if md.Segments[s] == nil {
				bad("digest %s names missing segment %q", id, truncate([]byte(s)))
			}
		}
	}
	for id := range md.Keyslots {
		if !digested[id] && md.Keyslots[id] != nil {
			bad("keyslot %s has no digest", id)
		}
	}
	for id, raw := range md.Tokens {
		var t struct {
			Type     *string  `json:"type"`
			Keyslots []string `json:"keyslots"`
		}
		if !validID(id) || json.Unmarshal(raw, &t) != nil || t.Type == nil || t.Keyslots == nil {
			bad("token %q lacks a type or a keyslots list", truncate([]byte(id)))
			continue
		}
		for _, k := range t.Keyslots {
			if md.Keyslots[k] == nil {
				bad("token %s names missing keyslot %q", id, truncate([]byte(k)))
			}
		}
	}
	return errors.Join(errs...)
}

func validSectorSize(n int) bool { return n == 512 || n == 1024 || n == 2048 || n == 4096 }

func validID(id string) bool {
	n, err := strconv.Atoi(id)
	return err == nil && n >= 0 && n < 32 && strconv.Itoa(n) == id
}

func roundUp(n, a uint64) uint64 { return (n + a - 1) / a * a }

func (k kdfJSON) kdf() KDF {
	return KDF{Type: k.Type, Hash: k.Hash, Iterations: k.Iterations, Time: k.Time, MemoryKiB: k.Memory, Threads: k.CPUs}
}
