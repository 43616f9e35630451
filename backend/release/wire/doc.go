// Package wire is the key release protocol as both ends see it: the
// transcript that binds a guest's HPKE key into its SNP report, the HPKE
// sealing of a release secret, and the JSON messages with their strict
// decoder. The console (backend/release) and the guest agent (backend/agent)
// both import it; it imports neither the store nor any UI code.
//
// # Transcript
//
// The guest asks the SEV-SNP firmware for a report whose 64-byte REPORT_DATA
// field is (wire version 2)
//
//	REPORT_DATA = SHA-512( lp("keyholder-release-v2") ‖ lp(nonce) ‖ lp(hpke_public_key) ‖ lp(volume_id) ‖
//	                       lp(vm_id) ‖ lp(purpose) ‖ uint32_be(generation) ‖ lp(ak_digest) )
//	lp(x)       = uint32_be(len(x)) ‖ x
//
// where nonce is the 32 random bytes from POST /v1/challenge, hpke_public_key
// is the guest's ephemeral public key in its RFC 9180 serialisation
// (ML-KEM-768+X25519: 1216 bytes), volume_id and vm_id are the request's IDs
// as UTF-8 bytes (1 to 128 bytes of [A-Za-z0-9._:-]), purpose is "boot",
// "rotate" or "heartbeat", generation is the request's generation (0: the
// current one), and ak_digest is empty, or for a guest with a vTPM the
// SHA-256 of its attestation key's TPMT_PUBLIC, so that the key that signs
// the vTPM quote is bound to the SNP report (the quote's nonce is
// REPORT_DATA). Every field the console's decision depends on is bound: a
// request edited on the way no longer matches its report. Every field is
// length-prefixed (the generation has a fixed size), so no two different
// inputs share an encoding. testdata/transcript.json is a vector.
//
// Requests carry "version": 2. Version 1 (no version field) bound only
// nonce, key and volume; it is refused with CodeUnsupportedVersion and a
// message naming both versions.
//
// # Sealing
//
// A release secret travels only as HPKE (RFC 9180, base mode) output:
// KEM ML-KEM-768+X25519 (0x647a), KDF HKDF-SHA256 (0x0001), AEAD AES-256-GCM
// (0x0002), sealed to the public key the report binds, with
//
//	info = lp("keyholder-release-v1 seal") ‖ lp(request_id) ‖ lp(volume_id) ‖ uint32_be(generation)
//
// and no additional data. The sealed value is enc ‖ ciphertext as
// crypto/hpke's Seal returns it. A secret sealed for one request, volume or
// generation does not open for another. TLS around the exchange is defence
// in depth, not the protection.
//
// # Messages
//
// Requests are JSON objects, at most MaxBody bytes, decoded by
// DecodeReleaseRequest: unknown fields, duplicate fields, trailing data and
// out-of-range lengths are refused. Binary fields are standard base64.
//
//	POST /v1/challenge     -> 200 Challenge
//	POST /v1/release       ReleaseRequest -> 200 Release (released) | 202 Release (pending) | 4xx Error
//	GET  /v1/release/{id}  -> as POST /v1/release, for a pending request
//	POST /v1/heartbeat     ReleaseRequest (purpose "heartbeat") -> 200 Heartbeat | 4xx Error
//	POST /v1/rotation/confirm RotationConfirm -> 200 | 4xx Error
package wire
