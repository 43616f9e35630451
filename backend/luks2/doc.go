// Package luks2 reads and writes LUKS2 volumes that cryptsetup opens, without
// cgo and on every platform the console runs on.
//
// Use Format to write a new header with its keyslots, Open to read and
// validate one, Volume.Unlock to recover the volume key from a keyslot, and
// Volume.AddKeyslot / Volume.RemoveKeyslot to change keyslots. NewCipher
// encrypts and decrypts payload sectors (aes-xts-plain64; the IV counts
// 512-byte units whatever the sector size, as dm-crypt does).
//
// Out of scope: other ciphers than aes-xts-plain64, more than one data
// segment, online reencryption, integrity (dm-integrity) and detached
// headers. Such headers are refused with a clear error, never guessed at.
//
// The on-disk layout follows the LUKS2 On-Disk Format Specification
// (https://gitlab.com/cryptsetup/LUKS2-docs), version 1.1.x:
//
//	0        binary header (4096 bytes) + JSON area   primary, hdr_size bytes
//	hdr_size binary header + JSON area                secondary copy
//	2*hdr_size ...                                     keyslots area (keyslots_size)
//	segment offset ...                                 encrypted payload
//
// The binary header is big-endian: magic "LUKS\xba\xbe" (secondary "SKUL\xba\xbe"),
// version 2, hdr_size, seqid, label[48], checksum_alg[32], salt[64],
// uuid[40], subsystem[48], hdr_offset, padding, csum[64] at byte 448. The
// checksum is the hash of the whole hdr_size area with csum zeroed.
//
// A keyslot stores the volume key split with the anti-forensic splitter (AF,
// from LUKS1) into stripes, encrypted with aes-xts-plain64 under a key
// derived from the passphrase by PBKDF2 or Argon2. A pbkdf2 digest of the
// volume key tells a right key from a wrong one.
//
// The console adds one token of type "keyholder" (like systemd-cryptenroll's
// tokens) naming the volume ID, the release keyslot's generation, the
// release URL and the SPKI pin, so the guest agent needs no other
// configuration; `cryptsetup token export` shows it.
package luks2
