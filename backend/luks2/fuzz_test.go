package luks2

import "testing"

// FuzzOpen feeds arbitrary headers to Open: it must never panic, and what
// it accepts must be self-consistent.
func FuzzOpen(f *testing.F) {
	// Seeds: testdata/fuzz/FuzzOpen (regenerate with KEYHOLDER_WRITE_SEEDS=1).
	f.Fuzz(func(t *testing.T, data []byte) {
		m := &memFile{b: data}
		v, err := Open(m)
		if err != nil {
			return
		}
		_ = v.Keyslots()
		v.Token()
		if v.PayloadOffset() < 2*defaultHdrSize || !validSectorSize(v.SectorSize()) {
			t.Fatalf("accepted payload offset %d sector %d", v.PayloadOffset(), v.SectorSize())
		}
	})
}

// FuzzMetadata feeds arbitrary JSON to the metadata parser and validator
// (the part of a header an attacker can shape most freely).
func FuzzMetadata(f *testing.F) {
	f.Fuzz(func(t *testing.T, js []byte) {
		md, err := parseMetadata(js)
		if err != nil {
			return
		}
		if validate(defaultHdrSize, md) == nil {
			v := &Volume{bin: &binHeader{hdrSize: defaultHdrSize}, md: md}
			_ = v.Keyslots()
			v.Token()
			_ = v.SectorSize()
		}
	})
}
