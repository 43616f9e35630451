package app

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"sort"
	"testing"
	"time"

	"keyholder/backend/store"
	"keyholder/backend/store/storetest"
)

var updateMethods = flag.Bool("update-methods", false, "rewrite frontend/src/api/methods.json from Handler.Methods()")

// methodsFile is the list of served methods the frontend's client is checked
// against (frontend/src/api/client.test.ts reads it): a method added on one
// side only fails one of the two tests.
const methodsFile = "../frontend/src/api/methods.json"

// TestMethodsMatchFrontendList compares Handler.Methods() with the list the
// TypeScript client is tested against. Run with -update-methods after adding
// or removing a service method, then make the client match.
func TestMethodsMatchFrontendList(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, storetest.Location(t, t.TempDir()), store.Options{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	hub := NewHub()
	h, err := NewHandler(New(ctx, Config{Version: "test", DataDir: t.TempDir(), Mode: "web"}, db, hub), HandlerOptions{Hub: hub})
	if err != nil {
		t.Fatal(err)
	}
	got := h.Methods()
	sort.Strings(got)
	want, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, '\n')
	if *updateMethods {
		if err := os.WriteFile(methodsFile, want, 0o644); err != nil {
			t.Fatalf("write %s: %v", methodsFile, err)
		}
		return
	}
	have, err := os.ReadFile(methodsFile)
	if err != nil {
		t.Fatalf("read %s (go test ./app -run TestMethodsMatchFrontendList -update-methods writes it): %v", methodsFile, err)
	}
	if !bytes.Equal(have, want) {
		var listed []string
		if err := json.Unmarshal(have, &listed); err != nil {
			t.Fatalf("%s: %v", methodsFile, err)
		}
		t.Errorf("%s is out of date (rerun with -update-methods, then make the TypeScript client match):\n%s", methodsFile, listDiff(listed, got))
	}
}

// listDiff says which names only one of two sorted lists has.
func listDiff(file, served []string) string {
	in := func(xs []string, x string) bool {
		i := sort.SearchStrings(xs, x)
		return i < len(xs) && xs[i] == x
	}
	var b bytes.Buffer
	for _, s := range served {
		if !in(file, s) {
			b.WriteString("  served, not in the list: " + s + "\n")
		}
	}
	for _, s := range file {
		if !in(served, s) {
			b.WriteString("  in the list, not served: " + s + "\n")
		}
	}
	if b.Len() == 0 {
		b.WriteString("  same names, different formatting or order\n")
	}
	return b.String()
}

// TestNewWithoutStore: Wails generates the desktop's bindings from services
// made without a store; nothing in them may touch the store (the audit
// watcher did at once, and the desktop build panicked).
func TestNewWithoutStore(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	svcs := New(ctx, Config{Version: "test", Mode: "desktop"}, nil, &DesktopEvents{})
	h, err := NewHandler(svcs, HandlerOptions{AnyHost: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Methods()) == 0 {
		t.Fatal("no methods")
	}
	// A background goroutine that reads the store would panic by now.
	time.Sleep(200 * time.Millisecond)
}
