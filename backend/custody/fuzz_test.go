package custody

import (
	"bufio"
	"bytes"
	"testing"
	"time"
)

var fuzzKey = bytes.Repeat([]byte{0x42}, 32)

// fuzzBackup makes a small valid backup stream under fuzzKey.
func fuzzBackup(content []byte, chunk int) []byte {
	hdr := backupHeader{ConsoleID: "con_fuzz", CreatedAt: time.Unix(0, 0).UTC(), SchemaVersion: 3, KeyCheck: make([]byte, 32),
		FileSalt: make([]byte, 32), ChunkSize: chunk, Officers: []backupOfficer{{ID: "off_1", Name: "alice", Role: RoleAdmin, KDF: testKDF, Salt: make([]byte, 16), Wrapped: make([]byte, 60)}}}
	var b bytes.Buffer
	if _, err := writeBackupStream(&b, hdr, fuzzKey, bytes.NewReader(content)); err != nil {
		panic(err)
	}
	return b.Bytes()
}

// readFuzzBackup runs the backup reader (header, chunks, end of file) the
// way RestoreBackup does, with a fixed stream key instead of a passphrase.
func readFuzzBackup(data []byte) ([]byte, error) {
	br := &backupReader{r: bufio.NewReader(bytes.NewReader(data))}
	hdr, hh, err := readBackupHeader(br.r)
	if err != nil {
		return nil, err
	}
	br.hdr, br.hh, br.aead = hdr, hh, newGCM(fuzzKey)
	var out bytes.Buffer
	_, err = br.decryptTo(&out)
	return out.Bytes(), err
}

func TestBackupStreamBoundaries(t *testing.T) {
	for _, chunk := range []int{1, 7, 64} {
		for _, n := range []int{0, 1, chunk - 1, chunk, chunk + 1, 2 * chunk, 3*chunk + 5} {
			if n < 0 {
				continue
			}
			content := bytes.Repeat([]byte("k"), n)
			data := fuzzBackup(content, chunk)
			got, err := readFuzzBackup(data)
			if err != nil || !bytes.Equal(got, content) {
				t.Fatalf("chunk %d, %d bytes: %v", chunk, n, err)
			}
			// Every proper prefix is refused.
			for cut := 0; cut < len(data); cut++ {
				if _, err := readFuzzBackup(data[:cut]); err == nil {
					t.Fatalf("chunk %d, %d bytes: a file cut at %d of %d was accepted", chunk, n, cut, len(data))
				}
			}
		}
	}
}

func FuzzBackupReader(f *testing.F) {
	f.Add(fuzzBackup([]byte("SQLite format 3\x00 a tiny database"), 8))
	f.Add(fuzzBackup(nil, 4))
	f.Add([]byte(backupMagic))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := readFuzzBackup(data)
		if err != nil {
			return
		}
		// Whatever opens must re-encode to a stream that opens to the same bytes.
		br := bufio.NewReader(bytes.NewReader(data))
		hdr, _, _ := readBackupHeader(br)
		again, err := readFuzzBackup(fuzzBackup(got, hdr.ChunkSize))
		if err != nil || !bytes.Equal(again, got) {
			t.Fatalf("round trip: %v", err)
		}
	})
}
