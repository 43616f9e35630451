package attest_test

import (
	"go/parser"
	"go/token"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestVerifierImports keeps the verification path clean: no non-test file of
// this package imports the simulator, go-sev-guest's testing package (global
// flags, public keys), or any UI code.
func TestVerifierImports(t *testing.T) {
	forbidden := []string{"keyholder/backend/sim", "github.com/google/go-sev-guest/testing", "keyholder/app", "github.com/wailsapp/"}
	ents, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		n++
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			for _, bad := range forbidden {
				if strings.HasPrefix(path, bad) {
					t.Errorf("%s imports %s", name, path)
				}
			}
		}
	}
	if n < 5 {
		t.Fatalf("checked only %d files", n)
	}
}
