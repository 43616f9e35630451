package diskimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"keyholder/backend/luks2"
)

var cheapRecovery = &luks2.KDF{Type: luks2.KDFArgon2id, Time: 4, MemoryKiB: 64, Threads: 1}

// console is what a test prepares images for: a registry that issues
// volumes with the release URL https://console.example:8443/v1/release and
// pin "pinpinpin=".
type console struct {
	reg *testRegistry
}

func newConsole(t *testing.T) *console {
	t.Helper()
	return &console{reg: newTestRegistry()}
}

func cryptsetup(t *testing.T, args ...string) error {
	t.Helper()
	out, err := exec.Command(tool(t, "cryptsetup"), args...).CombinedOutput()
	if err != nil {
		return errors.New(string(out))
	}
	return nil
}

var mkRE = regexp.MustCompile(`(?s)MK dump:\s*((?:[0-9a-f]{2}\s+)+)`)

func volumeKey(t *testing.T, img, keyFile string) []byte {
	t.Helper()
	out, err := exec.Command(tool(t, "cryptsetup"), "luksDump", "--dump-volume-key", "-q", "--key-file", keyFile, img).CombinedOutput()
	m := mkRE.FindSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("luksDump --dump-volume-key: %v\n%s", err, out)
	}
	k, _ := hex.DecodeString(strings.Join(strings.Fields(string(m[1])), ""))
	return k
}

