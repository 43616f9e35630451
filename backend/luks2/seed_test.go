package luks2

import (
	"bytes"
	"os"
	"testing"

	"keyholder/internal/fuzzseed"
)

// TestWriteSeeds regenerates the fuzz seed corpus when KEYHOLDER_WRITE_SEEDS is set.
func TestWriteSeeds(t *testing.T) {
	if os.Getenv("KEYHOLDER_WRITE_SEEDS") == "" {
		return
	}
	m := validVolume(t)
	js := bytes.TrimRight(m.b[binHeaderSize:defaultHdrSize], "\x00")
	fuzzseed.Write(t, "FuzzMetadata", "valid", js)
	fuzzseed.Write(t, "FuzzOpen", "primary", m.b[:defaultHdrSize])
}
