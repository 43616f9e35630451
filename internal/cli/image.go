package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"golang.org/x/term"

	"keyholder/backend/diskimage"
	"keyholder/backend/images"
	"keyholder/backend/luks2"
	"keyholder/backend/release/wire"
)

// imageRecoveryKDF is the recovery keyslot's KDF (nil: luks2.RecoveryKDF);
// the CLI tests lower its cost.
var imageRecoveryKDF *luks2.KDF

var imageCommand = &command{
	name:  "image",
	short: "inspect a VM disk image, or prepare (encrypt and register) one",
	usage: func(w io.Writer) {
		fmt.Fprint(w, `inspect reads raw, qcow2, VMDK (also descriptors with their extent files),
VHD, VHDX and VDI images (recognised by content) and lists the format, the
virtual size, the partitions and the filesystems found. Other containers
(QED, Parallels, QCOW v1, DMG, cloop, ...) are refused with the qemu-img
command that converts them to raw.

prepare encrypts SRC into DST as a LUKS2 volume that cryptsetup opens:
  --mode data  the whole disk in one LUKS2 volume (default)
  --mode os    the EFI system partition and a separate /boot stay in clear,
               the root partition becomes a LUKS2 partition (the disk grows
               by the 16 MiB header; the manifest says what the guest needs)
The release keyslot opens with a new release secret that the key service
keeps (generation 1); an optional recovery keyslot opens with a passphrase.
A raw SRC with no partition table and no filesystem Keyholder recognises is
most often a container of an unknown format; it is prepared only with
--force, once you know it is a raw disk.
DST is written to a temporary file beside it and renamed only once image and
volume are registered, so an interrupted run (Ctrl-C cancels) leaves nothing
that looks finished. DST.manifest.json describes the result.
--output chooses what DST is:
  raw    the disk as is (default)
  gcp    disk.raw in a tar.gz, a whole number of GiB (Compute Engine import)
  azure  a fixed VHD, a whole number of MiB
  aws    raw, the same bytes as raw (EC2 import-snapshot, Format=RAW)
  vmdk   a streamOptimized VMDK (VMware; EC2 VM Import, Format=VMDK)

`+imageReferencesUsage)
	},
	subcommands: func(fs *flag.FlagSet, env *cliEnv) []*subcommand {
		of := addOfficerFlags(fs)
		asJSON := fs.Bool("json", false, "JSON output (prepare: progress as JSON lines)")
		in := fs.String("in", "", "prepare: source image")
		out := fs.String("out", "", "prepare: output image to create")
		mode := fs.String("mode", diskimage.ModeData, "prepare: data or os")
		output := fs.String("output", diskimage.OutputRaw, "prepare: raw, gcp (disk.raw in a tar.gz), azure (fixed VHD), aws (raw, for EC2 import-snapshot) or vmdk (streamOptimized)")
		sectorSize := fs.Int("sector-size", 4096, "prepare: encryption sector size, 512 or 4096")
		recoveryFile := fs.String("recovery-passphrase-file", "", "prepare: add a recovery keyslot opened by the passphrase in this file")
		name := fs.String("name", "", "prepare: image name in the console (default: the source file name)")
		releaseURL := fs.String("release-url", "", "prepare: release API URL for the token (default: the console setting)")
		spkiPin := fs.String("spki-pin", "", "prepare: base64 SHA-256 of the release API's public key (default: the console setting)")
		var consoles consoleList
		fs.Var(&consoles, "console", "prepare: a console the agent may ask, URL or URL#PIN; repeat it (or give a comma list) for replicas, tried in order (default: --release-url)")
		force := fs.Bool("force", false, "prepare: a raw SRC without a partition table or a recognised filesystem is a disk; prepare it")
		rf := referenceFlags{
			measurements: fs.String("measurement", "", "references set: launch measurements, hex, comma-separated"),
			product:      fs.String("product", "", "references set: Milan, Genoa or Turin (default: any)"),
			comment:      fs.String("comment", "", "references set/import: why (kept with the version)"),
			file:         fs.String("file", "", "references import: reference values `FILE` (JSON)"),
		}
		inspect := func(args []string) error {
			info, err := diskimage.Inspect(args[0])
			if err != nil {
				return err
			}
			if *asJSON {
				return json.NewEncoder(env.stdout).Encode(info)
			}
			printInfo(env.stdout, info)
			return nil
		}
		prepare := func([]string) error {
			if *in == "" || *out == "" {
				return &exitError{code: 2, msg: "--in SRC and --out DST are required"}
			}
			if outs := diskimage.Outputs(); !slices.Contains(outs, *output) {
				return &exitError{code: 2, msg: fmt.Sprintf("unknown output %q: want %s or %s", *output, strings.Join(outs[:len(outs)-1], ", "), outs[len(outs)-1])}
			}
			ctx, cancel := signalContext()
			defer cancel()
			opts := diskimage.Options{Source: *in, Dest: *out, Mode: *mode, Output: *output, SectorSize: *sectorSize,
				Name: *name, ReleaseURL: *releaseURL, SPKIPin: *spkiPin, Consoles: consoles, ConfirmRaw: *force}
			if len(consoles) > 0 && *releaseURL != "" {
				return &exitError{code: 2, msg: "give the consoles either with --console or with --release-url, not both"}
			}
			if *recoveryFile != "" {
				rp, err := readSecretFile(env, *recoveryFile)
				if err != nil {
					return err
				}
				defer clear(rp)
				if len(rp) < 8 {
					return &exitError{code: 2, msg: "the recovery passphrase must be at least 8 characters"}
				}
				opts.RecoveryPassphrase = rp
				opts.RecoveryKDF = imageRecoveryKDF
			}
			db, svc, o, done, err := of.openUnlocked(ctx, env)
			if err != nil {
				return err
			}
			defer done()
			// Hand the unlock's Argon2id memory back before the pipeline's buffers.
			debug.FreeOSMemory()
			opts.Actor = "officer:" + o.Name
			opts.Progress = progressPrinter(env, *asJSON)
			res, err := diskimage.Prepare(ctx, opts, &images.Registrar{DB: db, Custody: svc})
			if isTerminal(env.stderr) && !*asJSON {
				fmt.Fprintln(env.stderr)
			}
			if errors.Is(err, context.Canceled) {
				return &exitError{code: 130, msg: "cancelled; no image was written and nothing was registered"}
			}
			if errors.Is(err, diskimage.ErrUnrecognisedRaw) {
				return &exitError{code: 1, msg: err.Error() + " (run again with --force if it is)"}
			}
			if err != nil {
				return err
			}
			if *asJSON {
				return json.NewEncoder(env.stdout).Encode(map[string]any{"result": res})
			}
			m := res.Manifest
			fmt.Fprintf(env.stdout, "Prepared %s (%s, %d bytes, sha256 %s)\n", res.Output, m.Output.Format, m.Output.Size, m.Output.SHA256)
			fmt.Fprintf(env.stdout, "  image %s %q, volume %s, LUKS UUID %s, release generation 1\n", m.ImageID, m.ImageName, m.VolumeID, m.LUKSUUID)
			fmt.Fprintf(env.stdout, "  manifest %s\n", res.ManifestPath)
			if m.OS != nil {
				fmt.Fprintf(env.stdout, "  root partition %d is now LUKS2; the guest needs: %s\n", m.OS.RootPartition, m.OS.KernelCmdline)
			}
			for i, c := range m.Consoles {
				fmt.Fprintf(env.stdout, "  console %d: %s (pin %s)\n", i+1, c.URL, c.SPKIPin)
			}
			if m.ReleaseURL == "" {
				fmt.Fprintln(env.stdout, "  note: no release URL is configured; the token names none (set it before preparing production images)")
			}
			return nil
		}
		return []*subcommand{
			{name: "inspect", synopsis: "keyholder image inspect FILE [--json]", args: 1, flags: sharedFlagsOnly(inspect)},
			{name: "references", synopsis: imageReferencesSynopsis, args: -1,
				flags: sharedFlagsOnly(func(args []string) error { return runImageReferences(env, of, rf, *asJSON, args) })},
			{name: "prepare", synopsis: `keyholder image prepare --in SRC --out DST [--mode data|os] [--output raw|gcp|azure|aws|vmdk]
      [--sector-size 512|4096] [--recovery-passphrase-file F] [--name NAME]
      [--officer NAME] [--passphrase-file F] [--force] [--json] [--data DIR]`, flags: sharedFlagsOnly(prepare)},
		}
	},
}

