package xts

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoByteTables keeps the package free of the 256-entry tables a
// table-driven AES (or its key expansion) indexes with secret bytes: no
// package-level array of 256 elements in any non-test source file. The key
// schedule computes the S-box instead (keys.go) or leaves it to
// AESKEYGENASSIST (gen_aesni.go).
func TestNoByteTables(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		if f.Name.Name != "xts" {
			continue // the generators
		}
		checked++
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.VAR {
				continue
			}
			for _, s := range g.Specs {
				for _, typ := range specTypes(s.(*ast.ValueSpec)) {
					if a, ok := typ.(*ast.ArrayType); ok {
						if l, ok := a.Len.(*ast.BasicLit); ok && l.Value == "256" {
							t.Errorf("%s: a package-level table of 256 entries", fset.Position(a.Pos()))
						}
					}
				}
			}
		}
	}
	if checked < 3 {
		t.Fatalf("checked only %d files", checked)
	}
}

// specTypes returns the declared type of a var spec and the types of its
// composite-literal values.
func specTypes(s *ast.ValueSpec) []ast.Expr {
	var types []ast.Expr
	if s.Type != nil {
		types = append(types, s.Type)
	}
	for _, v := range s.Values {
		if c, ok := v.(*ast.CompositeLit); ok && c.Type != nil {
			types = append(types, c.Type)
		}
	}
	return types
}
