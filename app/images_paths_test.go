package app

import (
	"os"
	"path/filepath"
	"testing"

	"keyholder/backend/diskimage"
)

// In the web console, reading or writing a path on the console's machine
// is for admins and approvers, inside the folders an admin set (none by
// default); the desktop console is the officer's own machine.
func TestImagePathsInTheWebConsole(t *testing.T) {
	s, hub, alice := newImagesConsole(t)
	_ = hub
	for _, o := range [][2]string{{"bob", "approver"}, {"vic", "viewer"}} {
		if _, err := s.Keys.AddOfficer(alice, o[0], o[1], o[0]+"'s passphrase"); err != nil {
			t.Fatal(err)
		}
	}
	bob := loginAs(t, s, "bob", "bob's passphrase")
	vic := loginAs(t, s, "vic", "vic's passphrase")
	allowed, outside := t.TempDir(), t.TempDir()
	img := filepath.Join(allowed, "disk.raw")
	secret := filepath.Join(outside, "secret.raw")
	for _, p := range []string{img, secret} {
		if err := os.WriteFile(p, make([]byte, 1<<20), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(allowed, "link.raw")
	if err := os.Symlink(secret, link); err != nil {
		t.Fatal(err)
	}
	inspect := func(c Caller, p string) Code { _, err := s.Images.Inspect(c, p); return code(err) }

	if got := inspect(alice, img); got != CodeForbidden {
		t.Fatalf("no folders set: %q, want forbidden", got)
	}
	if err := s.Images.SetImageFolders(bob, []string{allowed}); code(err) != CodeForbidden {
		t.Fatalf("an approver sets folders: %v", err)
	}
	if err := s.Images.SetImageFolders(alice, []string{"relative/dir"}); code(err) != CodeInvalid {
		t.Fatalf("relative folder: %v", err)
	}
	if err := s.Images.SetImageFolders(alice, []string{allowed}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		c    Caller
		path string
		want Code
	}{
		{"admin inside", alice, img, ""},
		{"approver inside", bob, img, ""},
		{"viewer inside", vic, img, CodeForbidden},
		{"no session", anon(s), img, CodeUnauthorized},
		{"outside", alice, secret, CodeForbidden},
		{"dot-dot out", alice, filepath.Join(allowed, "..", filepath.Base(outside), "secret.raw"), CodeForbidden},
		{"link out", alice, link, CodeForbidden},
		{"the folder itself", alice, allowed, CodeForbidden},
		{"system file", alice, "/etc/passwd", CodeForbidden},
		{"relative", alice, "disk.raw", CodeInvalid},
		// Outside the folders, a missing file is refused like a present
		// one: the answer does not tell whether a file exists there.
		{"missing outside", bob, filepath.Join(outside, "missing.raw"), CodeForbidden},
		{"missing folder outside", bob, "/nonexistent-dir/x.raw", CodeForbidden},
		{"missing inside", bob, filepath.Join(allowed, "missing.raw"), CodeNotFound},
	} {
		if got := inspect(tc.c, tc.path); got != tc.want {
			t.Errorf("%s: Inspect(%s) = %q, want %q", tc.name, tc.path, got, tc.want)
		}
	}
	// Prepare checks its output too; a folder that does not exist outside
	// the image folders is refused as outside, not as missing.
	if _, err := s.Images.Prepare(alice, PrepareRequest{Source: img, Dest: "/nonexistent-dir/out.raw", Name: "x"}); code(err) != CodeForbidden {
		t.Fatalf("prepare into a missing folder outside: %v", err)
	}
	if _, err := s.Images.Prepare(alice, PrepareRequest{Source: img, Dest: filepath.Join(outside, "out.raw"), Name: "x"}); code(err) != CodeForbidden {
		t.Fatalf("prepare into a folder not allowed: %v", err)
	}
	if _, err := s.Images.Prepare(alice, PrepareRequest{Source: secret, Dest: filepath.Join(allowed, "out.raw"), Name: "x"}); code(err) != CodeForbidden {
		t.Fatalf("prepare from a file not allowed: %v", err)
	}
	if fs, err := s.Images.ImageFolders(vic); err != nil || len(fs) != 1 {
		t.Fatalf("folders: %v %v", fs, err)
	}

	// The desktop console: the officer's own machine, any path.
	d, _ := newSessionServices(t, "desktop")
	dalice := setupAs(t, d, "alice", "alice's passphrase")
	if info, err := d.Images.Inspect(dalice, secret); err != nil || info.Format != diskimage.Raw {
		t.Fatalf("desktop inspect: %+v %v", info, err)
	}
}
