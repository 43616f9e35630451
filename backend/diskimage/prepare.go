package diskimage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"keyholder/backend/internal/sha256x2"
	"keyholder/backend/luks2"
)

// Outputs of Prepare.
const (
	OutputRaw   = "raw"   // the disk as is
	OutputGCP   = "gcp"   // disk.raw in a tar.gz, as Compute Engine imports it
	OutputAzure = "azure" // a fixed VHD, size rounded up to a whole MiB
	OutputAWS   = "aws"   // the disk as is (the same bytes as raw), as EC2 import-snapshot takes it (Format=RAW)
	OutputVMDK  = "vmdk"  // a streamOptimized VMDK, as VMware and EC2 VM Import take it
)

// Outputs are the outputs Prepare writes, in the order to offer them.
func Outputs() []string {
	return []string{OutputRaw, OutputGCP, OutputAzure, OutputAWS, OutputVMDK}
}

// outputList is Outputs as words: "raw, gcp, azure, aws or vmdk".
func outputList() string {
	o := Outputs()
	return strings.Join(o[:len(o)-1], ", ") + " or " + o[len(o)-1]
}

// Options configure Prepare.
type Options struct {
	Source, Dest string
	Mode         string // ModeData (default) or ModeOS
	Output       string // OutputRaw (default), OutputGCP, OutputAzure, OutputAWS, OutputVMDK
	SectorSize   int    // 512 or 4096 (default)
	// RecoveryPassphrase, if set, adds a recovery keyslot under RecoveryKDF
	// (nil: luks2.RecoveryKDF()).
	RecoveryPassphrase []byte
	RecoveryKDF        *luks2.KDF
	// Name is the image's name in the registry (default: the source file's
	// base name); the volume is named after it.
	Name        string
	Description string
	Actor       string
	// ReleaseURL and SPKIPin override what the registrar issues.
	ReleaseURL, SPKIPin string
	// Consoles, if set, are every console the token names, in the order
	// the agent tries them; an entry without a pin gets SPKIPin (or the
	// issued pin). It overrides ReleaseURL.
	Consoles []luks2.Console
	// Progress, if set, is called at most every ProgressEvery (default
	// 250ms) and once at the end of each stage.
	Progress      func(Progress)
	ProgressEvery time.Duration
	// Workers reading, encrypting, hashing and writing chunks in
	// parallel; 0 means GOMAXPROCS+2 (see defaultWorkers).
	Workers int
	// ConfirmRaw is the officer's confirmation that a raw source without
	// a partition table or a recognised filesystem is a disk (RawWarning);
	// without it such a source is refused with ErrUnrecognisedRaw.
	ConfirmRaw bool
}

// Progress reports how far Prepare is.
type Progress struct {
	Stage string  `json:"stage"` // "encrypt", "register", "hash", "package", "sync"
	Done  int64   `json:"done"`  // bytes
	Total int64   `json:"total"` // bytes
	Rate  float64 `json:"rate"`  // bytes per second
}

// Registration asks a Registrar for a new image and volume.
type Registration struct {
	ImageName, VolumeName, Description, Actor string
}

// Issued is what a Registrar hands to the final step: the new volume's
// identity and its generation-1 release secret (wiped after the step).
type Issued struct {
	ImageID, VolumeID   string
	Generation          int
	Secret              []byte
	ReleaseURL, SPKIPin string
}

// Registrar registers the image and its volume. Register calls finish
// inside one transaction with the issued secret; if finish fails, nothing
// is registered; if finish succeeds, the registration commits. Prepare
// renames the output into place only after Register returned nil.
type Registrar interface {
	Register(ctx context.Context, r Registration, finish func(Issued) error) error
}

// Reservation is a volume identity and its generation-1 release secret,
// made before the registration so that the LUKS2 header can be written
// first and the output hashed as it streams out. The secret lives only in
// memory (Prepare wipes it) until RegisterReserved wraps and stores it; if
// the run ends before that, the output it opens is removed unregistered.
type Reservation struct {
	VolumeID            string
	Generation          int
	Secret              []byte
	ReleaseURL, SPKIPin string
}

// Reserver is implemented by registrars that can reserve a volume up front.
// RegisterReserved is Register with the reserved identity and secret: it
// calls finish inside one transaction that registers them, and nothing is
// registered if finish fails.
type Reserver interface {
	Reserve(ctx context.Context, r Registration) (*Reservation, error)
	RegisterReserved(ctx context.Context, r Registration, res *Reservation, finish func(Issued) error) error
}

