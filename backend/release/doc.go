// Package release is Keyholder's key release service: the console side of
// the protocol in package wire, the decision engine, and the requests that
// wait for an officer.
//
// A guest's request goes through these steps (Service.Release):
//
//  1. its challenge is checked without storage (Challenges: a MAC under a
//     key derived from the master key, an expiry of 60 s), then used up,
//     first in this process and then in the decision's transaction
//     (consumed_challenges: single use across every console process on the
//     database); a request without a valid challenge is junk;
//  2. the evidence is verified (Verifier; AttestVerifier applies the image's
//     latest reference values and the transcript hash as REPORT_DATA); only
//     authentic evidence counts against its VM's rate limit;
//  3. in one write transaction: what the fleet knows about the VM is read,
//     Classify (a pure function) decides the class and the action by the
//     effective Policy, and the outcome is recorded — released (the secret
//     is unwrapped by the key service), pending (an approval_requests row),
//     or refused — with its fleet rows and its audit entry;
//  4. after the commit the secret is HPKE-sealed to the key the report binds
//     and wiped.
//
// Decisions are committed in groups (commit.go): one transaction carries
// many decisions, each in its own savepoint, and every caller hears of its
// decision only after the commit is durable.
//
// Approvals (Service.Approve) are bound to the request and its evidence
// hash, need an approver who authenticated recently, expire with the request
// (15 minutes by default), and a class may need M of N distinct officers.
// A denial is final. The guest collects an approved secret once, through
// Service.Poll.
//
// Handler serves the API on its own TLS 1.3 listener (LoadOrCreateTLS makes
// and keeps the certificate; guests pin its SPKI hash), with body limits,
// timeouts, bounded queues for what requests hold before they are
// authenticated, rate limits per source address, network and VM, and junk
// audited in aggregate (junk.go).
//
// Out of scope here: verifying evidence (backend/attest), keeping and
// wrapping secrets (backend/custody), the guest side (backend/agent).
package release