// checkVolume opens the LUKS2 volume at off in path with cryptsetup (a copy
// when off > 0), checks both keyslots and that the payload decrypts to want.
func checkVolume(t *testing.T, c *console, path string, off int64, want []byte, m *Manifest, recovery []byte) {
	t.Helper()
	dir := t.TempDir()
	img := path
	if off > 0 || true {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		img = filepath.Join(dir, "part.img")
		end := off + luksHeaderSize + roundUp64(int64(len(want)), int64(m.SectorSize))
		os.WriteFile(img, b[off:end], 0o600)
	}
	secret, err := c.reg.secret(m.VolumeID)
	if err != nil {
		t.Fatal(err)
	}
	sf := filepath.Join(dir, "secret")
	os.WriteFile(sf, secret, 0o600)
	rf := filepath.Join(dir, "recovery")
	os.WriteFile(rf, recovery, 0o600)
	if err := cryptsetup(t, "isLuks", "--type", "luks2", img); err != nil {
		t.Fatalf("isLuks: %v", err)
	}
	if err := cryptsetup(t, "open", "--test-passphrase", "--key-slot", "0", "--key-file", sf, img); err != nil {
		t.Fatalf("release keyslot: %v", err)
	}
	if err := cryptsetup(t, "open", "--test-passphrase", "--key-slot", "1", "--key-file", rf, img); err != nil {
		t.Fatalf("recovery keyslot: %v", err)
	}
	out, _ := exec.Command(tool(t, "cryptsetup"), "token", "export", "--token-id", "0", img).Output()
	var tok map[string]any
	json.Unmarshal(out, &tok)
	wantURL := "https://console.example:8443/v1/release"
	if len(m.Consoles) > 0 {
		// The token names every console; older agents read the first.
		wantURL = m.Consoles[0].URL
		var list struct {
			Consoles []luks2.Console `json:"consoles"`
		}
		json.Unmarshal(out, &list)
		if !reflect.DeepEqual(list.Consoles, m.Consoles) {
			t.Fatalf("token's consoles %+v, manifest's %+v", list.Consoles, m.Consoles)
		}
	}
	if tok["volume_id"] != m.VolumeID || tok["release_url"] != wantURL || tok["spki_sha256"] != "pinpinpin=" {
		t.Fatalf("token %s", out)
	}
	key := volumeKey(t, img, sf)
	ciph, _ := luks2.NewCipher(key, m.SectorSize)
	b, _ := os.ReadFile(img)
	payload := b[luksHeaderSize:]
	ciph.Decrypt(payload, payload, 0)
	if !bytes.Equal(payload[:len(want)], want) || !allZero(payload[len(want):]) {
		t.Fatal("payload does not decrypt to the source")
	}
	v, err := luks2.Open(bytes.NewReader(b))
	if err != nil || v.UUID() != m.LUKSUUID {
		t.Fatalf("luks UUID: %v", err)
	}
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func TestPrepareData(t *testing.T) {
	for _, sectorSize := range []int{512, 4096} {
		t.Run(map[int]string{512: "512", 4096: "4096"}[sectorSize], func(t *testing.T) {
			c := newConsole(t)
			dir := t.TempDir()
			src, want := sourceDisk(t, dir, 3<<20+512) // not a whole 4 KiB sector
			q := filepath.Join(dir, "src.qcow2")
			runTool(t, "qemu-img", "convert", "-f", "raw", "-O", "qcow2", "-c", src, q)
			dst := filepath.Join(dir, "out", "disk.img")
			os.Mkdir(filepath.Dir(dst), 0o755)
			var stages []string
			var consoles []luks2.Console
			if sectorSize == 4096 {
				consoles = []luks2.Console{{URL: "https://replica-1.example:8443"}, {URL: "https://replica-2.example:8443", SPKIPin: "otherpin="}}
			}
			res, err := Prepare(context.Background(), Options{Source: q, Dest: dst, SectorSize: sectorSize, Name: "web", Consoles: consoles,
				RecoveryPassphrase: []byte("recovery words"), RecoveryKDF: cheapRecovery, Actor: "officer:alice",
				Progress: func(p Progress) { stages = append(stages, p.Stage) }}, c.reg)
			if err != nil {
				t.Fatal(err)
			}
			m := res.Manifest
			if m.Source.SHA256 != sha(want) || m.Source.Format != QCOW2 || m.SectorSize != sectorSize || m.Mode != ModeData {
				t.Fatalf("manifest source %+v", m)
			}
			wantConsoles := []luks2.Console(nil)
			if consoles != nil {
				// The entry without a pin takes the console's.
				wantConsoles = []luks2.Console{{URL: "https://replica-1.example:8443", SPKIPin: "pinpinpin="}, {URL: "https://replica-2.example:8443", SPKIPin: "otherpin="}}
			}
			if !reflect.DeepEqual(m.Consoles, wantConsoles) || (consoles != nil && m.ReleaseURL != consoles[0].URL) {
				t.Fatalf("manifest consoles %+v (release URL %s), want %+v", m.Consoles, m.ReleaseURL, wantConsoles)
			}
			out, _ := os.ReadFile(dst)
			if m.Output.SHA256 != sha(out) || m.Output.Size != int64(len(out)) {
				t.Fatal("manifest output hash or size is wrong")
			}
			var onDisk Manifest
			mb, _ := os.ReadFile(dst + ".manifest.json")
			if err := json.Unmarshal(mb, &onDisk); err != nil || onDisk.VolumeID != m.VolumeID || len(onDisk.Keyslots) != 2 || onDisk.Keyslots[0].Role != "release" {
				t.Fatalf("manifest on disk: %v %s", err, mb)
			}
			if bytes.Contains(mb, []byte("recovery words")) {
				t.Fatal("manifest contains the recovery passphrase")
			}
			checkVolume(t, c, dst, 0, want, &m, []byte("recovery words"))
			if ims, vols := c.reg.registered(); len(ims) != 1 || ims[0] != "web" || vols != 1 || m.ImageID != "img_web" {
				t.Fatalf("registered %v, %d volumes; manifest image %s", ims, vols, m.ImageID)
			}
			if len(stages) == 0 || stages[0] != "encrypt" || stages[len(stages)-1] != "sync" || slices.Index(stages, "sync") != len(stages)-1 {
				t.Fatalf("progress stages %v", stages)
			}
			assertOnly(t, filepath.Dir(dst), "disk.img", "disk.img.manifest.json")
		})
	}
}

func assertOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != strings.Join(names, ",") {
		t.Fatalf("folder holds %v, want %v", got, names)
	}
}

type failingRegistrar struct {
	inner   Registrar
	atStart bool
}