// Checker is implemented by registrars that can tell up front whether a
// registration would be refused (a taken name, a locked key service), so
// that Prepare fails before encrypting rather than after.
type Checker interface {
	Check(ctx context.Context, r Registration) error
}

// Result is what Prepare made.
type Result struct {
	Output       string   `json:"output"`
	ManifestPath string   `json:"manifest_path"`
	Manifest     Manifest `json:"manifest"`
}

// ErrInvalid wraps options Prepare refuses.
var ErrInvalid = errors.New("invalid preparation request")

// ErrOutputExists means the output file exists already.
var ErrOutputExists = errors.New("the output file exists")

// chunk is the unit of work; a multiple of 4096. A worker's two chunks
// stay in cache between the read, the encryption, the hash (often on the
// other core, from the shared cache) and the write: 1 MiB chunks cost
// 10-12 % less CPU than 4 MiB ones here (BenchmarkPrepareCPU,
// interleaved), and 1 MiB is what cryptsetup writes at a time too.
const chunk = 1 << 20

// Prepare encrypts opts.Source into opts.Dest and registers it. The output
// is written to a temporary file in Dest's folder, synced, and renamed into
// place only after the registration committed; on error or cancellation
// the temporary files are removed and nothing is registered. Memory use is
// bounded by a few chunks per worker whatever the image size.
func Prepare(ctx context.Context, opts Options, reg Registrar) (*Result, error) {
	pr := &preparation{ctx: ctx, opts: opts}
	defer pr.close()
	if err := pr.open(reg); err != nil {
		return nil, err
	}
	var err error
	if rs, ok := reg.(Reserver); ok && pr.headerFirstFits() {
		err = pr.headerFirst(rs)
	} else {
		err = pr.registerLast(reg)
	}
	if err != nil {
		return nil, err
	}
	return pr.out, nil
}

// preparation is one run of Prepare: the source, its plan, the temporary
// output and the volume key, and what has been written so far. close
// releases all of it, and removes the temporaries unless the run committed.
type preparation struct {
	ctx    context.Context
	opts   Options
	req    Registration
	src    *File
	plan   *plan
	tmp    *os.File
	key    []byte
	cipher *luks2.SegmentCipher
	m      Manifest
	out    *Result
	// dir and dest are the output's folder and absolute path; temps the
	// temporary files made, the image then the manifest last.
	dir, dest string
	temps     []string
	committed bool
}

// open checks the options and the source, plans the output, asks a
// Checker whether the registration would be refused, and creates the
// temporary output and the volume key.
func (pr *preparation) open(reg Registrar) error {
	start := time.Now()
	opts := &pr.opts
	if err := opts.defaults(); err != nil {
		return err
	}
	src, err := OpenFile(opts.Source)
	if err != nil {
		return err
	}
	pr.src = src
	if err := checkRaw(src, opts.ConfirmRaw); err != nil {
		return err
	}
	if opts.Mode == ModeOS {
		if pr.plan, err = osPlan(src, opts.SectorSize, outputAlign(opts.Output)); err != nil {
			return fmt.Errorf("prepare: %w: %w", ErrInvalid, err)
		}
	} else {
		pr.plan = dataPlan(src.Size(), opts.SectorSize)
	}

	name := opts.Name
	if name == "" {
		name = strings.TrimSuffix(filepath.Base(opts.Source), filepath.Ext(opts.Source))
	}
	pr.req = Registration{ImageName: name, VolumeName: name, Description: opts.Description, Actor: opts.Actor}
	if c, ok := reg.(Checker); ok {
		if err := c.Check(pr.ctx, pr.req); err != nil {
			return fmt.Errorf("prepare: %w", err)
		}
	}
	if pr.dest, err = filepath.Abs(opts.Dest); err != nil {
		return err
	}
	if _, err := os.Stat(pr.dest); err == nil {
		return fmt.Errorf("prepare: %w: %s; choose another output name", ErrOutputExists, opts.Dest)
	}
	pr.dir = filepath.Dir(pr.dest)
	// What runs killed earlier left in this folder goes first.
	removeStaleTemps(pr.dir, start)
	tmp, err := os.CreateTemp(pr.dir, "."+filepath.Base(pr.dest)+".keyholder-tmp-*")
	if err != nil {
		return fmt.Errorf("prepare: create temporary output: %w", err)
	}
	lockTemp(tmp)
	pr.tmp = tmp
	pr.temps = append(pr.temps, tmp.Name())
	if err := tmp.Truncate(pr.plan.size); err != nil {
		return fmt.Errorf("prepare: size output: %w", err)
	}
	if err := preallocate(tmp, pr.plan.size); err != nil {
		return fmt.Errorf("prepare: reserve %d bytes for the output in %s: %w", pr.plan.size, pr.dir, err)
	}

	if pr.key, err = luks2.NewKey(); err != nil {
		return err
	}
	if pr.cipher, err = luks2.NewCipher(pr.key, opts.SectorSize); err != nil {
		return err
	}
	pr.m = Manifest{
		ManifestVersion: 1, ImageName: name, Cipher: "aes-xts-plain64", KeyBits: luks2.KeySize * 8,
		SectorSize: opts.SectorSize, Mode: opts.Mode,
	}
	pr.out = &Result{Output: pr.dest, ManifestPath: pr.dest + ".manifest.json"}
	return nil
}

