package main

import (
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/casa-go/casa/cas"
)

// compressBound measures what a compressed Put cannot go below on this
// machine: the CPU work alone, every chunk through zstd on all cores
// beside SHA-256 of the blob, with no reading, ordering or I/O.
type compressBound struct {
	data  []byte
	chunk int
	enc   cas.FrameEncoder // the Stores' encoder
	kp    *zstd.Encoder    // klauspost's, as cas configures its own
}

// newCompressBound returns the bound for data in chunks of chunk bytes
// with enc, the Stores' encoder; nil: the Store's own, klauspost's
// configured as cas configures it for the default policy (level 1, frame
// checksums, a window of one chunk).
func newCompressBound(data []byte, chunk int, enc cas.FrameEncoder) (*compressBound, error) {
	kp, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)),
		zstd.WithEncoderCRC(true),
		zstd.WithWindowSize(chunk),
		zstd.WithZeroFrames(true),
	)
	if err != nil {
		return nil, err
	}
	if enc == nil {
		enc = kp
	}
	return &compressBound{data: data, chunk: chunk, enc: enc, kp: kp}, nil
}

// op compresses every chunk on GOMAXPROCS goroutines while one more
// hashes the whole blob, and returns the wall time.
func (b *compressBound) op(int) (time.Duration, error) {
	chunks := (len(b.data) + b.chunk - 1) / b.chunk
	return timed(func() error {
		var (
			wg   sync.WaitGroup
			next atomic.Int64
			out  atomic.Int64
		)
		wg.Go(func() {
			h := sha256.New()
			for off := 0; off < len(b.data); off += b.chunk {
				h.Write(b.data[off:min(off+b.chunk, len(b.data))])
			}
			h.Sum(nil)
		})
		for range runtime.GOMAXPROCS(0) {
			wg.Go(func() {
				var dst []byte
				for {
					i := int(next.Add(1) - 1)
					if i >= chunks {
						return
					}
					dst = b.enc.EncodeAll(b.data[i*b.chunk:min((i+1)*b.chunk, len(b.data))], dst[:0])
					out.Add(int64(len(dst)))
				}
			})
		}
		wg.Wait()
		if out.Load() == 0 {
			return fmt.Errorf("compress bound: no output")
		}
		return nil
	})
}

// oneCore returns the bytes per second of enc alone (one goroutine) and
// of SHA-256 alone over the data, each the best of three runs.
func (b *compressBound) oneCore(enc cas.FrameEncoder) (zstdRate, shaRate float64) {
	for range 3 {
		d, _ := timed(func() error {
			var dst []byte
			for off := 0; off < len(b.data); off += b.chunk {
				dst = enc.EncodeAll(b.data[off:min(off+b.chunk, len(b.data))], dst[:0])
			}
			return nil
		})
		zstdRate = max(zstdRate, float64(len(b.data))/d.Seconds())
		d, _ = timed(func() error {
			sha256.Sum256(b.data)
			return nil
		})
		shaRate = max(shaRate, float64(len(b.data))/d.Seconds())
	}
	return zstdRate, shaRate
}

// zstdBench matches the result line of `zstd -b`: the ratio and the
// compression speed in MB/s (10^6 bytes).
var zstdBench = regexp.MustCompile(`\(x([0-9.]+)\),\s+([0-9.]+) MB/s`)