var errBoom = errors.New("boom")

// cancellingRegistrar cancels the run as the registration starts, as a
// Ctrl-C at that moment would.
type cancellingRegistrar struct {
	inner  Registrar
	cancel context.CancelFunc
}

func (c *cancellingRegistrar) Register(ctx context.Context, r Registration, finish func(Issued) error) error {
	c.cancel()
	return c.inner.Register(ctx, r, finish)
}

func (f *failingRegistrar) Register(ctx context.Context, r Registration, finish func(Issued) error) error {
	if f.atStart {
		return errBoom
	}
	return f.inner.Register(ctx, r, func(is Issued) error {
		if err := finish(is); err != nil {
			return err
		}
		return errBoom // fails after the header and manifest were written
	})
}

// failingReserver and cancellingReserver are the same on the header-first
// path (a registrar that reserves the volume up front).
type failingReserver struct{ failingRegistrar }

func (f *failingReserver) Reserve(ctx context.Context, r Registration) (*Reservation, error) {
	if f.atStart {
		return nil, errBoom
	}
	return f.inner.(Reserver).Reserve(ctx, r)
}

func (f *failingReserver) RegisterReserved(ctx context.Context, r Registration, res *Reservation, finish func(Issued) error) error {
	return f.inner.(Reserver).RegisterReserved(ctx, r, res, func(is Issued) error {
		if err := finish(is); err != nil {
			return err
		}
		return errBoom
	})
}

type cancellingReserver struct{ cancellingRegistrar }

func (c *cancellingReserver) Reserve(ctx context.Context, r Registration) (*Reservation, error) {
	return c.inner.(Reserver).Reserve(ctx, r)
}

func (c *cancellingReserver) RegisterReserved(ctx context.Context, r Registration, res *Reservation, finish func(Issued) error) error {
	c.cancel()
	return c.inner.(Reserver).RegisterReserved(ctx, r, res, finish)
}

// TestPrepareFailsClean: a failed registration, a cancelled run and a bad
// input leave no output, no temporary file and nothing registered.
func TestPrepareFailsClean(t *testing.T) {
	dir := t.TempDir()
	src, _ := sourceDisk(t, dir, 1<<20)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	type failCase struct {
		name    string
		ctx     context.Context
		reg     func(c *console) Registrar
		opts    Options
		wantIs  error
		wantErr string
	}
	cases := []failCase{
		{"registration fails late", context.Background(), func(c *console) Registrar { return &failingRegistrar{inner: c.reg} }, Options{}, errBoom, ""},
		{"registration fails early", context.Background(), func(c *console) Registrar { return &failingRegistrar{atStart: true} }, Options{}, errBoom, ""},
		{"header first: registration fails late", context.Background(), func(c *console) Registrar {
			return &failingReserver{failingRegistrar{inner: c.reg}}
		}, Options{RecoveryPassphrase: []byte("r"), RecoveryKDF: cheapRecovery}, errBoom, ""},
		{"header first: reservation fails", context.Background(), func(c *console) Registrar {
			return &failingReserver{failingRegistrar{inner: c.reg, atStart: true}}
		}, Options{}, errBoom, ""},
		{"cancelled", cancelled, func(c *console) Registrar { return c.reg }, Options{}, context.Canceled, ""},
		{"os mode without GPT", context.Background(), func(c *console) Registrar { return c.reg }, Options{Mode: ModeOS}, nil, "needs a GPT disk"},
		{"bad output", context.Background(), func(c *console) Registrar { return c.reg }, Options{Output: "ova"}, nil, "output \"ova\""},
		{"name taken", context.Background(), func(c *console) Registrar {
			c.reg.images = append(c.reg.images, "taken")
			return c.reg
		}, Options{Name: "taken"}, errNameTaken, ""},
		{"registry locked", context.Background(), func(c *console) Registrar { c.reg.locked = true; return c.reg }, Options{}, errRegistryLocked, ""},
	}
	lateCtx, lateCancel := context.WithCancel(context.Background())
	cases = append(cases, failCase{"cancelled during registration", lateCtx, func(c *console) Registrar { return &cancellingRegistrar{inner: c.reg, cancel: lateCancel} }, Options{}, context.Canceled, ""})
	lateCtx2, lateCancel2 := context.WithCancel(context.Background())
	cases = append(cases, failCase{"header first: cancelled during registration", lateCtx2, func(c *console) Registrar {
		return &cancellingReserver{cancellingRegistrar{inner: c.reg, cancel: lateCancel2}}
	}, Options{}, context.Canceled, ""})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newConsole(t)
			out := t.TempDir()
			o := tc.opts
			o.Source, o.Dest = src, filepath.Join(out, "disk.img")
			_, err := Prepare(tc.ctx, o, tc.reg(c))
			if err == nil || (tc.wantIs != nil && !errors.Is(err, tc.wantIs)) || !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(tc.wantErr)) {
				t.Fatalf("err %v, want %v %q", err, tc.wantIs, tc.wantErr)
			}
			assertOnly(t, out)
			if ims, vols := c.reg.registered(); vols != 0 || len(ims) > 0 && (len(ims) > 1 || ims[0] != "taken") {
				t.Fatalf("registered after failure: %v, %d volumes", ims, vols)
			}
		})
	}
}