// close releases what open made: the source, the temporary output (removed
// with the other temporaries unless the run committed) and the key.
func (pr *preparation) close() {
	if pr.src != nil {
		pr.src.Close()
	}
	if pr.tmp != nil {
		pr.tmp.Close()
	}
	if !pr.committed {
		for _, t := range pr.temps {
			os.Remove(t)
		}
	}
	clear(pr.key)
	if pr.cipher != nil {
		pr.cipher.Wipe()
	}
}

// headerFirstFits reports whether the output can be written header first:
// a data-mode raw (or AWS, which is raw), Azure or GCP output.
func (pr *preparation) headerFirstFits() bool {
	o := pr.opts.Output
	return pr.opts.Mode == ModeData && (o == OutputRaw || o == OutputAWS || o == OutputAzure || o == OutputGCP)
}

// keyslots are the new volume's keyslots: the release secret's, and the
// recovery passphrase's if there is one.
func (pr *preparation) keyslots(secret []byte) []luks2.Keyslot {
	slots := []luks2.Keyslot{{Secret: secret, KDF: luks2.ReleaseKDF()}}
	if len(pr.opts.RecoveryPassphrase) > 0 {
		kdf := luks2.RecoveryKDF()
		if pr.opts.RecoveryKDF != nil {
			kdf = *pr.opts.RecoveryKDF
		}
		slots = append(slots, luks2.Keyslot{Secret: pr.opts.RecoveryPassphrase, KDF: kdf})
	}
	return slots
}

// console is the issued release URL and pin after the options' overrides.
func (pr *preparation) console(url, pin string) (string, string) {
	if pr.opts.ReleaseURL != "" {
		url = pr.opts.ReleaseURL
	}
	if pr.opts.SPKIPin != "" {
		pin = pr.opts.SPKIPin
	}
	return url, pin
}

// registerLast encrypts the payload first and, inside the registration,
// writes the header, finishes the output (a second pass hashes it) and
// syncs: the path for registrars that cannot reserve, os mode and the VMDK
// output.
func (pr *preparation) registerLast(reg Registrar) error {
	ctx, opts, p, tmp := pr.ctx, pr.opts, pr.plan, pr.tmp
	prog := newProgress(opts, "encrypt", pr.src.Size())
	srcHash := sha256.New()
	dw := openDirect(tmp, os.O_WRONLY)
	err := run(ctx, opts.Workers, pr.src, dw, p, pr.cipher, srcHash, nil, prog)
	dw.Close()
	if err != nil {
		return err
	}
	prog.finish()
	// Give the chunk buffers back before the recovery keyslot's Argon2id
	// takes its memory, so the two never add up.
	debug.FreeOSMemory()
	if p.gptHead != nil {
		if _, err := tmp.WriteAt(p.gptHead, 0); err != nil {
			return err
		}
		if _, err := tmp.WriteAt(p.gptTail, p.size-int64(len(p.gptTail))); err != nil {
			return err
		}
	}
	pr.m.Source = sourceInfo(opts, pr.src, srcHash)

	err = reg.Register(ctx, pr.req, func(is Issued) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		is.ReleaseURL, is.SPKIPin = pr.console(is.ReleaseURL, is.SPKIPin)
		hdrW := &offsetWriter{w: tmp, base: p.header}
		vol, err := luks2.Format(hdrW, pr.key, luks2.Options{
			SectorSize: opts.SectorSize, Label: "keyholder", Keyslots: pr.keyslots(is.Secret),
			Token: tokenFor(opts, is.VolumeID, is.Generation, is.ReleaseURL, is.SPKIPin),
		})
		if err != nil {
			return fmt.Errorf("write LUKS2 header: %w", err)
		}
		final, sum, size, err := finishOutput(ctx, opts, tmp, p.size, pr.dir, pr.dest, &pr.temps)
		if err != nil {
			return err
		}
		pr.m.fill(is, vol, opts, p)
		pr.m.Output.Format, pr.m.Output.File = opts.Output, filepath.Base(pr.dest)
		pr.m.Output.SHA256, pr.m.Output.Size = sum, size
		if sum == "" {
			// Flush to disk while hashing.
			synced := make(chan error, 1)
			go func() { synced <- final.Sync() }()
			hp := newProgress(opts, "hash", 0)
			pr.m.Output.Size, pr.m.Output.SHA256, err = hashFile(ctx, final, hp)
			if serr := <-synced; err == nil && serr != nil {
				err = fmt.Errorf("sync output: %w", serr)
			}
			if err != nil {
				return err
			}
			hp.finish()
		} else {
			syncing(opts, size)
		}
		if err := final.Sync(); err != nil { // the footer or header written meanwhile
			return fmt.Errorf("sync output: %w", err)
		}
		return pr.writeManifest()
	})
	if err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	return pr.commit()
}

