package luks2

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// cheap KDF parameters so that the suite stays fast; production defaults
// are ReleaseKDF and RecoveryKDF.
var (
	testRelease  = KDF{Type: KDFPBKDF2, Hash: "sha256", Iterations: 1000}
	testRecovery = KDF{Type: KDFArgon2id, Time: 4, MemoryKiB: 64, Threads: 1}
)

func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		for _, dir := range []string{"/usr/sbin", "/sbin"} {
			if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
				return filepath.Join(dir, name)
			}
		}
		t.Fatalf("%s is required (see .ci/apt-packages.txt): %v", name, err)
	}
	return p
}

func cryptsetup(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(tool(t, "cryptsetup"), args...).CombinedOutput()
	return string(out), err
}

func mustCryptsetup(t *testing.T, args ...string) string {
	t.Helper()
	out, err := cryptsetup(t, args...)
	if err != nil {
		t.Fatalf("cryptsetup %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

var mkRE = regexp.MustCompile(`(?s)MK dump:\s*((?:[0-9a-f]{2}\s+)+)`)

func dumpVolumeKey(t *testing.T, img, keyFile string) []byte {
	t.Helper()
	out := mustCryptsetup(t, "luksDump", "--dump-volume-key", "-q", "--key-file", keyFile, img)
	m := mkRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no volume key in luksDump output:\n%s", out)
	}
	k, err := hex.DecodeString(strings.Join(strings.Fields(m[1]), ""))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestFormatCryptsetupOpens writes volumes with Format and has cryptsetup
// check them: isLuks, luksDump, both keyslots, the volume key, the token,
// luksAddKey; then every payload sector decrypts to the source with the
// key cryptsetup reports.
func TestFormatCryptsetupOpens(t *testing.T) {
	for _, sector := range []int{512, 4096} {
		t.Run(map[int]string{512: "512", 4096: "4096"}[sector], func(t *testing.T) {
			dir := t.TempDir()
			release := make([]byte, 32)
			rand.Read(release)
			recovery := []byte("correct horse battery staple")
			key, _ := NewKey()
			releaseFile := writeFile(t, dir, "release", release)
			recoveryFile := writeFile(t, dir, "recovery", recovery)

			payload := make([]byte, 256<<10)
			rand.Read(payload)
			img := filepath.Join(dir, "vol.img")
			f, err := os.Create(img)
			if err != nil {
				t.Fatal(err)
			}
			tok := new(Token)
			*tok = Token{Keyslot: 0, VolumeID: "vol_test", Generation: 1}.WithConsoles([]Console{
				{URL: "https://console.example:8443/v1/release", SPKIPin: "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="},
				{URL: "https://replica.example:8443/v1/release", SPKIPin: "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="}})
			v, err := Format(f, key, Options{SectorSize: sector, Label: "keyholder", Keyslots: []Keyslot{{release, testRelease}, {recovery, testRecovery}}, Token: tok})
			if err != nil {
				t.Fatal(err)
			}
			c, err := v.PayloadCipher(key)
			if err != nil {
				t.Fatal(err)
			}
			enc := make([]byte, len(payload))
			c.Encrypt(enc, payload, 0)
			if _, err := f.WriteAt(enc, v.PayloadOffset()); err != nil {
				t.Fatal(err)
			}
			f.Close()

			mustCryptsetup(t, "isLuks", "--type", "luks2", img)
			dump := mustCryptsetup(t, "luksDump", img)
			for _, want := range []string{"sector: " + map[int]string{512: "512", 4096: "4096"}[sector], "0: luks2", "1: luks2", "PBKDF:      argon2id", "keyholder", "UUID:          \t" + v.UUID()} {
				if !strings.Contains(dump, want) {
					t.Errorf("luksDump lacks %q:\n%s", want, dump)
				}
			}
			mustCryptsetup(t, "open", "--test-passphrase", "--key-slot", "0", "--key-file", releaseFile, img)
			mustCryptsetup(t, "open", "--test-passphrase", "--key-slot", "1", "--key-file", recoveryFile, img)
			if out, err := cryptsetup(t, "open", "--test-passphrase", "--key-file", writeFile(t, dir, "wrong", []byte("wrong")), img); err == nil {
				t.Fatalf("cryptsetup accepted a wrong passphrase: %s", out)
			}
			if got := dumpVolumeKey(t, img, releaseFile); !bytes.Equal(got, key) {
				t.Fatal("cryptsetup reports another volume key")
			}
			var exported map[string]any
			if err := json.Unmarshal([]byte(mustCryptsetup(t, "token", "export", "--token-id", "0", img)), &exported); err != nil {
				t.Fatal(err)
			}
			if exported["type"] != "keyholder" || exported["volume_id"] != "vol_test" || exported["generation"] != float64(1) || exported["spki_sha256"] != tok.SPKIPin {
				t.Fatalf("token export: %v", exported)
			}

			// Read back with our reader and the key cryptsetup reported.
			rf, _ := os.Open(img)
			defer rf.Close()
			v2, err := Open(rf)
			if err != nil {
				t.Fatal(err)
			}
			got, slot, err := v2.Unlock(rf, recovery)
			if err != nil || slot != 1 || !bytes.Equal(got, key) {
				t.Fatalf("unlock recovery: slot %d err %v", slot, err)
			}
			if tk, ok := v2.Token(); !ok || !reflect.DeepEqual(tk, *tok) {
				t.Fatalf("token read back %+v", tk)
			}
			dec := make([]byte, len(payload))
			rf.ReadAt(dec, v2.PayloadOffset())
			c2, _ := NewCipher(dumpVolumeKey(t, img, recoveryFile), sector)
			c2.Decrypt(dec, dec, 0)
			for s := 0; s < len(payload); s += sector {
				if !bytes.Equal(dec[s:s+sector], payload[s:s+sector]) {
					t.Fatalf("payload sector at %d does not decrypt to the source", s)
				}
			}

			// cryptsetup adds a keyslot to our volume; we open it.
			added := writeFile(t, dir, "added", []byte("added by cryptsetup"))
			mustCryptsetup(t, "luksAddKey", "-q", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", "--key-file", releaseFile, img, added)
			rw, _ := os.OpenFile(img, os.O_RDWR, 0)
			defer rw.Close()
			v3, err := Open(rw)
			if err != nil {
				t.Fatal(err)
			}
			if k, slot, err := v3.Unlock(rw, []byte("added by cryptsetup")); err != nil || slot != 2 || !bytes.Equal(k, key) {
				t.Fatalf("unlock cryptsetup's keyslot: slot %d err %v", slot, err)
			}
			// We remove the recovery keyslot; cryptsetup no longer opens it.
			if err := v3.RemoveKeyslot(rw, 1); err != nil {
				t.Fatal(err)
			}
			if _, err := cryptsetup(t, "open", "--test-passphrase", "--key-file", recoveryFile, img); err == nil {
				t.Fatal("removed keyslot still opens")
			}
			mustCryptsetup(t, "open", "--test-passphrase", "--key-file", releaseFile, img)
			// And we add one that cryptsetup opens.
			newPass := writeFile(t, dir, "new", []byte("new recovery"))
			if id, err := v3.AddKeyslot(rw, key, []byte("new recovery"), testRecovery); err != nil || id != 1 {
				t.Fatalf("add keyslot: id %d err %v", id, err)
			}
			mustCryptsetup(t, "open", "--test-passphrase", "--key-slot", "1", "--key-file", newPass, img)
			mustCryptsetup(t, "isLuks", "--type", "luks2", img)
		})
	}
}

// TestOpenCryptsetupVolumes reads volumes cryptsetup formatted (argon2id
// and pbkdf2 keyslots, both sector sizes) and one it encrypted in place
// (reencrypt --encrypt), and checks the key and the payload.
func TestOpenCryptsetupVolumes(t *testing.T) {
	cases := []struct {
		name   string
		sector string
		kdf    []string
	}{
		{"argon2id-512", "512", []string{"--pbkdf", "argon2id", "--pbkdf-memory", "64", "--pbkdf-force-iterations", "4", "--pbkdf-parallel", "1"}},
		{"argon2id-4096", "4096", []string{"--pbkdf", "argon2id", "--pbkdf-memory", "64", "--pbkdf-force-iterations", "4", "--pbkdf-parallel", "1"}},
		{"pbkdf2-512", "512", []string{"--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"}},
		{"pbkdf2-4096", "4096", []string{"--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", "--hash", "sha512"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			pass := []byte("passphrase " + tc.name)
			pf := writeFile(t, dir, "pass", pass)
			plain := make([]byte, 4<<20)
			rand.Read(plain)
			img := writeFile(t, dir, "img", plain)
			args := append([]string{"reencrypt", "-q", "--encrypt", "--type", "luks2", "--reduce-device-size", "32M", "--sector-size", tc.sector, "--key-file", pf}, tc.kdf...)
			// reencrypt needs room: grow the file by the header.
			os.Truncate(img, 36<<20)
			mustCryptsetup(t, append(args, img)...)
			f, _ := os.Open(img)
			defer f.Close()
			v, err := Open(f)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := v.Unlock(f, []byte("wrong")); !errors.Is(err, ErrWrongSecret) {
				t.Fatalf("wrong passphrase: %v", err)
			}
			key, _, err := v.Unlock(f, pass)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(key, dumpVolumeKey(t, img, pf)) {
				t.Fatal("volume key differs from cryptsetup's")
			}
			c, _ := v.PayloadCipher(key)
			got := make([]byte, len(plain))
			if _, err := f.ReadAt(got, v.PayloadOffset()); err != nil {
				t.Fatal(err)
			}
			c.Decrypt(got, got, 0)
			if !bytes.Equal(got, plain) {
				t.Fatal("payload does not decrypt to the plaintext cryptsetup encrypted")
			}
		})
	}
}

// TestOpenLuksFormat reads headers written by cryptsetup luksFormat with a
// known volume key: every keyslot kind and both sector sizes give that key.
func TestOpenLuksFormat(t *testing.T) {
	cases := []struct {
		name string
		args []string
	}{
		{"argon2id-4096", []string{"--sector-size", "4096", "--pbkdf", "argon2id", "--pbkdf-memory", "64", "--pbkdf-force-iterations", "4", "--pbkdf-parallel", "1"}},
		{"argon2i-512", []string{"--sector-size", "512", "--pbkdf", "argon2i", "--pbkdf-memory", "64", "--pbkdf-force-iterations", "4", "--pbkdf-parallel", "1"}},
		{"pbkdf2-sha256-512", []string{"--sector-size", "512", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"}},
		{"pbkdf2-sha1-aes128", []string{"--sector-size", "4096", "--pbkdf", "pbkdf2", "--hash", "sha1", "--pbkdf-force-iterations", "1000", "--key-size", "256"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ks := 64
			if tc.name == "pbkdf2-sha1-aes128" {
				ks = 32
			}
			key := make([]byte, ks)
			rand.Read(key)
			kf := writeFile(t, dir, "key", key)
			pf := writeFile(t, dir, "pass", []byte("pass "+tc.name))
			img := writeFile(t, dir, "img", make([]byte, 17<<20))
			mustCryptsetup(t, append(append([]string{"luksFormat", "-q", "--type", "luks2", "--volume-key-file", kf, "--key-file", pf}, tc.args...), img)...)
			f, _ := os.Open(img)
			defer f.Close()
			v, err := Open(f)
			if err != nil {
				t.Fatal(err)
			}
			got, slot, err := v.Unlock(f, []byte("pass "+tc.name))
			if err != nil || slot != 0 || !bytes.Equal(got, key) {
				t.Fatalf("unlock: slot %d err %v", slot, err)
			}
			if want := map[bool]int{true: 512, false: 4096}[strings.Contains(tc.name, "512")]; v.SectorSize() != want || v.PayloadOffset() != 16<<20 {
				t.Fatalf("sector %d offset %d", v.SectorSize(), v.PayloadOffset())
			}
		})
	}
}
