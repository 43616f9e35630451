// Command keyholder-agent runs inside a confidential VM (AMD SEV-SNP). At
// boot, before the encrypted volume is opened, it proves to the Keyholder
// console what it is and receives the volume's release secret sealed to a
// key that only this boot holds; then it opens the volume with cryptsetup.
// While the guest runs it sends heartbeats with fresh evidence.
//
//	keyholder-agent unlock --device DEV --name NAME [--console URL --pin SPKI_SHA256 --volume ID] [--vm-id ID] [--test-only] [--simulate]
//	keyholder-agent heartbeat --device DEV [--console URL --pin SPKI_SHA256 --volume ID] [--vm-id ID] [--once] [--simulate]
//
// Without --console, --pin and --volume it reads them from the volume's
// "keyholder" LUKS2 token, which may name several consoles (replicas), each
// with its own pin: the agent tries them in turn with back-off and jitter. The secret reaches cryptsetup on a pipe, never
// on the command line or a disk. The agent imports no console code beyond
// the wire protocol.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"keyholder/backend/agent"
	"keyholder/backend/luks2"
	"keyholder/backend/release/wire"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `Usage:
  keyholder-agent unlock    --device DEV --name NAME [flags]   get the volume's secret and open it
  keyholder-agent heartbeat --device DEV [flags]               send fresh evidence every interval

Flags (both):
  --console URLS     release API, or a comma list of consoles tried in turn, each URL or
                     URL#PIN (default: every console the volume's keyholder token names)
  --pin SPKI_SHA256  the release API's certificate pin, hex or base64, for consoles
                     given without one (default: from the token)
  --volume ID        the console's volume ID (default: from the token)
  --generation N     the volume generation on disk (default: from the token)
  --vm-id ID         this VM's identity (default: the SMBIOS system UUID, else /etc/machine-id)
  --simulate         use a simulated SEV-SNP chip (development builds only)
  --no-tpm           send no vTPM attestation (default: one where /dev/tpmrm0 exists)
unlock:
  --test-only        check the secret with 'cryptsetup open --test-passphrase' instead of opening
  --timeout D        how long to wait for an officer's approval (default 20m)
heartbeat:
  --once             send one heartbeat and exit
`

// options are the flags both subcommands share.
type options struct {
	console, pin, volume, device, name, vmID string
	generation                               int
	testOnly, simulate, once, noTPM          bool
	timeout                                  time.Duration
	sim                                      simOptions
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		return 0
	}
	cmd := args[0]
	if cmd != "unlock" && cmd != "heartbeat" {
		fmt.Fprintf(stderr, "keyholder-agent: unknown command %q\n%s", cmd, usage)
		return 2
	}
	var o options
	fs := flag.NewFlagSet("keyholder-agent "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.console, "console", "", "release API URL")
	fs.StringVar(&o.pin, "pin", "", "SPKI SHA-256 pin of the release API")
	fs.StringVar(&o.volume, "volume", "", "volume ID")
	fs.IntVar(&o.generation, "generation", 0, "volume generation on disk")
	fs.StringVar(&o.device, "device", "", "the LUKS2 device")
	fs.StringVar(&o.name, "name", "", "device-mapper name to open the volume as")
	fs.StringVar(&o.vmID, "vm-id", "", "this VM's identity")
	fs.BoolVar(&o.testOnly, "test-only", false, "only check the secret")
	fs.BoolVar(&o.simulate, "simulate", false, "simulated SEV-SNP chip")
	fs.BoolVar(&o.once, "once", false, "one heartbeat")
	fs.BoolVar(&o.noTPM, "no-tpm", false, "send no vTPM attestation even where "+agent.DefaultTPMDevice+" exists")
	fs.DurationVar(&o.timeout, "timeout", 20*time.Minute, "wait for approval at most this long")
	o.sim.flags(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	var err error
	if cmd == "unlock" {
		err = unlock(ctx, o, stdout)
	} else {
		err = heartbeat(ctx, o, stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "keyholder-agent %s: %s\n", cmd, explain(err))
		if agent.Code(err) != "" {
			return 3 // refused by the console
		}
		return 1
	}
	return 0
}

// explain adds a hint to the refusals a person can act on.
func explain(err error) string {
	msg := err.Error()
	switch agent.Code(err) {
	case wire.CodeDeniedByOfficer:
		return msg + "\nAn officer denied this boot; ask them why, then reboot to ask again."
	case wire.CodeRequestExpired:
		return msg + "\nNo officer decided in time; reboot to ask again."
	case wire.CodeEvidenceInvalid, wire.CodePolicyDebug, wire.CodePolicyMigration:
		return msg + "\nThe console does not trust this VM's launch; check the image and its reference values."
	case wire.CodeVMRevoked, wire.CodeVolumeRevoked:
		return msg + "\nThis VM or volume was revoked by an officer."
	case wire.CodeUnavailable:
		return msg + "\nRetry later."
	}
	if errors.Is(err, wire.ErrPinMismatch) {
		return msg + "\nThe server is not the console this volume trusts (certificate pin mismatch)."
	}
	return msg
}