// writeManifest writes the manifest to a temporary file beside the output
// (inside the registration, which fails if this does).
func (pr *preparation) writeManifest() error {
	pr.m.CreatedAt = time.Now().UTC()
	mtmp, err := writeManifestTemp(pr.dir, pr.dest, &pr.m)
	if err != nil {
		return err
	}
	pr.temps = append(pr.temps, mtmp)
	return nil
}

// commit marks the registered run committed and renames the manifest and
// then the image into place.
func (pr *preparation) commit() error {
	pr.committed = true
	return moveIntoPlace(pr.out, &pr.m, pr.dir, pr.dest, pr.temps)
}

func sourceInfo(opts Options, src *File, h hash.Hash) SourceInfo {
	return SourceInfo{File: filepath.Base(opts.Source), Format: src.Format(), Detail: src.Detail(), VirtualSize: src.Size(), SHA256: hex.EncodeToString(h.Sum(nil))}
}

// moveIntoPlace renames, once registered, the manifest and then the image
// (the last two temps) into place.
func moveIntoPlace(out *Result, m *Manifest, dir, dest string, temps []string) error {
	mtmp, otmp := temps[len(temps)-1], temps[len(temps)-2]
	if err := os.Rename(mtmp, out.ManifestPath); err != nil {
		return fmt.Errorf("prepare: the volume is registered but the manifest could not be moved into place (%s): %w", mtmp, err)
	}
	// The image never replaces a file that appeared at the destination while
	// it was written (the check before starting saw none): that file stays,
	// and so does the prepared image, under the temporary name the error gives.
	if err := renameNoReplace(otmp, dest); err != nil {
		return fmt.Errorf("prepare: the volume is registered but the image could not be moved into place (%s): %w", otmp, err)
	}
	for _, t := range temps[:len(temps)-2] {
		os.Remove(t)
	}
	syncDir(dir)
	out.Manifest = *m
	return nil
}

// headerFirst is Prepare for a data-mode raw, AWS, Azure or GCP output with a
// registrar that reserves: the volume ID and release secret are reserved
// first, the LUKS2 header is written first, and the output's SHA-256 is
// computed as it streams out (header, then the payload in order), so there
// is no second pass over the output and the registration transaction only
// stores what is already on disk and synced.
func (pr *preparation) headerFirst(rs Reserver) error {
	ctx, opts, p := pr.ctx, pr.opts, pr.plan
	if p.header != 0 || len(p.spans) != 1 || p.spans[0].dst != luksHeaderSize || p.spans[0].dst+p.spans[0].n != p.size {
		return errors.New("prepare: internal error: the header-first path needs a data-mode plan")
	}
	res, err := rs.Reserve(ctx, pr.req)
	if err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	defer clear(res.Secret)
	res.ReleaseURL, res.SPKIPin = pr.console(res.ReleaseURL, res.SPKIPin)
	// The header area (binary headers, JSON, keyslots, the rest zeros) is
	// made in memory, hashed, and written before the payload.
	hdr := make([]byte, luksHeaderSize)
	defer clear(hdr)
	vol, err := luks2.Format(&memWriterAt{b: hdr}, pr.key, luks2.Options{
		SectorSize: opts.SectorSize, Label: "keyholder", Keyslots: pr.keyslots(res.Secret),
		Token: tokenFor(opts, res.VolumeID, res.Generation, res.ReleaseURL, res.SPKIPin),
	})
	if err != nil {
		return fmt.Errorf("prepare: write LUKS2 header: %w", err)
	}
	// Give the recovery keyslot's Argon2id memory back before the
	// pipeline's buffers, so the two never add up.
	debug.FreeOSMemory()
	if err := ctx.Err(); err != nil {
		return err
	}
	size, sum, err := pr.writeHeaderFirst(hdr)
	if err != nil {
		return err
	}

	err = rs.RegisterReserved(ctx, pr.req, res, func(is Issued) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if is.VolumeID != res.VolumeID || is.Generation != res.Generation {
			return errors.New("the registrar issued another volume than it reserved")
		}
		pr.m.fill(is, vol, opts, p)
		pr.m.Output.Format, pr.m.Output.File = opts.Output, filepath.Base(pr.dest)
		pr.m.Output.SHA256, pr.m.Output.Size = sum, size
		return pr.writeManifest()
	})
	if err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	return pr.commit()
}

