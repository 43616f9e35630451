package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"keyholder/backend/custody"
	"keyholder/backend/luks2"
	"keyholder/backend/store"
)

func TestImageCommands(t *testing.T) {
	old := imageRecoveryKDF
	imageRecoveryKDF = &luks2.KDF{Type: luks2.KDFArgon2id, Time: 4, MemoryKiB: 64, Threads: 1}
	t.Cleanup(func() { imageRecoveryKDF = old })
	var l cliLog
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	pass := secretFile(t, dir, "pass", "officer passphrase")
	rec := secretFile(t, dir, "rec", "recovery passphrase")
	l.run(t, 0, "init", "--data", data, "--passphrase-file", pass)
	src := filepath.Join(dir, "disk.raw")
	img := make([]byte, 1<<20)
	rand.Read(img)
	os.WriteFile(src, img, 0o644)

	out := l.run(t, 0, "image", "inspect", src, "--json")
	var info map[string]any
	if err := json.Unmarshal([]byte(out), &info); err != nil || info["format"] != "raw" || info["virtual_size"] != float64(1<<20) {
		t.Fatalf("inspect: %v %s", err, out)
	}
	l.run(t, 2, "image", "prepare", "--data", data, "--in", src)
	l.run(t, 2, "image", "frobnicate")

	dst := filepath.Join(dir, "out", "disk.img")
	os.Mkdir(filepath.Dir(dst), 0o755)
	// Random bytes have no partition table and no filesystem: inspect warns,
	// and prepare refuses them (no output, nothing registered) without --force.
	if out := l.run(t, 0, "image", "inspect", src); !strings.Contains(out, "warning: this raw file has no partition table") || !strings.Contains(out, "--force") {
		t.Fatalf("inspect of an unrecognised raw file: %s", out)
	}
	msg := l.run(t, 1, "image", "prepare", "--data", data, "--passphrase-file", pass, "--in", src, "--out", dst, "--name", "web")
	if !strings.Contains(msg, "no partition table and no filesystem") || !strings.Contains(msg, "--force") {
		t.Fatalf("prepare of an unrecognised raw file without --force: %s", msg)
	}
	if ents, _ := os.ReadDir(filepath.Dir(dst)); len(ents) != 0 {
		t.Fatalf("output folder after the refusal: %v", ents)
	}
	// A container Keyholder does not read is refused with the command that converts it.
	qed := filepath.Join(dir, "disk.qed")
	os.WriteFile(qed, append([]byte("QED\x00"), img...), 0o644)
	if msg := l.run(t, 1, "image", "inspect", qed); !strings.Contains(msg, "a QED image, which Keyholder does not read") || !strings.Contains(msg, "qemu-img convert -f qed -O raw "+qed+" "+filepath.Join(dir, "disk.raw")) {
		t.Fatalf("inspect of a QED image: %s", msg)
	}
	if msg := l.run(t, 1, "image", "prepare", "--data", data, "--passphrase-file", pass, "--in", qed, "--out", dst, "--name", "web", "--force"); !strings.Contains(msg, "qemu-img convert -f qed -O raw") {
		t.Fatalf("prepare of a QED image, even with --force: %s", msg)
	}
	out = l.run(t, 0, "image", "prepare", "--data", data, "--passphrase-file", pass, "--in", src, "--out", dst,
		"--recovery-passphrase-file", rec, "--name", "web", "--sector-size", "512", "--json", "--force")
	var volumeID string
	sc := bufio.NewScanner(strings.NewReader(out))
	sawProgress := false
	for sc.Scan() {
		var line struct {
			Progress *struct{ Stage string } `json:"progress"`
			Result   *struct {
				Manifest struct {
					VolumeID string `json:"volume_id"`
				} `json:"manifest"`
			} `json:"result"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("not a JSON line: %q", sc.Text())
		}
		sawProgress = sawProgress || line.Progress != nil
		if line.Result != nil {
			volumeID = line.Result.Manifest.VolumeID
		}
	}
	if !sawProgress || volumeID == "" {
		t.Fatalf("prepare --json output:\n%s", out)
	}
	out = l.run(t, 0, "image", "inspect", dst)
	if !strings.Contains(out, "luks") || !strings.Contains(out, volumeID) {
		t.Fatalf("inspect of the output: %s", out)
	}
	// a wrong officer passphrase stops the run: no output, nothing registered
	bad := secretFile(t, dir, "bad", "not the passphrase")
	// (and the officer is told that, not something vaguer)
	msg = l.run(t, 1, "image", "prepare", "--data", data, "--passphrase-file", bad, "--in", src, "--out", dst+"3", "--name", "web3", "--force")
	if !strings.Contains(strings.ToLower(msg), "passphrase") || strings.Contains(msg, "cancelled") {
		t.Fatalf("a wrong passphrase was reported as: %s", msg)
	}
	if ents, _ := os.ReadDir(filepath.Dir(dst)); len(ents) != 2 {
		t.Fatalf("output folder after a wrong passphrase: %v", ents)
	}
	// the same name again is refused before any work
	l.run(t, 1, "image", "prepare", "--data", data, "--passphrase-file", pass, "--in", src, "--out", dst+"2", "--name", "web", "--force")
	if _, err := os.Stat(dst + "2"); err == nil {
		t.Fatal("output written for a refused name")
	}

	// The release secret is nowhere in what the commands printed or wrote
	// in clear (the manifest).
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(data, "keyholder.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	svc := custody.New(db, testConfig.Custody)
	if _, err := svc.Unlock(ctx, "", []byte("officer passphrase")); err != nil {
		t.Fatal(err)
	}
	vols, err := custody.ListVolumes(ctx, db)
	if err != nil || len(vols) != 1 {
		t.Fatalf("volumes %v %v", vols, err)
	}
	// The unlocking officer is the audited actor.
	var actor string
	if err := db.QueryRowContext(ctx, `SELECT actor FROM audit_log WHERE action = 'image.prepare'`).Scan(&actor); err != nil || actor != "officer:admin" {
		t.Fatalf("image.prepare audited as %q (%v)", actor, err)
	}
	secret, err := svc.ReleaseSecret(ctx, volumeID, 1)
	if err != nil {
		t.Fatal(err)
	}
	manifest, _ := os.ReadFile(dst + ".manifest.json")
	for _, blob := range [][]byte{l.out.Bytes(), l.err.Bytes(), manifest} {
		if bytes.Contains(blob, secret) || bytes.Contains(blob, []byte(hex.EncodeToString(secret))) || bytes.Contains(blob, []byte("recovery passphrase")) {
			t.Fatal("a secret leaked into output or the manifest")
		}
	}
}