func printInfo(w io.Writer, info *diskimage.Info) {
	fmt.Fprintf(w, "%s: %s (%s), virtual size %s, file %s\n", info.Path, info.Format, info.Detail, humanBytes(info.VirtualSize), humanBytes(info.FileSize))
	fmt.Fprintf(w, "partition table: %s\n", info.PartitionTable)
	for _, p := range info.Partitions {
		mark := ""
		if p.Index == info.Root {
			mark = "  <- root (os mode encrypts it)"
		}
		fmt.Fprintf(w, "  %2d  %-10s %10s  %-22s %-12s %s%s\n", p.Index, fmt.Sprintf("@%d", p.FirstLBA), humanBytes(p.Size()), firstNonEmpty(p.TypeName, p.Type), firstNonEmpty(p.Filesystem, "-"), p.Name, mark)
	}
	if info.Filesystem != "" {
		fmt.Fprintf(w, "filesystem on the whole disk: %s\n", info.Filesystem)
	}
	if info.RawWarning != "" {
		fmt.Fprintf(w, "warning: %s (prepare needs --force)\n", info.RawWarning)
	}
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f, i := float64(n), 0
	for f >= unit && i < 5 {
		f /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", f, "BKMGTP"[i])
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progressPrinter shows progress on a terminal (one updating line) or as
// JSON lines on standard output with --json.
func progressPrinter(env *cliEnv, asJSON bool) func(diskimage.Progress) {
	tty := isTerminal(env.stderr)
	enc := json.NewEncoder(env.stdout)
	return func(p diskimage.Progress) {
		eta := 0.0
		if p.Rate > 0 && p.Total > p.Done {
			eta = float64(p.Total-p.Done) / p.Rate
		}
		switch {
		case asJSON:
			enc.Encode(map[string]any{"progress": map[string]any{"stage": p.Stage, "done": p.Done, "total": p.Total, "rate": p.Rate, "eta_seconds": eta}})
		case tty:
			var line string
			if p.Stage == "sync" {
				line = fmt.Sprintf("%-8s %s written, waiting for the disk to make it durable", p.Stage, humanBytes(p.Done))
			} else {
				line = fmt.Sprintf("%-8s %s / %s  %s/s  ETA %s", p.Stage, humanBytes(p.Done), humanBytes(p.Total), humanBytes(int64(p.Rate)), (time.Duration(eta) * time.Second).Round(time.Second))
			}
			fmt.Fprintf(env.stderr, "\r%s%s", line, strings.Repeat(" ", max(0, 70-len(line))))
		}
	}
}

// consoleList is the repeatable --console flag: URL or URL#PIN, each
// occurrence possibly a comma list.
type consoleList []luks2.Console

func (l *consoleList) String() string {
	if l == nil {
		return ""
	}
	var parts []string
	for _, c := range *l {
		parts = append(parts, c.URL)
	}
	return strings.Join(parts, ",")
}

func (l *consoleList) Set(v string) error {
	for _, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		c, err := parseConsole(item)
		if err != nil {
			return err
		}
		*l = append(*l, c)
	}
	return nil
}

// parseConsole reads URL or URL#PIN (the pin as the URL's fragment: hex or
// base64 SHA-256 of the certificate's public key).
func parseConsole(s string) (luks2.Console, error) {
	raw, pin, _ := strings.Cut(s, "#")
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" {
		return luks2.Console{}, fmt.Errorf("console %q must be https://HOST:PORT[/PATH][#PIN]", s)
	}
	if pin != "" {
		if _, err := wire.ParsePin(pin); err != nil {
			return luks2.Console{}, fmt.Errorf("console %q: %w", raw, err)
		}
	}
	return luks2.Console{URL: raw, SPKIPin: pin}, nil
}