// resolve fills the consoles, pins, volume and generation from the token
// where the flags leave them out. --console may be a comma list, each entry
// URL or URL#PIN (an entry without a pin takes --pin).
func resolve(o *options) (luks2.Token, error) {
	tok := luks2.Token{VolumeID: o.volume, Generation: o.generation}
	var flagged []luks2.Console
	for _, item := range strings.Split(o.console, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		u, pin, _ := strings.Cut(item, "#")
		if pin == "" {
			pin = o.pin
		}
		flagged = append(flagged, luks2.Console{URL: u, SPKIPin: pin})
	}
	pinned := len(flagged) > 0
	for _, c := range flagged {
		pinned = pinned && c.SPKIPin != ""
	}
	if !pinned || o.volume == "" {
		if o.device == "" {
			return tok, errors.New("--device is required (or --console, --pin and --volume)")
		}
		t, err := agent.ReadToken(o.device)
		if err != nil {
			return tok, err
		}
		if len(flagged) == 0 {
			flagged = t.Endpoints()
			for i := range flagged {
				if o.pin != "" {
					flagged[i].SPKIPin = o.pin
				}
			}
		}
		for i := range flagged {
			if flagged[i].SPKIPin == "" {
				flagged[i].SPKIPin = t.SPKIPin
			}
		}
		if tok.VolumeID == "" {
			tok.VolumeID = t.VolumeID
		}
		if o.generation == 0 {
			tok.Generation = t.Generation
		}
		tok.Keyslot = t.Keyslot
	}
	tok = tok.WithConsoles(flagged)
	if o.vmID == "" {
		id, err := agent.DefaultVMID(nil)
		if err != nil {
			return tok, err
		}
		o.vmID = id
	}
	if err := wire.CheckID(o.vmID); err != nil {
		return tok, fmt.Errorf("--vm-id: %w", err)
	}
	return tok, nil
}

func evidencer(o options) (agent.Evidencer, error) {
	if o.simulate {
		return o.sim.evidencer()
	}
	if _, err := os.Stat(agent.DefaultTPMDevice); err == nil && !o.noTPM {
		// The vTPM's quote (PCRs, event log) travels with the report; its
		// attestation key is bound into the report's transcript.
		return &agent.VTPM{SNP: agent.SNPDevice{}}, nil
	}
	return agent.SNPDevice{}, nil
}

func unlock(ctx context.Context, o options, stdout io.Writer) error {
	if o.device == "" || (o.name == "" && !o.testOnly) {
		return errors.New("--device and --name are required (--name may be left out with --test-only)")
	}
	tok, err := resolve(&o)
	if err != nil {
		return err
	}
	ev, err := evidencer(o)
	if err != nil {
		return err
	}
	c, err := agent.NewPool(tok.Endpoints())
	if err != nil {
		return err
	}
	told := ""
	res, err := c.Obtain(ctx, ev, agent.Request{VMID: o.vmID, VolumeID: tok.VolumeID, Generation: tok.Generation, MaxWait: o.timeout,
		Retrying: func(err error) {
			fmt.Fprintf(stdout, "The console cannot answer yet (%v); asking again…\n", err)
		},
		Waiting: func(rel *wire.Release) {
			if rel.RequestID != told {
				told = rel.RequestID
				fmt.Fprintf(stdout, "Waiting for an officer to approve this %s (request %s)…\n", strings.ReplaceAll(rel.Class, "_", " "), rel.RequestID)
			}
		}})
	if err != nil {
		return err
	}
	defer res.Wipe()
	if res.Simulated {
		fmt.Fprintln(stdout, "SIMULATED evidence: this console runs in development mode.")
	}
	cs := agent.Cryptsetup{}
	secret := res.Secret
	if res.NewGeneration != 0 && !o.testOnly {
		fmt.Fprintf(stdout, "Rotating %s from generation %d to %d…\n", o.device, res.Generation, res.NewGeneration)
		if err := c.Rotate(ctx, cs, o.device, o.vmID, tok, res); err != nil {
			return fmt.Errorf("rotation: %w (the volume still opens with generation %d)", err, res.Generation)
		}
		secret = res.NewSecret
	}
	if o.testOnly {
		if err := cs.Test(ctx, o.device, secret); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "The released secret (generation %d, %s) opens %s (test only, nothing mapped).\n", res.Generation, res.Class, o.device)
		return nil
	}
	if err := cs.Open(ctx, o.device, o.name, secret); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Opened %s as /dev/mapper/%s (%s).\n", o.device, o.name, res.Class)
	return nil
}

func heartbeat(ctx context.Context, o options, stdout io.Writer) error {
	tok, err := resolve(&o)
	if err != nil {
		return err
	}
	ev, err := evidencer(o)
	if err != nil {
		return err
	}
	c, err := agent.NewPool(tok.Endpoints())
	if err != nil {
		return err
	}
	for {
		hb, err := c.Heartbeat(ctx, ev, agent.Request{VMID: o.vmID, VolumeID: tok.VolumeID, Generation: tok.Generation})
		next := 60 * time.Second
		switch {
		case err != nil && (o.once || agent.Code(err) != wire.CodeUnavailable && agent.Code(err) != wire.CodeRateLimited && agent.Code(err) != ""):
			return err
		case err != nil:
			fmt.Fprintf(stdout, "heartbeat: %v; retrying\n", err)
		default:
			if hb.NextIn > 0 {
				next = time.Duration(hb.NextIn) * time.Second
			}
			if o.once {
				fmt.Fprintf(stdout, "heartbeat: %s\n", hb.Status)
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(next):
		}
	}
}
