//go:build !simulate

package main

import (
	"errors"
	"flag"

	"keyholder/backend/agent"
)

// simOptions exist only in development builds (-tags simulate), which link
// the simulated AMD root; production agents carry none of it.
type simOptions struct{}

func (simOptions) flags(*flag.FlagSet) {}

func (simOptions) evidencer() (agent.Evidencer, error) {
	return nil, errors.New("--simulate needs a development build of the agent (go build -tags simulate)")
}
