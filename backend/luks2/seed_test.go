package luks2

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// TestWriteSeeds regenerates the fuzz seed corpus when KEYHOLDER_WRITE_SEEDS is set.
func TestWriteSeeds(t *testing.T) {
	if os.Getenv("KEYHOLDER_WRITE_SEEDS") == "" {
		return
	}
	m := validVolume(t)
	js := bytes.TrimRight(m.b[binHeaderSize:defaultHdrSize], "\x00")
	writeSeed(t, "FuzzMetadata", "valid", js)
	writeSeed(t, "FuzzOpen", "primary", m.b[:defaultHdrSize])
}

// writeSeed writes b as seed name of fuzz target fuzz, failing the test on
// any error (a corpus written in part would pass silently).
func writeSeed(t *testing.T, fuzz, name string, b []byte) {
	t.Helper()
	dir := filepath.Join("testdata", "fuzz", fuzz)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte("go test fuzz v1\n[]byte("+strconv.Quote(string(b))+")\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}