func TestPrepareRefusesExistingDest(t *testing.T) {
	c := newConsole(t)
	dir := t.TempDir()
	src, _ := sourceDisk(t, dir, 1<<20)
	dst := filepath.Join(dir, "exists")
	os.WriteFile(dst, []byte("x"), 0o644)
	if _, err := Prepare(context.Background(), Options{Source: src, Dest: dst}, c.reg); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("err %v", err)
	}
}

func TestPrepareOutputs(t *testing.T) {
	c := newConsole(t)
	dir := t.TempDir()
	src, want := sourceDisk(t, dir, 2<<20+4096)
	for _, output := range []string{OutputAzure, OutputGCP, OutputAWS, OutputVMDK} {
		t.Run(output, func(t *testing.T) {
			dst := filepath.Join(dir, "out-"+output)
			var stages []string
			res, err := Prepare(context.Background(), Options{Source: src, Dest: dst, Output: output, Name: "img-" + output,
				RecoveryPassphrase: []byte("r"), RecoveryKDF: cheapRecovery,
				Progress: func(p Progress) { stages = append(stages, p.Stage) }}, c.reg)
			if err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(dst); res.Manifest.Output.SHA256 != sha(b) || res.Manifest.Output.Size != int64(len(b)) {
				t.Fatal("manifest output hash or size is wrong")
			}
			if res.Manifest.Output.Format != output {
				t.Fatalf("manifest output format %q, want %q", res.Manifest.Output.Format, output)
			}
			raw := filepath.Join(t.TempDir(), "disk.raw")
			switch output {
			case OutputAzure:
				out := runTool(t, "qemu-img", "info", "-f", "vpc", "--output=json", dst)
				var info struct {
					Format      string `json:"format"`
					VirtualSize int64  `json:"virtual-size"`
				}
				json.Unmarshal([]byte(out), &info)
				st, _ := os.Stat(dst)
				if info.Format != "vpc" || info.VirtualSize%(1<<20) != 0 || st.Size() != info.VirtualSize+512 {
					t.Fatalf("qemu-img info: %s", out)
				}
				f, err := OpenFile(dst)
				if err != nil || f.Format() != VHD || f.Detail() != "vhd fixed" {
					t.Fatalf("our reader: %v", err)
				}
				b := make([]byte, f.Size())
				f.ReadAt(b, 0)
				f.Close()
				os.WriteFile(raw, b, 0o600)
			case OutputGCP:
				f, _ := os.Open(dst)
				zr, err := gzip.NewReader(f)
				if err != nil {
					t.Fatal(err)
				}
				tr := tar.NewReader(zr)
				h, err := tr.Next()
				if err != nil || h.Name != "disk.raw" {
					t.Fatalf("tar: %v %v", h, err)
				}
				b, _ := io.ReadAll(tr)
				if h, err := tr.Next(); err != io.EOF {
					t.Fatalf("tar: a second entry %v or %v", h, err)
				}
				// To the gzip stream's end: its CRC-32 and size are checked there.
				if n, err := io.Copy(io.Discard, zr); n != 0 || err != nil {
					t.Fatalf("gzip: %d bytes after the tar or %v", n, err)
				}
				f.Close()
				os.WriteFile(raw, b, 0o600)
				// And as the system's tools read it.
				runTool(t, "gzip", "-t", dst)
				if out := runTool(t, "tar", "-tzvf", dst); !strings.Contains(out, fmt.Sprint(len(b))) || !strings.Contains(out, "disk.raw") {
					t.Fatalf("tar -tzvf: %s", out)
				}
			case OutputAWS:
				// EC2 import-snapshot's RAW: the same disk as --output
				// raw, written header first (one pass, no "hash" stage).
				out := runTool(t, "qemu-img", "info", "--output=json", dst)
				var info struct {
					Format      string `json:"format"`
					VirtualSize int64  `json:"virtual-size"`
				}
				json.Unmarshal([]byte(out), &info)
				plain := filepath.Join(dir, "out-aws-as-raw")
				pres, err := Prepare(context.Background(), Options{Source: src, Dest: plain, Output: OutputRaw, Name: "img-aws-as-raw",
					RecoveryPassphrase: []byte("r"), RecoveryKDF: cheapRecovery}, c.reg)
				if err != nil {
					t.Fatal(err)
				}
				if info.Format != "raw" || info.VirtualSize != pres.Manifest.Output.Size || res.Manifest.Output.Size != pres.Manifest.Output.Size ||
					res.Manifest.Output.DiskSize != pres.Manifest.Output.DiskSize {
					t.Fatalf("aws output: qemu-img info %s; size %d, disk size %d; raw output %d, disk size %d", out,
						res.Manifest.Output.Size, res.Manifest.Output.DiskSize, pres.Manifest.Output.Size, pres.Manifest.Output.DiskSize)
				}
				if slices.Contains(stages, "hash") {
					t.Fatalf("aws output hashed in a second pass (stages %v): not written header first", stages)
				}
				raw = dst
			case OutputVMDK:
				f, err := OpenFile(dst)
				if err != nil || f.Format() != VMDK || !strings.Contains(f.Detail(), "streamOptimized") {
					t.Fatalf("our reader: %v", err)
				}
				b := make([]byte, f.Size())
				f.ReadAt(b, 0)
				f.Close()
				os.WriteFile(raw, b, 0o600)
				// qemu-img reads it to the same bytes.
				q := filepath.Join(t.TempDir(), "q.raw")
				runTool(t, "qemu-img", "convert", "-f", "vmdk", "-O", "raw", dst, q)
				if qb, _ := os.ReadFile(q); !bytes.Equal(qb, b) {
					t.Fatal("qemu-img reads the VMDK differently")
				}
				if out := runTool(t, "qemu-img", "check", "-f", "vmdk", dst); !strings.Contains(out, "No errors") {
					t.Fatalf("qemu-img check: %s", out)
				}
			}
			checkVolume(t, c, raw, 0, want, &res.Manifest, []byte("r"))
		})
	}
	_ = time.Now
}

