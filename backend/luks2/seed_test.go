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
	dir := filepath.Join("testdata", "fuzz", "FuzzOpen")
	os.MkdirAll(dir, 0o755)
	js := bytes.TrimRight(m.b[binHeaderSize:defaultHdrSize], "\x00")
	os.MkdirAll(filepath.Join("testdata", "fuzz", "FuzzMetadata"), 0o755)
	os.WriteFile(filepath.Join("testdata", "fuzz", "FuzzMetadata", "valid"), []byte("go test fuzz v1\n[]byte("+strconv.Quote(string(js))+")\n"), 0o644)
	for name, b := range map[string][]byte{"primary": m.b[:defaultHdrSize]} {
		os.WriteFile(filepath.Join(dir, name), []byte("go test fuzz v1\n[]byte("+strconv.Quote(string(b))+")\n"), 0o644)
	}
}
