package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/fsstore"
	"github.com/casa-go/casa/cas/memstore"
	"github.com/casa-go/casa/cashttp"
	"github.com/casa-go/casa/casurl"
	"github.com/casa-go/casa/internal/testutil"
)

// compressNote explains section 9's Put rows.
const compressNote = "A compressed Put is CPU-bound: every byte goes through zstd and SHA-256, while the Put without compression runs at the disk's speed. " +
	"The CPU bound row is that work alone (every chunk through the same encoder on all cores beside SHA-256 of the blob, no reading, ordering or I/O), measured in the same rounds as the two Puts: " +
	"no compressed Put can beat it on this machine. The computed rows put each encoder's one-core speed into cores / (1/zstd + 1/sha256), the best a perfect spread could do; " +
	"the libzstd rows compare with the zstd command's own benchmark of the same bytes (`zstd -b1 -T1 -B1048576`), run before and after the Go measurements because this machine's speed drifts. " +
	"The encoder is klauspost/compress (pure Go) in a default build and cas/libzstd (the system's libzstd through cgo) in a build with `-tags casa_libzstd`: `go run -tags casa_libzstd ./internal/bench -only \"9.\"`."

// compressSection: cas.WithCompression (zstd at rest) and cashttp's zstd
// pass-through, each beside the same work without compression.
func compressSection(cfg *config) ([]row, error) {
	ctx := context.Background()
	var rows []row
	enc, encName, err := benchEncoder()
	if err != nil {
		return nil, err
	}
	policy := cas.WithCompression(cas.Compression{Encoder: enc})

	// Storage ratio on a corpus of text-like files (Gerber, BOM CSV, JSON,
	// datasheet text), 4 KiB to 2 MiB.
	fsb, err := fsstore.New(filepath.Join(cfg.tmp, "compress-corpus"))
	if err != nil {
		return nil, err
	}
	corpus := cas.New(fsb, policy, cas.WithTempDir(cfg.tmp))
	files, maxSize := 200, 2<<20
	if cfg.quick {
		files, maxSize = 60, 1<<20
	}
	for i := range files {
		n := 4<<10 + (i*7919)%(maxSize-4<<10)
		if _, err := corpus.Put(ctx, bytes.NewReader(testutil.Text(uint64(i), n))); err != nil {
			return rows, err
		}
	}
	var plainBytes, storedBytes int64
	for info, err := range corpus.Walk(ctx) {
		if err != nil {
			return rows, err
		}
		plainBytes += info.Size
		storedBytes += info.StoredSize
	}
	ratio := float64(plainBytes) / float64(storedBytes)
	rows = append(rows, row{
		Name:   fmt.Sprintf("storage ratio, %d text-like files (4 KiB to %s), fsstore", files, sizeName(maxSize)),
		Figure: fmt.Sprintf("%.1f MiB stored", float64(storedBytes)/(1<<20)),
		Peer:   fmt.Sprintf("%.1f MiB of files", float64(plainBytes)/(1<<20)),
		Ratio:  ratio,
		Target: ">= 3.0x",
		Pass:   ratio >= 3,
	})

	// Put throughput, compressible data, with compression beside without.
	size := 64 << 20
	if cfg.quick {
		size = 16 << 20
	}
	text := testutil.Text(1, size)
	fsPut, err := fsstore.New(filepath.Join(cfg.tmp, "compress-put"))
	if err != nil {
		return rows, err
	}
	putOp := func(s *cas.Store, data []byte, tag uint64) op {
		return func(i int) (time.Duration, error) {
			// A fresh blob every iteration, so no Put is deduplicated.
			binary.LittleEndian.PutUint64(data[len(data)-8:], uint64(i)<<8|tag)
			var res cas.PutResult
			d, err := timed(func() (err error) {
				res, err = s.Put(ctx, bytes.NewReader(data))
				return err
			})
			if err == nil && res.Deduplicated {
				err = fmt.Errorf("put %d was deduplicated", i)
			}
			if err == nil {
				err = s.Delete(ctx, res.Hash)
			}
			return d, err
		}
	}
	packed, plain := cas.New(fsPut, policy, cas.WithTempDir(cfg.tmp)), cas.New(fsPut, cas.WithTempDir(cfg.tmp))
	bound, err := newCompressBound(text, cas.DefaultChunkSize, enc)
	if err != nil {
		return rows, err
	}
	r, err := interleaved(cfg.minDur, putOp(packed, text, 1), putOp(plain, text, 2), bound.op)
	if err != nil {
		return rows, err
	}
	rc, rp, rb := r[0], r[1], r[2]
	rows = append(rows, row{
		Name:   fmt.Sprintf("Put %s text-like blob with compression (fsstore; encoder: %s)", sizeName(size), encName),
		Figure: mbps(rc * float64(size)),
		Peer:   "without compression " + mbps(rp*float64(size)),
		Ratio:  rc / rp,
		Target: ">= 0.50",
		Pass:   rc/rp >= 0.5,
	}, row{
		Name: fmt.Sprintf("CPU bound of a compressed Put: every 1 MiB chunk of the %s blob through the same encoder on %d goroutines beside SHA-256 of it, no I/O",
			sizeName(size), runtime.GOMAXPROCS(0)),
		Figure: mbps(rb * float64(size)),
		Peer:   "Put without compression " + mbps(rp*float64(size)),
		Ratio:  rb / rp,
	}, row{
		Name:   "Put with compression beside that CPU bound (what reading, ordering and the staged file's writes and last fdatasync cost)",
		Figure: mbps(rc * float64(size)),
		Peer:   "CPU bound " + mbps(rb*float64(size)),
		Ratio:  rc / rb,
	})
	refRows, err := bound.reference(cfg, rp*float64(size))
	if err != nil {
		return rows, err
	}
	rows = append(rows, refRows...)

	// The same Puts by CPU time, which a loaded machine distorts less
	// than wall time (the wall-time ratio is the target).
	cc, err := cpuPerOp(putOp(packed, text, 5), 3)
	if err != nil {
		return rows, err
	}
	cp, err := cpuPerOp(putOp(plain, text, 6), 3)
	if err != nil {
		return rows, err
	}
	rows = append(rows, row{
		Name:   fmt.Sprintf("CPU time (user+system) of a %s text-like Put with compression (fsstore)", sizeName(size)),
		Figure: ms(cc),
		Peer:   "without compression " + ms(cp),
		Ratio:  float64(cp) / float64(cc),
	})

	// Extra Put time on incompressible data (JPEG): the policy's sample
	// and sniff only. memstore, where a Put is CPU only.
	jpeg := append([]byte{0xFF, 0xD8, 0xFF, 0xE0}, testutil.Bytes(2, 16<<20)...)
	mem := memstore.New()
	rc, rp, err = paired(cfg.minDur, putOp(cas.New(mem, policy, cas.WithTempDir(cfg.tmp)), jpeg, 3), putOp(cas.New(mem, cas.WithTempDir(cfg.tmp)), jpeg, 4))
	if err != nil {
		return rows, err
	}
	rows = append(rows, row{
		Name:   "Put time of 16 MiB JPEG data with compression on (memstore)",
		Figure: ms(time.Duration(float64(time.Second) / rc)),
		Peer:   "without compression " + ms(time.Duration(float64(time.Second)/rp)),
		Ratio:  rp / rc,
		Target: "<= 1.05",
		Pass:   rp/rc <= 1.05,
	})

	serveRows, err := compressServeRows(ctx, cfg, text)
	return append(rows, serveRows...), err
}

