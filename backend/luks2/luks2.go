package luks2

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"sort"
	"strconv"

	"keyholder/backend/luks2/internal/xts"

	"golang.org/x/crypto/pbkdf2"
)

// KeySize is the volume key size Format uses: aes-xts-plain64 with AES-256.
const KeySize = 64

// Errors callers branch on.
var (
	// ErrWrongSecret means no keyslot opens with the passphrase or secret given.
	ErrWrongSecret = errors.New("no keyslot opens with that passphrase or secret")
	// ErrNoSpace means the keyslots area (or JSON area) has no room left.
	ErrNoSpace = errors.New("no room for another keyslot")
	// ErrLastKeyslot refuses to remove the only keyslot, which would lose the data.
	ErrLastKeyslot = errors.New("refusing to remove the last keyslot")
	// ErrNoKeyslot means the keyslot named does not exist.
	ErrNoKeyslot = errors.New("no such keyslot")
)

// Keyslot is one keyslot to create: the secret that opens it and how the
// keyslot key is derived from the secret.
type Keyslot struct {
	Secret []byte
	KDF    KDF
}

// Options describe a new volume for Format.
type Options struct {
	// SectorSize is the encryption sector size: 512 or 4096 (0 means 4096).
	SectorSize int
	// UUID is the LUKS UUID; empty means a random one.
	UUID string
	// Label and Subsystem go into the binary header (47 bytes at most each).
	Label, Subsystem string
	// Keyslots to create, at least one; keyslot i gets ID i.
	Keyslots []Keyslot
	// Token, if set, is stored as token 0 for the keyslot Token.Keyslot.
	Token *Token
}

// Token is the console's LUKS2 token (type "keyholder"): all the guest agent
// needs to ask for the release secret.
type Token struct {
	Keyslot    int    `json:"-"`           // the release keyslot it belongs to
	VolumeID   string `json:"volume_id"`   // the console's volume ID
	Generation int    `json:"generation"`  // generation of the release secret in Keyslot
	ReleaseURL string `json:"release_url"` // https URL of the release API
	SPKIPin    string `json:"spki_sha256"` // base64 SHA-256 of the release API's public key (SPKI)
	// Consoles lists every console (replica or load balancer) the agent may
	// ask, each with its own pin, in the order to try them. Tokens written
	// before it existed carry only ReleaseURL and SPKIPin; new tokens carry
	// both, ReleaseURL and SPKIPin naming the first console, so older agents
	// keep working.
	Consoles []Console `json:"consoles,omitempty"`
}

// Console is one release API endpoint with the pin of its certificate.
type Console struct {
	URL     string `json:"url"`         // https URL of the release API
	SPKIPin string `json:"spki_sha256"` // SHA-256 of its certificate's public key (SPKI)
}

// Endpoints returns the consoles to try, in order: Consoles when the token
// has the list, else the single ReleaseURL with SPKIPin (older tokens).
// Entries without a URL are left out, and so are repeats.
func (t Token) Endpoints() []Console {
	var out []Console
	add := func(c Console) {
		if c.URL == "" {
			return
		}
		for _, o := range out {
			if o == c {
				return
			}
		}
		out = append(out, c)
	}
	for _, c := range t.Consoles {
		add(c)
	}
	if len(out) == 0 {
		add(Console{URL: t.ReleaseURL, SPKIPin: t.SPKIPin})
	}
	return out
}

// WithConsoles returns t carrying consoles: the list, and its first entry
// as ReleaseURL and SPKIPin for agents that only know a single console.
func (t Token) WithConsoles(consoles []Console) Token {
	t.Consoles = nil
	if len(consoles) > 0 {
		t.ReleaseURL, t.SPKIPin = consoles[0].URL, consoles[0].SPKIPin
	}
	if len(consoles) > 1 {
		t.Consoles = append([]Console(nil), consoles...)
	}
	return t
}

// TokenType is the LUKS2 token type of Token.
const TokenType = "keyholder"

type tokenJSON struct {
	Type     string   `json:"type"`
	Keyslots []string `json:"keyslots"`
	Token
}

// Volume is an opened (parsed and validated) LUKS2 header.
type Volume struct {
	bin *binHeader
	md  *metadata
}