// writeHeaderFirst writes the output from its start, hashing it as it
// goes: the header hdr (framed, after the package's prefix, for GCP), the
// payload, and the output's end (the package's end, or the VHD's padding
// and footer); then it syncs the file. It returns the output's size and
// SHA-256, and records the source's in the manifest.
func (pr *preparation) writeHeaderFirst(hdr []byte) (int64, string, error) {
	opts, p, tmp := pr.opts, pr.plan, pr.tmp
	outHash := sha256x2.New()
	var dw *directFile
	var err error
	if opts.Output == OutputGCP {
		// The package: its prefix, then the header framed like the
		// payload after it. Its blocks are not sector-aligned in the
		// file, so it is written through the page cache.
		p.gz = newGZFrame(p.size, time.Now())
		head := make([]byte, gzPrefix+framedLen(len(hdr)))
		copy(head, p.gz.prefix)
		p.gz.add(frame(head[gzPrefix:], hdr, func(d, s []byte, _ int) { copy(d, s) }), int64(len(hdr)))
		if err := tmp.Truncate(p.gz.size()); err != nil {
			return 0, "", fmt.Errorf("prepare: size output: %w", err)
		}
		hashPieces(outHash, head)
		dw = bufferedFile(tmp)
		_, err = dw.WriteAt(head, 0)
	} else {
		hashPieces(outHash, hdr)
		dw = openDirect(tmp, os.O_WRONLY)
		_, err = dw.WriteAt(hdr, 0)
	}
	defer dw.Close()
	if err != nil {
		return 0, "", fmt.Errorf("prepare: write LUKS2 header: %w", err)
	}
	clear(hdr)

	prog := newProgress(opts, "encrypt", pr.src.Size())
	srcHash := sha256x2.New()
	if err := run(pr.ctx, opts.Workers, pr.src, dw, p, pr.cipher, srcHash, outHash, prog); err != nil {
		return 0, "", err
	}
	prog.finish()
	size := p.size
	if p.gz != nil {
		t := p.gz.tail()
		size = p.gz.size()
		if _, err := tmp.WriteAt(t, size-int64(len(t))); err != nil {
			return 0, "", fmt.Errorf("prepare: write the package's end: %w", err)
		}
		outHash.Write(t)
	}
	if opts.Output == OutputAzure {
		// A fixed VHD: the disk padded with zeros to a whole MiB, then
		// the footer.
		vs := roundUp64(p.size, 1<<20)
		if err := tmp.Truncate(vs); err != nil {
			return 0, "", fmt.Errorf("prepare: size output: %w", err)
		}
		hashPieces(outHash, make([]byte, vs-p.size))
		footer := vhdFooter(vs, time.Now())
		if _, err := tmp.WriteAt(footer, vs); err != nil {
			return 0, "", fmt.Errorf("prepare: write VHD footer: %w", err)
		}
		outHash.Write(footer)
		size = vs + int64(len(footer))
	}
	syncing(opts, size)
	if err := tmp.Sync(); err != nil {
		return 0, "", fmt.Errorf("prepare: sync output: %w", err)
	}
	pr.m.Source = sourceInfo(opts, pr.src, srcHash)
	return size, hex.EncodeToString(outHash.Sum(nil)), nil
}

// memWriterAt is an io.WriterAt over a fixed buffer.
type memWriterAt struct{ b []byte }

func (w *memWriterAt) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(w.b)) {
		return 0, fmt.Errorf("write of %d bytes at %d outside the %d-byte header area", len(p), off, len(w.b))
	}
	return copy(w.b[off:], p), nil
}