// TestPrepareRemovesStaleTemps: temporaries a killed run left in the
// destination folder are removed by the next run there; files in use by a
// live run, fresh ones, finished outputs and look-alikes stay.
func TestPrepareRemovesStaleTemps(t *testing.T) {
	c := newConsole(t)
	dir := t.TempDir()
	src, _ := sourceDisk(t, dir, 1<<20)
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o755)
	old := time.Now().Add(-time.Hour)
	mk := func(name string, stale bool) string {
		p := filepath.Join(out, name)
		if err := os.WriteFile(p, []byte("leftover"), 0o600); err != nil {
			t.Fatal(err)
		}
		if stale {
			os.Chtimes(p, old, old)
		}
		return p
	}
	mk(".old.img.keyholder-tmp-123456", true)      // a killed run's output: removed
	mk(".old.img.manifest.keyholder-tmp-42", true) // and its manifest: removed
	mk(".disk.img.keyholder-tmp-7", true)          // same name as this run's: removed
	mk(".fresh.img.keyholder-tmp-99", false)       // too recent: kept
	mk("old.img", true)                            // a finished output: kept
	mk("old.img.manifest.json", true)              // kept
	mk("notes.keyholder-tmp-1", true)              // not hidden: kept
	mk(".x.keyholder-tmp-abc", true)               // not CreateTemp's digits: kept
	live := mk(".live.img.keyholder-tmp-5", true)  // a live run holds it: kept
	lf, err := os.Open(live)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	lockTemp(lf)
	os.Mkdir(filepath.Join(out, ".d.keyholder-tmp-1"), 0o755) // not a file: kept
	target := filepath.Join(dir, "target")
	os.WriteFile(target, []byte("t"), 0o600)
	os.Symlink(target, filepath.Join(out, ".s.keyholder-tmp-2")) // a symlink: kept, target too
	os.Chtimes(filepath.Join(out, ".d.keyholder-tmp-1"), old, old)

	if _, err := Prepare(context.Background(), Options{Source: src, Dest: filepath.Join(out, "disk.img"), Name: "disk"}, c.reg); err != nil {
		t.Fatal(err)
	}
	want := []string{".d.keyholder-tmp-1", ".fresh.img.keyholder-tmp-99", ".s.keyholder-tmp-2", ".x.keyholder-tmp-abc",
		"disk.img", "disk.img.manifest.json", "notes.keyholder-tmp-1", "old.img", "old.img.manifest.json"}
	if runtime.GOOS == "linux" {
		want = append([]string{".d.keyholder-tmp-1", ".fresh.img.keyholder-tmp-99", ".live.img.keyholder-tmp-5"}, want[2:]...)
	}
	assertOnly(t, out, want...)
	if _, err := os.Stat(target); err != nil {
		t.Fatal("the symlink's target was removed")
	}
}

