package cli

import (
	"flag"
	"fmt"
	"io"

	"keyholder/internal/bench/bootstorm"
)

var benchCommand = &command{
	name:  "bench",
	short: "measure the release engine under a boot storm (simulated guests)",
	usage: func(w io.Writer) {
		fmt.Fprint(w, `release runs a boot storm against a fresh console in a temporary directory: every guest of
a known fleet reboots at once. Each guest's evidence (a report signed by the
simulated AMD root, bound to its own challenge and HPKE key) is made
beforehand and not timed; every request is then fully verified (signature,
chain, reference values, transcript), classified, its secret unwrapped and
HPKE-sealed, and the decision recorded and audited durably (synchronous
SQLite commit) before it counts. In the same run it measures the raw ECDSA
P-384 verify rate of this machine on all cores, the ceiling a release cannot
beat.

Two latencies are reported. The end-to-end latency is what a guest sees,
from its call until its answer; with --concurrency requests always in
flight it cannot be below concurrency / throughput (Little's law), however
fast the engine. The service time is measured inside the engine, from the
moment a request gets a processor slot to verify its evidence until its
decision is durable and its secret sealed. --in-service N makes the engine
admit at most N requests at once (the others wait in arrival order; by
default there is no such bound).

--rate N (or --rate-of-ceiling F, a share of the ECDSA rate just measured)
makes the storm an open loop: guest i boots at i/N seconds whether or not
earlier guests have their answers (still at most --concurrency in flight),
and its end-to-end latency counts from that moment. This is the latency at
a given load, which a closed loop cannot show.

The fleet is known: before the storm the console verifies two reports of
each chip (untimed), as a running console has, so the storm measures the
steady state. --cold skips that: the first report of each chip then also
verifies its VCEK's chain to the AMD root and the second builds its
signature table, inside the storm.

--database puts the console in that database (a SQLite file or a
PostgreSQL URL, empty: the bench initialises a console there) instead of a
temporary SQLite file. --wire sends each request as an agent does: HTTP
over TLS 1.3 to a real release API listener on loopback, the client
pinning its key, so the latencies include TLS, HTTP and JSON (the
per-address rate limits are lifted, as all guests come from 127.0.0.1).
--replicas N (with --wire) starts N consoles on the one database, each
with its own store handle, key service, engine and listener, as N serve
processes have them, and spreads the guests over them. --warm-up N boots
N guests more before the storm, not timed (Concurrency at a time, spread
over the consoles), so that the storm meets consoles that have served
releases before: database connections open, statements prepared.
`)
	},
	subcommands: func(fs *flag.FlagSet, env *cliEnv) []*subcommand {
		guests := fs.Int("guests", 10000, "guests in the storm")
		conc := fs.Int("concurrency", 256, "requests in flight")
		chips := fs.Int("chips", 64, "simulated chips the guests run on")
		asJSON := fs.Bool("json", false, "print JSON")
		cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the storm to this file")
		inService := fs.Int("in-service", 0, "requests the engine admits at once (0: no bound)")
		rate := fs.Float64("rate", 0, "open loop: guests boot at this many per second (0: closed loop, each slot sends again when answered)")
		cold := fs.Bool("cold", false, "start the storm with a console that has not verified any of the chips yet (as right after a restart)")
		rateOfCeiling := fs.Float64("rate-of-ceiling", 0, "open loop at this share of the raw ECDSA P-384 rate measured in the same run (e.g. 0.7)")
		// --database may be every command's flag already (the console's
		// PostgreSQL URL); the bench reads it either way, and only when
		// given on its command line, never from the environment.
		if fs.Lookup("database") == nil {
			fs.String("database", "", "the bench console's database, holding no console yet: a SQLite file or a postgres:// URL (default: a SQLite file in a temporary directory)")
		}
		overWire := fs.Bool("wire", false, "send every request through a real release API listener (HTTP over pinned TLS 1.3, as agents do) instead of calling the engine")
		warmUp := fs.Int("warm-up", 0, "guests more that boot before the storm, not timed, so that it meets consoles that have served releases before")
		replicas := fs.Int("replicas", 1, "consoles serving the storm on the one database, guests spread over them (needs --wire)")
		release := func(sfs *flag.FlagSet) func([]string) error {
			return func([]string) error {
				if *guests < 1 || *conc < 1 || *chips < 1 || *inService < 0 || *rate < 0 || *rateOfCeiling < 0 || *rateOfCeiling > 10 || *replicas < 1 || *replicas > 16 || *warmUp < 0 {
					return &exitError{code: 2, msg: "--guests, --concurrency and --chips must be positive, --in-service, --rate and --rate-of-ceiling and --warm-up not negative, --replicas 1 to 16"}
				}
				if *replicas > 1 && !*overWire {
					return &exitError{code: 2, msg: "--replicas needs --wire: replicas are reached over their release listeners"}
				}
				database := ""
				sfs.Visit(func(f *flag.Flag) {
					if f.Name == "database" {
						database = f.Value.String()
					}
				})
				ctx, cancel := signalContext()
				defer cancel()
				res, err := bootstorm.Run(ctx, bootstorm.Options{Guests: *guests, Concurrency: *conc, Chips: *chips, InService: *inService, Rate: *rate, RateOfCeiling: *rateOfCeiling, Cold: *cold, Progress: env.stderr, CPUProfile: *cpuProfile,
					Database: database, Wire: *overWire, Replicas: *replicas, WarmUp: *warmUp})
				if err != nil {
					return err
				}
				if *asJSON {
					return printJSON(env.stdout, res)
				}
				admitted := "no admission bound"
				if res.InService > 0 {
					admitted = fmt.Sprintf("at most %d admitted", res.InService)
				}
				endToEnd := fmt.Sprintf("call to answer; at least %d/throughput = %.0f ms", res.Concurrency, 1000*float64(res.Concurrency)/max(res.PerSecond, 1))
				if res.OfferedRate > 0 {
					admitted += fmt.Sprintf(", open loop at %.0f boots/s", res.OfferedRate)
					endToEnd = "from each guest's scheduled boot to its answer"
				}
				fmt.Fprintf(env.stdout, `Boot storm: %d guests, %d concurrent, %d CPU cores, %s
  console:         %s, %s, %d replica(s)
  releases:        %d ok, %d errors in %.2f s
  throughput:      %.0f releases/s
  end-to-end:      p50 %.2f ms, p99 %.2f ms, max %.2f ms (%s)
  service time:    p50 %.2f ms, p99 %.2f ms, max %.2f ms (CPU slot to durable decision and sealed secret)
  CPU:             %.0f µs per release, cores %.0f %% busy
  ECDSA P-384:     %.0f verifies/s on %d cores (raw, same run)
  ratio:           %.0f %% of the raw verify rate
`, res.Guests, res.Concurrency, res.Cores, admitted, res.Mode, res.Database, res.Replicas, res.OK, res.Errors, res.Seconds, res.PerSecond,
					res.P50ms, res.P99ms, res.MaxMs, endToEnd,
					res.ServiceP50ms, res.ServiceP99ms, res.ServiceMaxMs,
					res.CPUPerReleaseUs, 100*res.CPUBusy,
					res.ECDSAPerSecond, res.Cores, 100*res.Ratio)
				if res.Errors > 0 {
					return &exitError{code: 1, msg: fmt.Sprintf("%d releases failed (first: %s)", res.Errors, res.FirstError)}
				}
				return nil
			}
		}
		return []*subcommand{{name: "release", synopsis: `keyholder bench release [--guests 10000] [--concurrency 256] [--chips 64] [--in-service N]
                        [--rate N | --rate-of-ceiling F] [--cold] [--json]
                        [--database FILE|postgres://...] [--wire [--replicas N]] [--warm-up N]`, flags: release}}
	},
}