func (o *Options) defaults() error {
	if o.Mode == "" {
		o.Mode = ModeData
	}
	if o.Output == "" {
		o.Output = OutputRaw
	}
	if o.SectorSize == 0 {
		o.SectorSize = 4096
	}
	if o.Actor == "" {
		o.Actor = "cli"
	}
	switch {
	case o.Source == "" || o.Dest == "":
		return fmt.Errorf("prepare: %w: source and destination are required", ErrInvalid)
	case o.Mode != ModeData && o.Mode != ModeOS:
		return fmt.Errorf("prepare: %w: mode %q (want data or os)", ErrInvalid, o.Mode)
	case !slices.Contains(Outputs(), o.Output):
		return fmt.Errorf("prepare: %w: output %q (want %s)", ErrInvalid, o.Output, outputList())
	case o.SectorSize != 512 && o.SectorSize != 4096:
		return fmt.Errorf("prepare: %w: sector size %d (want 512 or 4096)", ErrInvalid, o.SectorSize)
	}
	if o.Workers <= 0 {
		o.Workers = defaultWorkers()
	}
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = 250 * time.Millisecond
	}
	return nil
}

// defaultWorkers is one worker per P and two more: a worker blocked in a
// write (an O_DIRECT write of a chunk takes milliseconds on a disk) holds
// its P until the runtime notices, and meanwhile another worker can take
// it. Each worker costs two chunks of memory.
func defaultWorkers() int { return runtime.GOMAXPROCS(0) + 2 }

// run copies and encrypts the plan's spans, chunk by chunk, in source
// order. Each worker takes the next chunk and does everything for it on
// its core: it reads the chunk (pread into the worker's own buffer: no
// mapping, so no page faults or TLB shootdowns, and a read of a source
// that shrank is an error), encrypts it into its output buffer, has it
// hashed, and writes it. The hashes are chains that must see the chunks in
// order, so hashing is the one serial step; it is kept running without
// hand-offs (see hashQueue): the worker that finds the next chunk to hash
// waiting hashes it, and then every later chunk already waiting, while the
// other workers read, encrypt and write beside it. If outHash is set, the
// spans must be the output's bytes in order (data mode after the header);
// when srcHash and outHash are both sha256x2 digests, chunk i of both
// streams goes through the two-stream kernel together. Memory: two chunks
// per worker, whatever the image size.
func run(ctx context.Context, workers int, src io.ReaderAt, dst io.WriterAt, p *plan, c *luks2.SegmentCipher, srcHash, outHash hash.Hash, prog *progress) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srcPair, _ := srcHash.(*sha256x2.Digest)
	outPair, _ := outHash.(*sha256x2.Digest)
	paired := srcPair != nil && outPair != nil
	gz := p.gz
	type job struct {
		s   span
		off int64
		seq int64 // the chunk's place in the hash order
	}
	jobs := make(chan job)
	var readMu sync.Mutex
	lockReads := !concurrentReads(src)
	var firstErr error
	var once sync.Once
	fail := func(err error) {
		once.Do(func() { firstErr = err; cancel() })
	}
	// hashChunk feeds one chunk to the hashes (and the gzip frame), in
	// order: only the hash queue's current hasher calls it.
	hashChunk := func(h *hashed) {
		if !h.ok || ctx.Err() != nil {
			return
		}
		s := h.s
		switch {
		case s.dst < 0 || outHash == nil:
			hashPieces(srcHash, h.in)
		case paired:
			// Equal lengths go through the two-stream kernel.
			sha256x2.WriteBoth(srcPair, outPair, h.in, h.out[:len(h.in)])
			hashPieces(outHash, h.out[len(h.in):])
		default:
			hashPieces(srcHash, h.in)
			hashPieces(outHash, h.out)
		}
		if gz != nil && s.dst >= 0 {
			gz.add(h.crc, int64(h.n))
		}
	}
	q := newHashQueue(workers, hashChunk)
	var done atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outSize := chunk
			if gz != nil {
				outSize = framedLen(chunk)
			}
			in, out := make([]byte, chunk), make([]byte, outSize)
			defer clear(in) // plaintext of the source
			defer clear(out)
			h := &hashed{done: make(chan struct{}, 1)}
			for j := range jobs {
				s := j.s
				n := int(min(chunk, s.n-j.off))
				r := int(max(0, min(int64(n), s.srcN-j.off)))
				ok := ctx.Err() == nil
				if ok && r > 0 {
					if lockReads {
						readMu.Lock()
					}
					_, err := src.ReadAt(in[:r], s.src+j.off)
					if lockReads {
						readMu.Unlock()
					}
					if errors.Is(err, io.EOF) {
						err = errSourceChanged // the plan reads within the size at open
					}
					if err != nil {
						fail(fmt.Errorf("read source at %d: %w", s.src+j.off, err))
						ok = false
					}
				}
				clear(in[r:n])
				done.Add(int64(r))
				data := in[:n]
				var crc uint32
				switch {
				case !ok || s.dst < 0:
				case gz != nil:
					fill := func(dst, src []byte, _ int) { copy(dst, src) }
					if s.enc {
						fill = func(dst, src []byte, o int) { c.Encrypt(dst, src, s.pay+j.off+int64(o)) }
					}
					data = out[:framedLen(n)]
					crc = frame(data, in[:n], fill)
				case s.enc:
					c.Encrypt(out[:n], data, s.pay+j.off)
					data = out[:n]
				}
				h.seq, h.s, h.n, h.in, h.out, h.crc, h.ok = j.seq, s, n, in[:r], data, crc, ok
				// The write runs beside the hashing: both only read
				// the buffers, which are reused once both are done.
				hashed := q.submit(h)
				if ok = ok && ctx.Err() == nil; ok && s.dst >= 0 {
					at := s.dst + j.off
					if gz != nil {
						at = gz.at(at)
					}
					if _, err := dst.WriteAt(data, at); err != nil {
						fail(fmt.Errorf("write output: %w", err))
					}
				}
				if !hashed {
					<-h.done
				}
			}
		}()
	}
	stopTick := prog.start(&done)
	start := time.Now()
	var seq int64