// reference returns the rows that set the bound beside the reference
// implementation of zstd: klauspost/compress's level 1 on one core beside
// libzstd's level 1 (the zstd command's benchmark mode, one thread, same
// bytes, same chunks), and the bound either speed would give on this
// machine's cores, beside the Put without compression (plain, bytes per
// second). Without the zstd command the libzstd rows say so.
func (b *compressBound) reference(cfg *config, plain float64) ([]row, error) {
	cores := float64(runtime.GOMAXPROCS(0))
	// Every byte is compressed once and hashed once; the cores share the
	// work perfectly at best.
	boundAt := func(z, sh float64) float64 { return cores / (1/z + 1/sh) }
	boundRow := func(kz, sh float64) row {
		return row{
			Name:   "computed bound of a compressed Put with klauspost/compress's one-core zstd and SHA-256 speeds: cores / (1/zstd + 1/sha256)",
			Figure: mbps(boundAt(kz, sh)),
			Peer:   fmt.Sprintf("Put without compression %s (zstd %s, SHA-256 %s, %.0f cores)", mbps(plain), mbps(kz), mbps(sh), cores),
			Ratio:  boundAt(kz, sh) / plain,
		}
	}
	zstdCmd, err := exec.LookPath("zstd")
	if err != nil {
		kz, sh := b.oneCore(b.kp)
		return []row{boundRow(kz, sh), {Name: "libzstd reference (zstd -b1)", Figure: "not measured: no zstd command on PATH"}}, nil
	}
	file := filepath.Join(cfg.tmp, "compress-reference")
	if err := os.WriteFile(file, b.data, 0o600); err != nil {
		return nil, err
	}
	defer os.Remove(file)
	ver, _ := exec.Command(zstdCmd, "-q", "-V").Output()
	// The reference runs before and after the Go measurements, each side
	// keeping its best: the speed of a shared machine drifts (up to 1.5x
	// between runs a minute apart on the bench machine).
	var lz, kz, sh, sz float64
	var ratio string
	for range 2 {
		l, r, err := zstdReference(zstdCmd, file, b.chunk)
		if err != nil {
			return nil, err
		}
		if l > lz {
			lz, ratio = l, r
		}
		if kz == 0 {
			kz, sh = b.oneCore(b.kp)
			if b.enc != cas.FrameEncoder(b.kp) {
				sz, _ = b.oneCore(b.enc)
			}
		}
	}
	rows := []row{boundRow(kz, sh)}
	if sz > 0 {
		rows = append(rows, row{
			Name:   "level 1 on one core, 1 MiB chunks: the Stores' encoder (cas/libzstd through cgo)",
			Figure: mbps(sz),
			Peer:   "the zstd command's benchmark of the same bytes " + mbps(lz),
			Ratio:  sz / lz,
		})
	}
	name := strings.TrimSpace(string(ver))
	return append(rows, row{
		Name:   "zstd level 1 on one core, 1 MiB chunks: klauspost/compress (a Store's own encoder)",
		Figure: mbps(kz),
		Peer:   fmt.Sprintf("libzstd %s (zstd -b1 -T1 -B%d, ratio %sx; best of a run before and after)", name, b.chunk, ratio),
		Ratio:  kz / lz,
	}, row{
		Name:   "computed bound of a compressed Put with libzstd's one-core speed instead",
		Figure: mbps(boundAt(lz, sh)),
		Peer:   "Put without compression " + mbps(plain),
		Ratio:  boundAt(lz, sh) / plain,
	}), nil
}

// zstdReference runs the zstd command's benchmark of level 1 on file, one
// thread, in independent blocks of chunk bytes, and returns its
// compression speed in bytes per second and the ratio it printed.
func zstdReference(zstdCmd, file string, chunk int) (float64, string, error) {
	out, err := exec.Command(zstdCmd, "-b1", "-T1", fmt.Sprintf("-B%d", chunk), "-i3", file).CombinedOutput()
	if err != nil {
		return 0, "", fmt.Errorf("zstd -b1: %v: %s", err, out)
	}
	m := zstdBench.FindAllStringSubmatch(strings.ReplaceAll(string(out), "\r", "\n"), -1)
	if m == nil {
		return 0, "", fmt.Errorf("zstd -b1: no result in %q", out)
	}
	last := m[len(m)-1]
	speed, err := strconv.ParseFloat(last[2], 64)
	if err != nil {
		return 0, "", fmt.Errorf("zstd -b1: %v", err)
	}
	return speed * 1e6, last[1], nil
}