// ReadWriterAt is what changing a header needs.
type ReadWriterAt interface {
	io.ReaderAt
	io.WriterAt
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// Format writes a new LUKS2 header (both copies) and its keyslots to w for
// volumeKey (KeySize bytes, or 32 for AES-128). It does not touch the
// payload: encrypt it with NewCipher at PayloadOffset.
func Format(w io.WriterAt, volumeKey []byte, opts Options) (*Volume, error) {
	if len(volumeKey) != 32 && len(volumeKey) != 64 {
		return nil, fmt.Errorf("format: volume key must be 32 or 64 bytes")
	}
	if opts.SectorSize == 0 {
		opts.SectorSize = 4096
	}
	if opts.SectorSize != 512 && opts.SectorSize != 4096 {
		return nil, fmt.Errorf("format: sector size %d (want 512 or 4096)", opts.SectorSize)
	}
	if len(opts.Keyslots) == 0 || len(opts.Keyslots) > 8 {
		return nil, fmt.Errorf("format: %d keyslots (want 1 to 8)", len(opts.Keyslots))
	}
	if opts.UUID == "" {
		opts.UUID = newUUID()
	}
	if !uuidRE.MatchString(opts.UUID) {
		return nil, fmt.Errorf("format: UUID %q is not in canonical lower-case form", opts.UUID)
	}
	if len(opts.Label) > 47 || len(opts.Subsystem) > 47 {
		return nil, errors.New("format: label and subsystem are at most 47 bytes")
	}
	salt := make([]byte, 32)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	dg := pbkdf2.Key(volumeKey, salt, digestIterations, 32, sha256New)
	v := &Volume{
		bin: &binHeader{hdrSize: defaultHdrSize, seqID: 1, label: opts.Label, csumAlg: "sha256", uuid: opts.UUID, subsystem: opts.Subsystem},
		md: &metadata{
			Keyslots: map[string]*keyslotJSON{},
			Tokens:   map[string]json.RawMessage{},
			Segments: map[string]*segmentJSON{"0": {
				Type: "crypt", Offset: defaultDataOffset, Size: "dynamic", Encryption: cipherName, SectorSize: opts.SectorSize,
			}},
			Digests: map[string]*digestJSON{"0": {
				Type: "pbkdf2", Keyslots: []string{}, Segments: []string{"0"}, Hash: "sha256",
				Iterations: digestIterations, Salt: salt, Digest: dg,
			}},
			Config: configJSON{JSONSize: defaultHdrSize - binHeaderSize, KeyslotsSize: defaultDataOffset - 2*defaultHdrSize},
		},
	}
	for _, ks := range opts.Keyslots {
		if _, err := v.addKeyslot(w, volumeKey, ks.Secret, ks.KDF); err != nil {
			return nil, fmt.Errorf("format: %w", err)
		}
	}
	if opts.Token != nil {
		if err := v.setToken(*opts.Token); err != nil {
			return nil, fmt.Errorf("format: %w", err)
		}
	}
	if err := v.write(w); err != nil {
		return nil, fmt.Errorf("format: %w", err)
	}
	return v, nil
}

// Open reads and validates the header of the LUKS2 volume in r. It reads
// both copies; a damaged copy is tolerated if the other one is sound, and
// of two sound copies the one with the higher sequence number wins.
func Open(r io.ReaderAt) (*Volume, error) {
	bh, md, err := readCopy(r, 0)
	if err == nil {
		if err2 := validate(bh.hdrSize, md); err2 != nil {
			return nil, fmt.Errorf("luks2 header: %w", err2)
		}
		// A secondary with a higher seqid means an interrupted update.
		if bh2, md2, err2 := readCopy(r, bh.hdrSize); err2 == nil && bh2.seqID > bh.seqID && validate(bh2.hdrSize, md2) == nil {
			bh, md = bh2, md2
		}
		return &Volume{bin: bh, md: md}, nil
	}
	primaryErr := err
	for off := uint64(defaultHdrSize); off <= maxHdrSize; off *= 2 {
		bh2, md2, err2 := readCopy(r, off)
		if err2 != nil || bh2.hdrSize != off {
			continue
		}
		if err := validate(bh2.hdrSize, md2); err != nil {
			return nil, fmt.Errorf("luks2 secondary header: %w", err)
		}
		return &Volume{bin: bh2, md: md2}, nil
	}
	if errors.Is(primaryErr, ErrNotLUKS2) {
		return nil, ErrNotLUKS2
	}
	return nil, fmt.Errorf("luks2 header: %w", primaryErr)
}

// UUID returns the LUKS UUID.
func (v *Volume) UUID() string { return v.bin.uuid }

// Label returns the header label.
func (v *Volume) Label() string { return v.bin.label }

// SectorSize returns the encryption sector size in bytes.
func (v *Volume) SectorSize() int { return v.md.Segments["0"].SectorSize }

// PayloadOffset returns where the encrypted payload starts, in bytes.
func (v *Volume) PayloadOffset() int64 { return int64(v.md.Segments["0"].Offset) }

// Cipher returns the payload cipher name (always aes-xts-plain64).
func (v *Volume) Cipher() string { return v.md.Segments["0"].Encryption }

// KeyslotInfo describes a keyslot without secrets.
type KeyslotInfo struct {
	ID  int `json:"id"`
	KDF KDF `json:"kdf"`
}

// Keyslots lists the keyslots in ID order.
func (v *Volume) Keyslots() []KeyslotInfo {
	var out []KeyslotInfo
	for id, ks := range v.md.Keyslots {
		n, _ := strconv.Atoi(id)
		out = append(out, KeyslotInfo{ID: n, KDF: ks.KDF.kdf()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Token returns the keyholder token, if the volume has one.
func (v *Volume) Token() (Token, bool) {
	for _, id := range sortedIDs(v.md.Tokens) {
		var t tokenJSON
		if json.Unmarshal(v.md.Tokens[id], &t) == nil && t.Type == TokenType && len(t.Keyslots) == 1 {
			t.Token.Keyslot, _ = strconv.Atoi(t.Keyslots[0])
			return t.Token, true
		}
	}
	return Token{}, false
}

// Unlock tries every keyslot (release keyslots first, in ID order) with
// secret and returns the volume key and the keyslot that opened.
func (v *Volume) Unlock(r io.ReaderAt, secret []byte) ([]byte, int, error) {
	for _, id := range sortedIDs(v.md.Keyslots) {
		n, _ := strconv.Atoi(id)
		key, err := v.UnlockKeyslot(r, n, secret)
		if err == nil {
			return key, n, nil
		}
		if !errors.Is(err, ErrWrongSecret) {
			return nil, -1, err
		}
	}
	return nil, -1, ErrWrongSecret
}

// UnlockKeyslot opens keyslot id with secret and returns the volume key.
func (v *Volume) UnlockKeyslot(r io.ReaderAt, id int, secret []byte) ([]byte, error) {
	ks := v.md.Keyslots[strconv.Itoa(id)]
	if ks == nil {
		return nil, fmt.Errorf("keyslot %d: %w", id, ErrNoKeyslot)
	}
	afHash, _ := hashFunc(ks.AF.Hash)
	n := uint64(ks.KeySize) * uint64(ks.AF.Stripes)
	material := make([]byte, roundUp(n, 512))
	if _, err := r.ReadAt(material, int64(ks.Area.Offset)); err != nil {
		return nil, fmt.Errorf("read keyslot %d: %w", id, err)
	}
	dk := ks.KDF.kdf().derive(secret, ks.KDF.Salt, ks.Area.KeySize)
	c, err := xts.New(dk)
	clear(dk)
	if err != nil {
		return nil, fmt.Errorf("keyslot %d: %w", id, err)
	}
	c.Decrypt(material, material, 512, 0, 1)
	c.Wipe()
	key := make([]byte, ks.KeySize)
	afMerge(key, material, ks.AF.Stripes, afHash)
	clear(material)
	if !v.checkDigest(id, key) {
		clear(key)
		return nil, ErrWrongSecret
	}
	return key, nil
}

func (v *Volume) checkDigest(slot int, key []byte) bool {
	sid := strconv.Itoa(slot)
	for _, d := range v.md.Digests {
		if !slices.Contains(d.Keyslots, sid) {
			continue
		}
		h, _ := hashFunc(d.Hash)
		got := pbkdf2.Key(key, d.Salt, d.Iterations, len(d.Digest), h)
		return subtle.ConstantTimeCompare(got, d.Digest) == 1
	}
	return false
}

// CheckKey reports whether key is this volume's key (by the segment digest).
func (v *Volume) CheckKey(key []byte) bool {
	for _, d := range v.md.Digests {
		if slices.Contains(d.Segments, "0") {
			h, _ := hashFunc(d.Hash)
			got := pbkdf2.Key(key, d.Salt, d.Iterations, len(d.Digest), h)
			return subtle.ConstantTimeCompare(got, d.Digest) == 1
		}
	}
	return false
}

// AddKeyslot adds a keyslot opened by secret for volumeKey and rewrites
// both header copies. It returns the new keyslot's ID.
func (v *Volume) AddKeyslot(rw io.WriterAt, volumeKey, secret []byte, kdf KDF) (int, error) {
	for _, ks := range v.md.Keyslots {
		if ks.KeySize != len(volumeKey) {
			return -1, errors.New("add keyslot: the volume key does not match the volume")
		}
	}
	if !v.CheckKey(volumeKey) {
		return -1, errors.New("add keyslot: the volume key does not match the volume")
	}
	id, err := v.addKeyslot(rw, volumeKey, secret, kdf)
	if err != nil {
		return -1, fmt.Errorf("add keyslot: %w", err)
	}
	v.bin.seqID++
	if err := v.write(rw); err != nil {
		return -1, fmt.Errorf("add keyslot: %w", err)
	}
	return id, nil
}

// RemoveKeyslot erases keyslot id (its area is overwritten with random
// bytes), drops it from digests and tokens and rewrites both headers.
func (v *Volume) RemoveKeyslot(rw io.WriterAt, id int) error {
	sid := strconv.Itoa(id)
	ks := v.md.Keyslots[sid]
	if ks == nil {
		return fmt.Errorf("remove keyslot %d: %w", id, ErrNoKeyslot)
	}
	if len(v.md.Keyslots) == 1 {
		return fmt.Errorf("remove keyslot %d: %w", id, ErrLastKeyslot)
	}
	junk := make([]byte, ks.Area.Size)
	if _, err := rand.Read(junk); err != nil {
		return err
	}
	if _, err := rw.WriteAt(junk, int64(ks.Area.Offset)); err != nil {
		return fmt.Errorf("remove keyslot %d: wipe area: %w", id, err)
	}
	delete(v.md.Keyslots, sid)
	for _, d := range v.md.Digests {
		d.Keyslots = slices.DeleteFunc(d.Keyslots, func(s string) bool { return s == sid })
	}
	for tid, raw := range v.md.Tokens {
		var t map[string]json.RawMessage
		var ids []string
		if json.Unmarshal(raw, &t) != nil || json.Unmarshal(t["keyslots"], &ids) != nil {
			continue
		}
		if !slices.Contains(ids, sid) {
			continue
		}
		ids = slices.DeleteFunc(ids, func(s string) bool { return s == sid })
		if len(ids) == 0 {
			delete(v.md.Tokens, tid)
			continue
		}
		t["keyslots"], _ = json.Marshal(ids)
		v.md.Tokens[tid], _ = json.Marshal(t)
	}
	v.bin.seqID++
	if err := v.write(rw); err != nil {
		return fmt.Errorf("remove keyslot %d: %w", id, err)
	}
	return nil
}

// SetToken replaces the keyholder token (or adds it) and rewrites both headers.
func (v *Volume) SetToken(rw io.WriterAt, t Token) error {
	if err := v.setToken(t); err != nil {
		return err
	}
	v.bin.seqID++
	return v.write(rw)
}

func (v *Volume) setToken(t Token) error {
	if v.md.Keyslots[strconv.Itoa(t.Keyslot)] == nil {
		return fmt.Errorf("token: keyslot %d: %w", t.Keyslot, ErrNoKeyslot)
	}
	if t.VolumeID == "" || t.Generation < 1 {
		return errors.New("token: volume ID and a generation of at least 1 are required")
	}
	slot := ""
	for _, id := range sortedIDs(v.md.Tokens) {
		var tj tokenJSON
		if json.Unmarshal(v.md.Tokens[id], &tj) == nil && tj.Type == TokenType {
			slot = id
			break
		}
	}
	if slot == "" {
		for i := 0; i < 32; i++ {
			if _, ok := v.md.Tokens[strconv.Itoa(i)]; !ok {
				slot = strconv.Itoa(i)
				break
			}
		}
	}
	if slot == "" {
		return ErrNoSpace
	}
	raw, err := json.Marshal(tokenJSON{Type: TokenType, Keyslots: []string{strconv.Itoa(t.Keyslot)}, Token: t})
	if err != nil {
		return err
	}
	v.md.Tokens[slot] = raw
	return nil
}

// addKeyslot writes the keyslot's area and adds it to the metadata (not yet
// to disk).
func (v *Volume) addKeyslot(w io.WriterAt, volumeKey, secret []byte, kdf KDF) (int, error) {
	if kdf.Type == KDFPBKDF2 && kdf.Hash == "" {
		kdf.Hash = "sha256"
	}
	if err := kdf.check(false); err != nil {
		return -1, err
	}
	if len(secret) == 0 {
		return -1, errors.New("empty passphrase or secret")
	}
	id := -1
	for i := 0; i < 32; i++ {
		if v.md.Keyslots[strconv.Itoa(i)] == nil {
			id = i
			break
		}
	}
	if id < 0 {
		return -1, ErrNoSpace
	}
	size := roundUp(uint64(len(volumeKey))*afStripes, areaAlign)
	off, ok := v.freeArea(size)
	if !ok {
		return -1, ErrNoSpace
	}
	salt := make([]byte, 32)
	if _, err := rand.Read(salt); err != nil {
		return -1, err
	}
	material, err := afSplit(volumeKey, afStripes, sha256New)
	if err != nil {
		return -1, err
	}
	defer clear(material)
	padded := make([]byte, roundUp(uint64(len(material)), 512))
	copy(padded, material)
	dk := kdf.derive(secret, salt, KeySize)
	c, err := xts.New(dk)
	clear(dk)
	if err != nil {
		return -1, err
	}
	c.Encrypt(padded, padded, 512, 0, 1)
	c.Wipe()
	if _, err := w.WriteAt(padded, int64(off)); err != nil {
		return -1, fmt.Errorf("write keyslot %d: %w", id, err)
	}
	kj := kdfJSON{Type: kdf.Type, Salt: salt}
	if kdf.Type == KDFPBKDF2 {
		kj.Hash, kj.Iterations = kdf.Hash, kdf.Iterations
	} else {
		kj.Time, kj.Memory, kj.CPUs = kdf.Time, kdf.MemoryKiB, kdf.Threads
	}
	sid := strconv.Itoa(id)
	v.md.Keyslots[sid] = &keyslotJSON{
		Type: "luks2", KeySize: len(volumeKey),
		AF:   afJSON{Type: "luks1", Stripes: afStripes, Hash: "sha256"},
		Area: areaJSON{Type: "raw", Offset: u64(off), Size: u64(size), Encryption: cipherName, KeySize: KeySize},
		KDF:  kj,
	}
	for _, d := range v.md.Digests {
		if slices.Contains(d.Segments, "0") {
			d.Keyslots = append(d.Keyslots, sid)
			break
		}
	}
	return id, nil
}

// freeArea finds the lowest gap of size bytes in the keyslots area.
func (v *Volume) freeArea(size uint64) (uint64, bool) {
	start := 2 * v.bin.hdrSize
	end := start + uint64(v.md.Config.KeyslotsSize)
	type span struct{ a, b uint64 }
	var used []span
	for _, ks := range v.md.Keyslots {
		used = append(used, span{uint64(ks.Area.Offset), uint64(ks.Area.Offset + ks.Area.Size)})
	}
	sort.Slice(used, func(i, j int) bool { return used[i].a < used[j].a })
	pos := start
	for _, u := range used {
		if u.a >= pos+size {
			break
		}
		pos = max(pos, roundUp(u.b, areaAlign))
	}
	return pos, pos+size <= end
}

// write validates the metadata and writes the secondary copy, then the
// primary, so that an interrupted write leaves one sound copy.
func (v *Volume) write(w io.WriterAt) error {
	if err := validate(v.bin.hdrSize, v.md); err != nil {
		return fmt.Errorf("refusing to write an invalid header: %w", err)
	}
	for _, secondary := range []bool{true, false} {
		area, err := encodeCopy(v.bin, v.md, secondary)
		if err != nil {
			return err
		}
		off := int64(0)
		if secondary {
			off = int64(v.bin.hdrSize)
		}
		if _, err := w.WriteAt(area, off); err != nil {
			return fmt.Errorf("write header: %w", err)
		}
	}
	return nil
}

func sortedIDs[T any](m map[string]T) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		a, _ := strconv.Atoi(ids[i])
		b, _ := strconv.Atoi(ids[j])
		return a < b
	})
	return ids
}

func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// NewKey returns a fresh random volume key of KeySize bytes.
func NewKey() ([]byte, error) {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	return k, nil
}