feed:
	for _, s := range p.spans {
		for off := int64(0); off < s.n; off += chunk {
			select {
			case jobs <- job{s: s, off: off, seq: seq}:
				seq++
			case <-ctx.Done():
				break feed
			}
		}
	}
	close(jobs)
	wg.Wait()
	stopTick()
	if runObserver != nil {
		runObserver(q.busy, time.Since(start))
	}
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return firstErr
}

// hashed is one chunk on its way through the hash queue.
type hashed struct {
	seq  int64
	s    span
	n    int    // the chunk's length in the disk
	in   []byte // its bytes read from the source
	out  []byte // its bytes in the output
	crc  uint32 // of out's deflate blocks (gcp)
	ok   bool   // false: not to be hashed (the run failed)
	done chan struct{}
}

// hashQueue runs the serial hash step without hand-offs between
// goroutines. A worker whose chunk is the next to hash, when no one is
// hashing, becomes the hasher: it hashes its chunk and then every chunk
// that is already waiting in order, on its core, and wakes each one's
// worker to write it. Other workers leave their chunk waiting and block.
// (A turn passed from worker to worker per chunk left the chain idle while
// the next worker waited for a core: on two cores it ran a little over
// half the time.)
type hashQueue struct {
	mu      sync.Mutex
	next    int64 // the next chunk to hash
	hashing bool
	waiting map[int64]*hashed
	fn      func(*hashed)
	busy    time.Duration // time spent hashing, for the benchmarks
}

func newHashQueue(workers int, fn func(*hashed)) *hashQueue {
	return &hashQueue{waiting: make(map[int64]*hashed, workers), fn: fn}
}

// submit hands h to the queue. If h is the next chunk and no one is
// hashing, this goroutine hashes it and every later chunk already waiting,
// and submit reports true: h is hashed. Otherwise h waits for the current
// hasher, submit reports false at once, and h.done is signalled once h is
// hashed; until then h's buffers are only read.
func (q *hashQueue) submit(h *hashed) bool {
	q.mu.Lock()
	if q.hashing || h.seq != q.next {
		q.waiting[h.seq] = h
		q.mu.Unlock()
		return false
	}
	q.hashing = true
	start := time.Now()
	for cur := h; cur != nil; {
		q.next++
		q.mu.Unlock()
		q.fn(cur)
		if cur != h {
			cur.done <- struct{}{}
		}
		q.mu.Lock()
		cur = q.waiting[q.next]
		delete(q.waiting, q.next)
	}
	q.hashing = false
	q.busy += time.Since(start)
	q.mu.Unlock()
	return true
}

// runObserver, when a benchmark sets it, is told after each run how long
// the hash chain was busy and how long the run took: how close the
// pipeline is to the chain's own rate, the one step that cannot be split.
var runObserver func(hashBusy, wall time.Duration)

// errSourceChanged is what reading the source short becomes: another
// program truncated it while it was read.
var errSourceChanged = errors.New("the source file changed (shrank) while it was being read")

// concurrentReads reports whether workers may read src at the same time:
// a raw image is a plain file. The container readers keep caches (grain
// and table caches whose buffers they hand out), so workers read them one
// at a time.
func concurrentReads(src io.ReaderAt) bool {
	f, ok := src.(*File)
	if !ok {
		return false
	}
	_, raw := f.Image.(*rawImage)
	return raw
}

