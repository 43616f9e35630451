package store

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// writeSQL finds the table a statement writes (SQL keywords are upper case
// in this code base; prose that says "update the" is not SQL).
var writeSQL = regexp.MustCompile(`\b(?:INSERT(?:\s+OR\s+\w+)?\s+INTO|REPLACE\s+INTO|UPDATE(?:\s+OR\s+\w+)?|DELETE\s+FROM)\s+([a-z_][a-z0-9_]*)`)

// readSQL finds a query.
var readSQL = regexp.MustCompile(`(?s)\bSELECT\b.+\bFROM\s+[a-z_]`)

// noSQL are the packages that reach the store through domain packages only.
var noSQL = []string{"internal/cli", "main.go", "desktop.go"}

// sharedTables are written by more than one package on purpose: settings is
// a key-value table whose keys belong to the packages that write them.
var sharedTables = map[string]bool{"settings": true}

// owners are the packages that own the tables the other packages must
// reach through them (issue: the CLI, the bench and the demo wrote these).
var owners = map[string]string{
	"vms":               "backend/fleet",
	"vm_chips":          "backend/fleet",
	"vm_measurements":   "backend/fleet",
	"vm_launches":       "backend/fleet",
	"attestations":      "backend/fleet",
	"images":            "backend/images",
	"approval_requests": "backend/release",
	"approvals":         "backend/release",
	"volumes":           "backend/custody",
	"audit_log":         "backend/audit",
}

// TestOneWriterPerTable: every table is written (INSERT, UPDATE, DELETE)
// by the SQL of one package only, outside tests; the others call its
// functions. The command line holds no SQL at all. It reads the string
// literals of every Go file of the module.
func TestOneWriterPerTable(t *testing.T) {
	root := filepath.Join("..", "..")
	writers := map[string]map[string][]string{} // table → package dir → places
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			switch {
			case d.Name() == "node_modules", d.Name() == "testdata", strings.HasPrefix(d.Name(), ".") && rel != ".", rel == "frontend", rel == "tools":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			s, err := strconv.Unquote(lit.Value)
			if err != nil {
				return true
			}
			for _, p := range noSQL {
				if (rel == p || strings.HasPrefix(rel, p+"/")) && (readSQL.MatchString(s) || writeSQL.MatchString(s)) {
					t.Errorf("%s: SQL in a package that must call domain packages: %.60q", rel, s)
				}
			}
			for _, m := range writeSQL.FindAllStringSubmatch(s, -1) {
				table := m[1]
				pkg := filepath.ToSlash(filepath.Dir(rel))
				if writers[table] == nil {
					writers[table] = map[string][]string{}
				}
				writers[table][pkg] = append(writers[table][pkg], rel)
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for table, owner := range owners {
		if _, ok := writers[table][owner]; !ok {
			t.Errorf("table %s: its owner %s writes it nowhere (has it moved? update owners)", table, owner)
		}
	}
	for table, pkgs := range writers {
		if sharedTables[table] {
			continue
		}
		if owner, ok := owners[table]; ok {
			for pkg, places := range pkgs {
				if pkg != owner {
					t.Errorf("table %s belongs to %s, but %s writes it (%s): call %s instead", table, owner, pkg, strings.Join(places, ", "), owner)
				}
			}
			continue
		}
		if len(pkgs) > 1 {
			var names []string
			for pkg := range pkgs {
				names = append(names, pkg)
			}
			sort.Strings(names)
			t.Errorf("table %s is written by %d packages (%s): give it one owner", table, len(names), strings.Join(names, ", "))
		}
	}
	if len(writers["vms"]) == 0 || len(writers) < 10 {
		t.Fatalf("found writes to %d tables only: the scan reads nothing", len(writers))
	}
}
