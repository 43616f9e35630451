package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// The tables follow the code: every line's FROM occurs exactly once in its
// file, so a reviewer's run does not stop at a stale line (a check whose
// code changed must get its line changed in the same commit).
func TestTablesApply(t *testing.T) {
	root := filepath.Join("..", "..")
	for _, table := range []string{"backend/release/testdata/mutations.txt", "backend/quorum/testdata/mutations.txt", "app/testdata/mutations.txt"} {
		ms, err := readTable(filepath.Join(root, table))
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) == 0 {
			t.Errorf("%s: no mutations", table)
		}
		for _, m := range ms {
			src, err := os.ReadFile(filepath.Join(root, m.file))
			if err != nil {
				t.Errorf("%s %s: %v", table, m.id, err)
				continue
			}
			if n := bytes.Count(src, []byte(m.from)); n != 1 {
				t.Errorf("%s %s: its code occurs %d times in %s, want once", table, m.id, n, m.file)
			}
			if m.from == m.to {
				t.Errorf("%s %s: the mutation changes nothing", table, m.id)
			}
		}
	}
}
