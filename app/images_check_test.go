package app

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"keyholder/backend/audit"
)

// TestImagesPrepareChecksPathsFirst: an output that is the input (also
// through a symlink or a hard link), in a folder that does not exist, or
// that exists already is refused by Prepare itself, before any operation
// starts, and the refusal is audited.
func TestImagesPrepareChecksPathsFirst(t *testing.T) {
	svcs, _, alice := newImagesConsole(t)
	dir := t.TempDir()
	if err := svcs.Images.SetImageFolders(alice, []string{dir}); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "disk.raw")
	data := make([]byte, 1<<20)
	rand.Read(data)
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.raw")
	if err := os.Symlink(src, link); err != nil {
		t.Fatal(err)
	}
	hard := filepath.Join(dir, "hard.raw")
	if err := os.Link(src, hard); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "other.img")
	os.WriteFile(other, []byte("x"), 0o644)
	cases := []struct {
		name, dest string
		code       Code
		says       string
	}{
		{"same path", src, CodeInvalid, "same file"},
		{"symlink to the input", link, CodeForbidden, "symbolic link"},
		{"hard link to the input", hard, CodeInvalid, "same file"},
		{"missing folder", filepath.Join(dir, "nope", "out.img"), CodeNotFound, "no such folder"},
		{"existing output", other, CodeConflict, "exists"},
	}
	for _, c := range cases {
		op, err := svcs.Images.Prepare(alice, PrepareRequest{Source: src, Dest: c.dest, Name: "web", ConfirmRaw: true})
		var ae *Error
		if !errors.As(err, &ae) || ae.Code != c.code || !strings.Contains(ae.Message, c.says) {
			t.Errorf("%s: Prepare = %q, %v; want a %s error saying %q at once", c.name, op, err, c.code, c.says)
		}
	}
	if got, _ := os.ReadFile(src); string(got) != string(data) {
		t.Fatal("the input changed")
	}
	entries, err := audit.List(context.Background(), svcs.Images.db, audit.Query{Search: "image.prepare"})
	if err != nil {
		t.Fatal(err)
	}
	failed := 0
	for _, e := range entries {
		if e.Action == "image.prepare" && e.Decision == "failed" && e.Reason != "" {
			failed++
		}
	}
	if failed != len(cases) {
		t.Fatalf("%d failed preparations audited, want %d: %+v", failed, len(cases), entries)
	}
}
