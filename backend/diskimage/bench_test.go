package diskimage

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"keyholder/backend/internal/sha256x2"
	"keyholder/backend/luks2"
)

// memRegistrar issues a random secret without a store (benchmarks only).
type memRegistrar struct{}

func (memRegistrar) Register(ctx context.Context, r Registration, finish func(Issued) error) error {
	s := make([]byte, 32)
	rand.Read(s)
	return finish(Issued{ImageID: "img_bench", VolumeID: "vol_bench", Generation: 1, Secret: s})
}

// Reserve and RegisterReserved make memRegistrar a Reserver.
func (memRegistrar) Reserve(ctx context.Context, r Registration) (*Reservation, error) {
	s := make([]byte, 32)
	rand.Read(s)
	return &Reservation{VolumeID: "vol_bench", Generation: 1, Secret: s}, nil
}

func (memRegistrar) RegisterReserved(ctx context.Context, r Registration, res *Reservation, finish func(Issued) error) error {
	return finish(Issued{ImageID: "img_bench", VolumeID: res.VolumeID, Generation: res.Generation, Secret: res.Secret})
}

// BenchmarkPrepare measures the data-mode pipeline on a 512 MiB raw image:
// header first (header, then read, hash, encrypt, write and hash the output
// in one pass, sync) and register last (read, hash, encrypt, write, then
// header, a second pass hashing the output, sync).
func BenchmarkPrepare(b *testing.B) {
	b.Run("header-first", func(b *testing.B) { benchmarkPrepare(b, memRegistrar{}) })
	b.Run("register-last", func(b *testing.B) { benchmarkPrepare(b, registerOnly{memRegistrar{}}) })
}

func benchmarkPrepare(b *testing.B, reg Registrar) {
	dir := b.TempDir()
	src := filepath.Join(dir, "src.raw")
	data := make([]byte, 512<<20)
	for i := 0; i < len(data); i += 1 << 20 {
		rand.Read(data[i : i+1<<20]) // in pieces: one long getrandom call blocks the GC
	}
	os.WriteFile(src, data, 0o644)
	b.SetBytes(int64(len(data)))
	for i := 0; b.Loop(); i++ {
		dst := filepath.Join(dir, "out.img")
		if _, err := Prepare(context.Background(), Options{Source: src, Dest: dst, ConfirmRaw: true}, reg); err != nil {
			b.Fatal(err)
		}
		os.Remove(dst)
		os.Remove(dst + ".manifest.json")
	}
}

// BenchmarkPrepareCPU measures what a data-mode prepare costs in CPU: the
// process's user and system time per GiB of source (from getrusage, all
// threads), the number benchmark comparisons on a loaded machine should
// use; run-MB/s and hash-busy-% are the pipeline alone and the share of it
// the serial hash step was busy. The source is $KEYHOLDER_BENCH_SIZE MiB (default 512) in the test's
// temporary folder: TMPDIR=/dev/shm measures the pipeline without a disk.
func BenchmarkPrepareCPU(b *testing.B) {
	for _, out := range []string{OutputRaw, OutputAzure, OutputGCP} {
		b.Run(out, func(b *testing.B) { benchmarkPrepareCPU(b, out) })
	}
}

func benchmarkPrepareCPU(b *testing.B, output string) {
	dir := b.TempDir()
	src := filepath.Join(dir, "src.raw")
	mib := 512
	if s := os.Getenv("KEYHOLDER_BENCH_SIZE"); s != "" {
		fmt.Sscan(s, &mib)
	}
	f, err := os.Create(src)
	if err != nil {
		b.Fatal(err)
	}
	piece := make([]byte, 1<<20)
	for i := 0; i < mib; i++ {
		rand.Read(piece)
		f.Write(piece)
	}
	f.Close()
	b.SetBytes(int64(mib) << 20)
	var user, sys, busy, wall time.Duration
	runObserver = func(hashBusy, w time.Duration) { busy, wall = busy+hashBusy, wall+w }
	defer func() { runObserver = nil }()
	for b.Loop() {
		dst := filepath.Join(dir, "out.img")
		u0, s0 := cpuTimes()
		if _, err := Prepare(context.Background(), Options{Source: src, Dest: dst, Output: output, ConfirmRaw: true}, memRegistrar{}); err != nil {
			b.Fatal(err)
		}
		u1, s1 := cpuTimes()
		user, sys = user+u1-u0, sys+s1-s0
		os.Remove(dst)
		os.Remove(dst + ".manifest.json")
	}
	gib := float64(b.N) * float64(mib) / 1024
	b.ReportMetric((user+sys).Seconds()/gib, "cpu-s/GiB")
	b.ReportMetric(sys.Seconds()/gib, "sys-s/GiB")
	// The pipeline alone (no key derivation, sync or rename), and how
	// much of it the hash chain was busy: near 100 % the chain is the
	// limit, and BenchmarkPipelineParts/hash2 is that limit's rate.
	b.ReportMetric(float64(b.N)*float64(mib<<20)/1e6/wall.Seconds(), "run-MB/s")
	b.ReportMetric(100*busy.Seconds()/wall.Seconds(), "hash-busy-%")
}

// cpuTimes is the process's user and system time so far (all threads).
func cpuTimes() (user, sys time.Duration) {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

func cpuTime() time.Duration { u, s := cpuTimes(); return u + s }

// BenchmarkPipelineParts measures, in CPU seconds per GiB of source, what
// each step of the data-mode pipeline costs alone on this machine: the
// floor BenchmarkPrepareCPU can approach. hash2 is both SHA-256 streams
// (source and output) through the two-stream kernel; read and write are
// pread and pwrite of 4 MiB chunks in the test's temporary folder (a fresh
// file, as the output is).
func BenchmarkPipelineParts(b *testing.B) {
	const gib = 1 << 30
	in, out := make([]byte, chunk), make([]byte, chunk)
	rand.Read(in)
	key := make([]byte, luks2.KeySize)
	rand.Read(key)
	c, _ := luks2.NewCipher(key, 4096)
	part := func(name string, fn func()) {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(gib)
			var cpu time.Duration
			for b.Loop() {
				before := cpuTime()
				fn()
				cpu += cpuTime() - before
			}
			b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/GiB")
		})
	}
	part("hash2", func() {
		s, o := sha256x2.New(), sha256x2.New()
		for i := 0; i < gib/chunk; i++ {
			sha256x2.WriteBoth(s, o, in, out)
		}
	})
	part("xts", func() {
		for i := 0; i < gib/chunk; i++ {
			c.Encrypt(out, in, int64(i)*chunk)
		}
	})
	path := filepath.Join(b.TempDir(), "f")
	part("write", func() {
		os.Remove(path)
		f, _ := os.Create(path)
		for i := 0; i < gib/chunk; i++ {
			f.WriteAt(out, int64(i)*chunk)
		}
		f.Close()
	})
	part("read", func() {
		f, _ := os.Open(path)
		for i := 0; i < gib/chunk; i++ {
			f.ReadAt(in, int64(i)*chunk)
		}
		f.Close()
	})
}
