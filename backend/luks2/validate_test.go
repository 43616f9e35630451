package luks2

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
)

// memFile is an in-memory io.ReaderAt and io.WriterAt.
type memFile struct{ b []byte }

func (m *memFile) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(m.b)) {
		return 0, errEOF
	}
	n := copy(p, m.b[off:])
	if n < len(p) {
		return n, errEOF
	}
	return n, nil
}

func (m *memFile) WriteAt(p []byte, off int64) (int, error) {
	if end := int(off) + len(p); end > len(m.b) {
		m.b = append(m.b, make([]byte, end-len(m.b))...)
	}
	return copy(m.b[off:], p), nil
}

var errEOF = io.EOF

// validVolume formats a small volume in memory (headers and keyslots only).
func validVolume(t testing.TB) *memFile {
	t.Helper()
	m := &memFile{}
	key := make([]byte, KeySize)
	_, err := Format(m, key, Options{SectorSize: 512, UUID: "0f0e0d0c-0b0a-4908-8706-050403020100",
		Keyslots: []Keyslot{{[]byte("release"), testRelease}},
		Token:    &Token{Keyslot: 0, VolumeID: "vol_x", Generation: 1, ReleaseURL: "https://c/r", SPKIPin: "pin"}})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// rewrite changes the JSON of the header copy at off with edit and fixes its
// checksum, as an attacker who controls the disk can.
func rewrite(t *testing.T, m *memFile, off int, edit func(md map[string]any)) {
	t.Helper()
	area := m.b[off : off+defaultHdrSize]
	js := area[binHeaderSize:]
	var md map[string]any
	if err := json.Unmarshal(bytes.TrimRight(js, "\x00"), &md); err != nil {
		t.Fatal(err)
	}
	edit(md)
	out, _ := json.Marshal(md)
	clear(js)
	copy(js, out)
	fixSum(area)
}

func fixSum(area []byte) {
	clear(area[csumOffset : csumOffset+csumLen])
	s := sha256.Sum256(area)
	copy(area[csumOffset:], s[:])
}

func both(t *testing.T, m *memFile, edit func(md map[string]any)) {
	rewrite(t, m, 0, edit)
	rewrite(t, m, defaultHdrSize, edit)
}

func obj(md map[string]any, path ...string) map[string]any {
	for _, p := range path {
		md = md[p].(map[string]any)
	}
	return md
}

func TestOpenRejects(t *testing.T) {
	cases := []struct {
		name    string
		mangle  func(t *testing.T, m *memFile)
		wantErr string
		wantIs  error
	}{
		{"valid", func(t *testing.T, m *memFile) {}, "", nil},
		{"zeros", func(t *testing.T, m *memFile) { clear(m.b) }, "", ErrNotLUKS2},
		{"short", func(t *testing.T, m *memFile) { m.b = m.b[:100] }, "", ErrNotLUKS2},
		{"primary damaged, secondary sound", func(t *testing.T, m *memFile) { m.b[5000] ^= 1 }, "", nil},
		{"both checksums wrong", func(t *testing.T, m *memFile) { m.b[5000] ^= 1; m.b[defaultHdrSize+5000] ^= 1 }, "checksum mismatch", nil},
		{"version 1", func(t *testing.T, m *memFile) {
			for _, off := range []int{0, defaultHdrSize} {
				binary.BigEndian.PutUint16(m.b[off+6:], 1)
				fixSum(m.b[off : off+defaultHdrSize])
			}
		}, "unsupported LUKS version 1", nil},
		{"header size not a power of two", func(t *testing.T, m *memFile) {
			binary.BigEndian.PutUint64(m.b[8:], 20000)
			binary.BigEndian.PutUint64(m.b[defaultHdrSize+8:], 20000)
		}, "invalid header size 20000", nil},
		{"other cipher", func(t *testing.T, m *memFile) {
			both(t, m, func(md map[string]any) { obj(md, "segments", "0")["encryption"] = "aes-cbc-essiv:sha256" })
		}, "segment cipher", ErrUnsupported},
		{"two segments", func(t *testing.T, m *memFile) {
			both(t, m, func(md map[string]any) { obj(md, "segments")["1"] = obj(md, "segments", "0") })
		}, "exactly one data segment", ErrUnsupported},
		{"bad sector size", func(t *testing.T, m *memFile) {
			both(t, m, func(md map[string]any) { obj(md, "segments", "0")["sector_size"] = 1000 })
		}, "sector_size 1000", nil},
		{"segment inside keyslots", func(t *testing.T, m *memFile) {
			both(t, m, func(md map[string]any) { obj(md, "segments", "0")["offset"] = "65536" })
		}, "lies inside the metadata", nil},
		{"offset as number", func(t *testing.T, m *memFile) {
			both(t, m, func(md map[string]any) { obj(md, "segments", "0")["offset"] = 16777216 })
		}, "want a decimal string", nil},
		{"keyslot area outside", func(t *testing.T, m *memFile) {
			both(t, m, func(md map[string]any) { obj(md, "keyslots", "0", "area")["offset"] = "16773120" })
		}, "not inside the keyslots area", nil},
		{"keyslot area too small", func(t *testing.T, m *memFile) {
			both(t, m, func(md map[string]any) { obj(md, "keyslots", "0", "area")["size"] = "4096" })
		}, "too small", nil},
		{"overlapping keyslots", func(t *testing.T, m *memFile) {
			both(t, m, func(md map[string]any) {
				obj(md, "keyslots")["1"] = obj(md, "keyslots", "0")
				d := obj(md, "digests", "0")
				d["keyslots"] = []any{"0", "1"}
			})
		}, "overlap", nil},
		{"digest names missing keyslot", func(t *testing.T, m *memFile) {
			both(t, m, func(md map[string]any) { obj(md, "digests", "0")["keyslots"] = []any{"0", "7"} })
		}, "names missing keyslot \"7\"", nil},
		{"keyslot without digest", func(t *testing.T, m *memFile) {
			both(t, m, func(md map[string]any) { obj(md, "digests", "0")["keyslots"] = []any{} })
		}, "keyslot 0 has no digest", nil},
		{"huge argon2 memory", func(t *testing.T, m *memFile) {
			both(t, m, func(md map[string]any) {
				obj(md, "keyslots", "0")["kdf"] = map[string]any{"type": "argon2id", "time": 4, "memory": 1 << 30, "cpus": 1, "salt": "AAAA"}
			})
		}, "argon2 memory", nil},
		{"unknown kdf", func(t *testing.T, m *memFile) {
			both(t, m, func(md map[string]any) { obj(md, "keyslots", "0", "kdf")["type"] = "scrypt" })
		}, "unsupported kdf", nil},
		{"json_size mismatch", func(t *testing.T, m *memFile) {
			both(t, m, func(md map[string]any) { obj(md, "config")["json_size"] = "4096" })
		}, "json_size 4096", nil},
		{"token without keyslots", func(t *testing.T, m *memFile) {
			both(t, m, func(md map[string]any) { obj(md, "tokens")["1"] = map[string]any{"type": "x"} })
		}, "token \"1\" lacks", nil},
		{"requirements", func(t *testing.T, m *memFile) {
			both(t, m, func(md map[string]any) {
				obj(md, "config")["requirements"] = map[string]any{"mandatory": []any{"online-reencrypt-v2"}}
			})
		}, "requirements", ErrUnsupported},
		{"missing digests", func(t *testing.T, m *memFile) {
			both(t, m, func(md map[string]any) { delete(md, "digests") })
		}, "lacks keyslots, tokens, segments or digests", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := validVolume(t)
			tc.mangle(t, m)
			v, err := Open(m)
			switch {
			case tc.wantErr == "" && tc.wantIs == nil:
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if _, _, err := v.Unlock(m, []byte("release")); err != nil {
					t.Fatalf("unlock: %v", err)
				}
			case err == nil:
				t.Fatalf("accepted; want error %q", tc.wantErr)
			case tc.wantIs != nil && !errors.Is(err, tc.wantIs):
				t.Fatalf("err %v, want %v", err, tc.wantIs)
			case !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("err %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestFormatRefuses(t *testing.T) {
	key := make([]byte, KeySize)
	ks := []Keyslot{{[]byte("x"), testRelease}}
	cases := []struct {
		name    string
		key     []byte
		opts    Options
		wantErr string
	}{
		{"short key", key[:16], Options{Keyslots: ks}, "volume key must be"},
		{"sector 1000", key, Options{SectorSize: 1000, Keyslots: ks}, "sector size 1000"},
		{"no keyslot", key, Options{}, "0 keyslots"},
		{"bad uuid", key, Options{UUID: "NOT-A-UUID", Keyslots: ks}, "canonical"},
		{"weak pbkdf2", key, Options{Keyslots: []Keyslot{{[]byte("x"), KDF{Type: KDFPBKDF2, Iterations: 10}}}}, "iterations 10"},
		{"argon2i", key, Options{Keyslots: []Keyslot{{[]byte("x"), KDF{Type: KDFArgon2i, Time: 4, MemoryKiB: 64, Threads: 1}}}}, "read only"},
		{"empty secret", key, Options{Keyslots: []Keyslot{{nil, testRelease}}}, "empty passphrase"},
		{"token for missing slot", key, Options{Keyslots: ks, Token: &Token{Keyslot: 3, VolumeID: "v", Generation: 1}}, "keyslot 3"},
		{"token generation 0", key, Options{Keyslots: ks, Token: &Token{VolumeID: "v"}}, "generation"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Format(&memFile{}, tc.key, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestKeyslotsRoundTrip(t *testing.T) {
	m := validVolume(t)
	v, err := Open(m)
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := v.Unlock(m, []byte("release"))
	if err != nil {
		t.Fatal(err)
	}
	if err := v.RemoveKeyslot(m, 0); !errors.Is(err, ErrLastKeyslot) {
		t.Fatalf("remove last: %v", err)
	}
	if _, err := v.AddKeyslot(m, bytes.Repeat([]byte{1}, KeySize), []byte("y"), testRelease); err == nil {
		t.Fatal("added a keyslot for a wrong key")
	}
	if _, err := v.AddKeyslot(m, key[:KeySize-1], []byte("y"), testRelease); err == nil {
		t.Fatal("added a keyslot for a short key (HMAC pads keys with zeros)")
	}
	// Fill the keyslots area: 16 MiB holds 64 areas but only 32 IDs.
	n := 1
	for ; ; n++ {
		if _, err := v.AddKeyslot(m, key, []byte{byte(n)}, testRelease); err != nil {
			if !errors.Is(err, ErrNoSpace) {
				t.Fatalf("keyslot %d: %v", n, err)
			}
			break
		}
	}
	if n != 32 {
		t.Fatalf("added %d keyslots, want 32", n)
	}
	v2, err := Open(m)
	if err != nil {
		t.Fatal(err)
	}
	if _, slot, err := v2.Unlock(m, []byte{31}); err != nil || slot != 31 {
		t.Fatalf("unlock keyslot 31: %d %v", slot, err)
	}
	if err := v2.RemoveKeyslot(m, 0); err != nil {
		t.Fatal(err)
	}
	if _, ok := v2.Token(); ok {
		t.Fatal("token of the removed release keyslot survived")
	}
	if _, _, err := v2.Unlock(m, []byte("release")); !errors.Is(err, ErrWrongSecret) {
		t.Fatalf("removed keyslot: %v", err)
	}
}