// registerOnly hides a registrar's Reserver: Prepare then takes the
// register-last path (header written inside the registration, output hashed
// in a second pass).
type registerOnly struct{ inner Registrar }

func (r registerOnly) Register(ctx context.Context, req Registration, finish func(Issued) error) error {
	return r.inner.Register(ctx, req, finish)
}

func TestPrepareDataRegisterLast(t *testing.T) {
	c := newConsole(t)
	dir := t.TempDir()
	src, want := sourceDisk(t, dir, 2<<20+512)
	for _, output := range []string{OutputRaw, OutputAzure} {
		t.Run(output, func(t *testing.T) {
			dst := filepath.Join(dir, "out-"+output)
			res, err := Prepare(context.Background(), Options{Source: src, Dest: dst, SectorSize: 512, Name: "plain-" + output, Output: output,
				Consoles:           []luks2.Console{{URL: "https://a.example:8443"}, {URL: "https://b.example:8443"}},
				RecoveryPassphrase: []byte("r"), RecoveryKDF: cheapRecovery}, registerOnly{c.reg})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Manifest.Consoles) != 2 || res.Manifest.Consoles[1] != (luks2.Console{URL: "https://b.example:8443", SPKIPin: "pinpinpin="}) {
				t.Fatalf("manifest consoles %+v", res.Manifest.Consoles)
			}
			out, _ := os.ReadFile(dst)
			if res.Manifest.Output.SHA256 != sha(out) || res.Manifest.Output.Size != int64(len(out)) || res.Manifest.Source.SHA256 != sha(want) {
				t.Fatal("manifest hashes or size are wrong")
			}
			if output == OutputAzure && (len(out)%(1<<20) != 512 || string(out[len(out)-512:][:8]) != "conectix") {
				t.Fatalf("not a fixed VHD: %d bytes", len(out))
			}
			checkVolume(t, c, dst, 0, want, &res.Manifest, []byte("r"))
		})
	}
}
