// Package tpmwire is the one place that encodes and decodes a go-tpm-tools
// vTPM attestation (its protocol-buffer message) for the evidence a guest
// sends: the agent and the simulated TPM marshal it, the console parses it.
package tpmwire

import (
	pb "github.com/google/go-tpm-tools/proto/attest"
	"google.golang.org/protobuf/proto"
)

// Marshal encodes att.
func Marshal(att *pb.Attestation) ([]byte, error) { return proto.Marshal(att) }

// Unmarshal decodes b.
func Unmarshal(b []byte) (*pb.Attestation, error) {
	var att pb.Attestation
	if err := proto.Unmarshal(b, &att); err != nil {
		return nil, err
	}
	return &att, nil
}
