package main

import (
	"bytes"
	"context"
	"fmt"
	"image/jpeg"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/fsstore"
	"github.com/casa-go/casa/cashttp"
	"github.com/casa-go/casa/casurl"
	"github.com/casa-go/casa/internal/testutil"
	"github.com/casa-go/casa/internal/testutil/imagetest"
	"github.com/casa-go/casa/thumbnail"
)

// thumbSection: thumbnail generation (shrink-on-load) beside decode-only, a cached thumbnail
// GET beside a plain blob GET, and coalescing of concurrent requests.
func thumbSection(cfg *config) ([]row, error) {
	ctx := context.Background()
	src := imagetest.JPEG(4000, 3000) // 12 megapixels, photo-like content
	var rows []row

	// Generation vs decode-only, both from the same bytes in memory, in
	// one run. Shrink-on-load (internal/jpegdec) decodes the 150 px
	// thumbnail at 1/8 (DC only) and the 1000 px one at 1/4. Progressive:
	// today's generation was image/jpeg's full decode plus the resize, so
	// a generation within image/jpeg's decode-only time is no slower.
	var thumb []byte // the 150 px thumbnail, for the cached-GET comparison
	prog := imagetest.ProgressivePhoto(4000, 3000)
	for _, tc := range []struct {
		kind   string
		src    []byte
		size   int
		target float64
	}{
		{"JPEG", src, 150, 0.35},
		{"JPEG", src, 1000, 0.70},
		{"progressive JPEG", prog, 150, 1.0},
		{"progressive JPEG", prog, 1000, 1.0},
	} {
		dec := func(int) (time.Duration, error) {
			return timed(func() error { _, err := jpeg.Decode(bytes.NewReader(tc.src)); return err })
		}
		gen := func(int) (time.Duration, error) {
			return timed(func() error {
				b, err := thumbnail.Generate(bytes.NewReader(tc.src), tc.size)
				if tc.size == 150 && thumb == nil {
					thumb = b
				}
				return err
			})
		}
		rg, rd, err := paired(cfg.minDur*2, gen, dec)
		if err != nil {
			return nil, err
		}
		tGen, tDec := time.Duration(float64(time.Second)/rg), time.Duration(float64(time.Second)/rd)
		ratio := float64(tGen) / float64(tDec)
		rows = append(rows, row{
			Name:   fmt.Sprintf("%d px thumbnail of a 12 MP %s (4000x3000), generation", tc.size, tc.kind),
			Figure: ms(tGen),
			Peer:   "image/jpeg decode only " + ms(tDec),
			Ratio:  ratio,
			Target: fmt.Sprintf("<= %.2f", tc.target),
			Pass:   ratio <= tc.target,
		})
	}

	// A cached hit through cashttp beside a plain GET of a blob of the same size.
	fsb, err := fsstore.New(filepath.Join(cfg.tmp, "thumb-fs"))
	if err != nil {
		return rows, err
	}
	store := cas.New(fsb)
	img, err := store.Put(ctx, bytes.NewReader(src))
	if err != nil {
		return rows, err
	}
	same, err := store.Put(ctx, bytes.NewReader(testutil.Bytes(3, len(thumb))))
	if err != nil {
		return rows, err
	}
	dc, err := thumbnail.NewDirCache(filepath.Join(cfg.tmp, "thumb-cache"), 64<<20)
	if err != nil {
		return rows, err
	}
	svc := thumbnail.NewService(store, thumbnail.WithCache(dc))
	mux := http.NewServeMux()
	mux.Handle("GET /api/cas/{hash}", cashttp.NewHandler(store, cashttp.WithThumbnails(svc)))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	client := newClient(4)
	urls := casurl.Builder{}
	thumbPath, err := urls.Thumbnail(img.Hash, 150)
	if err != nil {
		return rows, err
	}
	plainPath, err := urls.Inline(same.Hash, "image/jpeg")
	if err != nil {
		return rows, err
	}
	thumbURL, plainURL := srv.URL+thumbPath, srv.URL+plainPath
	if _, err := get(client, thumbURL, http.StatusOK, nil); err != nil { // warm the cache
		return rows, err
	}
	fetch := func(u string) op {
		return func(int) (time.Duration, error) {
			return timed(func() error { _, err := get(client, u, http.StatusOK, nil); return err })
		}
	}
	rt, rp, err := paired(cfg.minDur, fetch(thumbURL), fetch(plainURL))
	if err != nil {
		return rows, err
	}
	lt, lp := time.Duration(float64(time.Second)/rt), time.Duration(float64(time.Second)/rp)
	rows = append(rows, row{
		Name:   fmt.Sprintf("cached thumbnail GET via cashttp (%d bytes)", len(thumb)),
		Figure: fmt.Sprintf("%.0f µs", float64(lt)/1e3),
		Peer:   fmt.Sprintf("plain blob GET of %d bytes %.0f µs", len(thumb), float64(lp)/1e3),
		Ratio:  float64(lt) / float64(lp),
	})

	// 64 concurrent requests for one uncached thumbnail.
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	fresh := thumbnail.NewService(store, thumbnail.WithMeterProvider(mp))
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	start := make(chan struct{})
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			b, err := fresh.Get(ctx, img.Hash, 300)
			if err == nil && len(b) == 0 {
				err = fmt.Errorf("empty thumbnail")
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		return rows, err
	}
	n, err := counterSum(ctx, reader, "casa.thumbnail.generations")
	if err != nil {
		return rows, err
	}
	rows = append(rows, row{
		Name:   "generations for 64 concurrent requests of one uncached thumbnail",
		Figure: fmt.Sprint(n),
		Peer:   "64 requests",
		Target: "1",
		Pass:   n == 1,
	})
	return rows, nil
}

// counterSum reads an Int64 counter's total over all attribute sets.
func counterSum(ctx context.Context, r *sdkmetric.ManualReader, name string) (int64, error) {
	var rm metricdata.ResourceMetrics
	if err := r.Collect(ctx, &rm); err != nil {
		return 0, err
	}
	var total int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			sum, ok := m.Data.(metricdata.Sum[int64])
			if !ok {
				return 0, fmt.Errorf("%s is %T, not an int64 sum", name, m.Data)
			}
			for _, dp := range sum.DataPoints {
				total += dp.Value
			}
		}
	}
	return total, nil
}