type offsetWriter struct {
	w    io.WriterAt
	base int64
}

func (o *offsetWriter) WriteAt(p []byte, off int64) (int, error) { return o.w.WriteAt(p, o.base+off) }

// hashFile hashes f from its start; it also returns f's size. One
// goroutine reads ahead (directly from the disk where the output was written
// directly) while this one hashes.
func hashFile(ctx context.Context, f *os.File, prog *progress) (int64, string, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, "", err
	}
	size := st.Size()
	prog.total = size
	h := sha256.New()
	var done atomic.Int64
	stop := prog.start(&done)
	defer stop()
	r := openDirect(f, os.O_RDONLY)
	defer r.Close()
	type piece struct {
		b   []byte
		n   int
		err error
	}
	const depth = 3
	free := make(chan []byte, depth)
	for i := 0; i < depth; i++ {
		free <- make([]byte, chunk)
	}
	full := make(chan piece, depth)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		defer close(full)
		for off := int64(0); off < size; {
			var b []byte
			select {
			case b = <-free:
			case <-ctx.Done():
				return
			}
			n, err := r.ReadAt(b, off)
			if errors.Is(err, io.EOF) && off+int64(n) == size {
				err = nil
			}
			if err == nil && n == 0 {
				err = io.ErrUnexpectedEOF
			}
			full <- piece{b, n, err}
			if err != nil {
				return
			}
			off += int64(n)
		}
	}()
	var off int64
	for p := range full {
		if p.err != nil {
			return 0, "", fmt.Errorf("hash output: %w", p.err)
		}
		hashPieces(h, p.b[:p.n])
		off += int64(p.n)
		done.Store(off)
		free <- p.b
	}
	if err := ctx.Err(); err != nil {
		return 0, "", err
	}
	if off != size {
		return 0, "", fmt.Errorf("hash output: read %d of %d bytes", off, size)
	}
	return size, hex.EncodeToString(h.Sum(nil)), nil
}

// hashPieces feeds b to h in 256 KiB pieces: one SHA-NI call over 4 MiB
// runs for milliseconds without a preemption point, and the garbage
// collector's stop-the-world spins (and signals) until it returns.
func hashPieces(h hash.Hash, b []byte) {
	const piece = 256 << 10
	for len(b) > piece {
		h.Write(b[:piece])
		b = b[piece:]
	}
	h.Write(b)
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// progress throttles Options.Progress.
type progress struct {
	fn    func(Progress)
	every time.Duration
	stage string
	total int64
	t0    time.Time
	done  *atomic.Int64
}

func newProgress(o Options, stage string, total int64) *progress {
	return &progress{fn: o.Progress, every: o.ProgressEvery, stage: stage, total: total}
}

func (p *progress) report() {
	if p.fn == nil || p.done == nil {
		return
	}
	d := p.done.Load()
	rate := 0.0
	if el := time.Since(p.t0).Seconds(); el > 0 {
		rate = float64(d) / el
	}
	p.fn(Progress{Stage: p.stage, Done: d, Total: p.total, Rate: rate})
}

func (p *progress) start(done *atomic.Int64) func() {
	p.done, p.t0 = done, time.Now()
	if p.fn == nil {
		return func() {}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(p.every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p.report()
			case <-stop:
				return
			}
		}
	}()
	return func() { close(stop); wg.Wait() }
}

func (p *progress) finish() { p.report() }

// syncing reports the "sync" stage: every byte of the output is written
// and the run waits for the disk to make it durable, which on a disk that
// caches writes takes about as long per GiB as a second of writing (half
// a second per GiB here): without it the progress would stand at 100 %
// meanwhile.
func syncing(o Options, size int64) {
	if o.Progress != nil {
		o.Progress(Progress{Stage: "sync", Done: size, Total: size})
	}
}

// tokenFor is the keyholder token of a new volume: the issued console
// (URL and pin, after the options' overrides) or the options' list of
// consoles, each entry without a pin taking the issued one.
func tokenFor(opts Options, volumeID string, generation int, url, pin string) *luks2.Token {
	consoles := []luks2.Console{{URL: url, SPKIPin: pin}}
	if len(opts.Consoles) > 0 {
		consoles = make([]luks2.Console, len(opts.Consoles))
		for i, c := range opts.Consoles {
			if c.SPKIPin == "" {
				c.SPKIPin = pin
			}
			consoles[i] = c
		}
	}
	t := luks2.Token{Keyslot: 0, VolumeID: volumeID, Generation: generation}.WithConsoles(consoles)
	return &t
}