// compressServeRows: the zstd pass-through GET beside an identity GET of
// as many bytes, and the frames a 1 KiB Range GET in the middle of a
// compressed 64 MiB blob decodes.
func compressServeRows(ctx context.Context, cfg *config, text []byte) ([]row, error) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(ctx)
	fsb, err := fsstore.New(filepath.Join(cfg.tmp, "compress-serve"))
	if err != nil {
		return nil, err
	}
	store := cas.New(fsb, cas.WithCompression(cas.Compression{}), cas.WithTempDir(cfg.tmp), cas.WithMeterProvider(mp))
	res, err := store.Put(ctx, bytes.NewReader(text))
	if err != nil {
		return nil, err
	}
	info, err := store.Stat(ctx, res.Hash)
	if err != nil {
		return nil, err
	}
	if info.Encoding != cas.EncodingZstd {
		return nil, fmt.Errorf("the text blob was stored %q, not compressed", info.Encoding)
	}
	// Random bytes of the stored size: stored as they are.
	other, err := store.Put(ctx, bytes.NewReader(testutil.Bytes(3, int(info.StoredSize))))
	if err != nil {
		return nil, err
	}
	srv := httptest.NewServer(cashttp.NewHandler(store))
	defer srv.Close()
	client := newClient(4)
	urls := casurl.Builder{}
	zstdPath, _ := urls.Inline(res.Hash, "text/plain")
	plainPath, _ := urls.Inline(other.Hash, "application/octet-stream")
	accept := http.Header{"Accept-Encoding": {"zstd"}}
	fetch := func(u string, hdr http.Header) op {
		return func(int) (time.Duration, error) {
			return timed(func() error {
				n, err := get(client, srv.URL+u, http.StatusOK, hdr)
				if err == nil && n != info.StoredSize {
					err = fmt.Errorf("GET %s: %d bytes, want %d", u, n, info.StoredSize)
				}
				return err
			})
		}
	}
	rz, ri, err := paired(cfg.minDur, fetch(zstdPath, accept), fetch(plainPath, accept))
	if err != nil {
		return nil, err
	}
	rows := []row{{
		Name:   fmt.Sprintf("GET zstd pass-through, %s blob stored as %.1f MiB (fsstore)", sizeName(len(text)), float64(info.StoredSize)/(1<<20)),
		Figure: mbps(rz * float64(info.StoredSize)),
		Peer:   "identity GET of as many bytes " + mbps(ri*float64(info.StoredSize)),
		Ratio:  rz / ri,
		Target: ">= 0.90",
		Pass:   rz/ri >= 0.9,
	}}

	// A 1 KiB Range GET in the middle of a compressed 64 MiB blob.
	big := text
	if len(big) < 64<<20 {
		big = testutil.Text(4, 64<<20)
		if res, err = store.Put(ctx, bytes.NewReader(big)); err != nil {
			return rows, err
		}
	}
	path, _ := urls.Inline(res.Hash, "text/plain")
	before, err := framesDecoded(ctx, reader)
	if err != nil {
		return rows, err
	}
	mid := int64(len(big) / 2)
	hdr := http.Header{"Range": {fmt.Sprintf("bytes=%d-%d", mid-512, mid+511)}, "Accept-Encoding": {"zstd"}}
	d, err := timed(func() error {
		n, err := get(client, srv.URL+path, http.StatusPartialContent, hdr)
		if err == nil && n != 1024 {
			err = fmt.Errorf("range GET: %d bytes, want 1024", n)
		}
		return err
	})
	if err != nil {
		return rows, err
	}
	after, err := framesDecoded(ctx, reader)
	if err != nil {
		return rows, err
	}
	frames := after - before
	return append(rows, row{
		Name:   "chunks decoded by a 1 KiB Range GET across the middle of a compressed 64 MiB blob (1 MiB chunks)",
		Figure: fmt.Sprint(frames),
		Peer:   fmt.Sprintf("%d chunks in the blob; the GET took %s", (len(big)+cas.DefaultChunkSize-1)/cas.DefaultChunkSize, ms(d)),
		Target: "<= 2",
		Pass:   frames <= 2,
	}), nil
}

// framesDecoded reads the cas.MetricFramesDecoded counter.
func framesDecoded(ctx context.Context, r sdkmetric.Reader) (int64, error) {
	var rm metricdata.ResourceMetrics
	if err := r.Collect(ctx, &rm); err != nil {
		return 0, err
	}
	var n int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if sum, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == cas.MetricFramesDecoded {
				for _, dp := range sum.DataPoints {
					n += dp.Value
				}
			}
		}
	}
	return n, nil
}

// cpuPerOp runs o n times and returns the process's CPU time (user and
// system, all threads) per run.
func cpuPerOp(o op, n int) (time.Duration, error) {
	cpu := func() time.Duration {
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	start := cpu()
	for i := range n {
		if _, err := o(1000 + i); err != nil {
			return 0, err
		}
	}
	return (cpu() - start) / time.Duration(n), nil
}
