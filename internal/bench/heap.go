package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"time"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/fsstore"
	"github.com/casa-go/casa/internal/testutil"
)

// heapSampler tracks the peak of live heap bytes while it runs.
type heapSampler struct {
	base, peak atomic.Uint64
	stop       chan struct{}
	done       chan struct{}
}

const heapMetric = "/memory/classes/heap/objects:bytes"

func readHeap() uint64 {
	s := []metrics.Sample{{Name: heapMetric}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// startHeapSampler collects garbage, takes the baseline and samples every
// millisecond until Stop.
func startHeapSampler() *heapSampler {
	runtime.GC()
	h := &heapSampler{stop: make(chan struct{}), done: make(chan struct{})}
	b := readHeap()
	h.base.Store(b)
	h.peak.Store(b)
	go func() {
		defer close(h.done)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-h.stop:
				return
			case <-t.C:
				if v := readHeap(); v > h.peak.Load() {
					h.peak.Store(v)
				}
			}
		}
	}()
	return h
}

// Stop ends sampling and returns the peak growth over the baseline in bytes.
func (h *heapSampler) Stop() uint64 {
	close(h.stop)
	<-h.done
	if v := readHeap(); v > h.peak.Load() {
		h.peak.Store(v)
	}
	return h.peak.Load() - h.base.Load()
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// heapSection: peak heap growth while a 1 GiB blob, generated on the fly,
// streams into fsstore through Store.Put.
func heapSection(cfg *config) ([]row, error) {
	const size = 1 << 30
	fsb, err := fsstore.New(cfg.tmp + "/heap-fs")
	if err != nil {
		return nil, err
	}
	store := cas.New(fsb)
	src := testutil.Reader(42, size)

	h := startHeapSampler()
	t0 := time.Now()
	res, err := store.Put(context.Background(), src)
	took := time.Since(t0)
	growth := h.Stop()
	if err != nil {
		return nil, err
	}
	if res.Size != size {
		return nil, fmt.Errorf("stored %d bytes, want %d", res.Size, size)
	}
	defer store.Delete(context.Background(), res.Hash)
	const limit = 8 << 20
	return []row{{
		Name:   fmt.Sprintf("peak heap growth, 1 GiB fsstore Put from a generator (%s)", mbps(size/took.Seconds())),
		Figure: mib(growth),
		Peer:   "blob 1024 MiB",
		Ratio:  float64(growth) / size,
		Target: "<= 8 MiB",
		Pass:   growth <= limit,
	}}, nil
}
