package main

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/s3store"
)

// listSection measures s3store's List of 2,000 blobs (a third marked
// compressed) on the S3 test server with 5 ms per request, as a remote S3:
// the HeadObject per blob one at a time (as List issued them before) and
// DefaultListConcurrency at a time, and cas.ListKeys, which issues none.
func listSection(cfg *config) ([]row, error) {
	const n = 2000
	s, err := startS3(cfg, 5*time.Millisecond)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	ctx := context.Background()
	seed := s3store.New(s.Client, s.Bucket)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i := range n {
		p := []byte(fmt.Sprintf("blob %d", i))
		h := cas.SumBytes(p)
		opts := cas.PutOptions{SHA256: h}
		if i%3 == 0 {
			opts = cas.PutOptions{Encoding: cas.EncodingZstd, DecodedSize: int64(1000 + i)}
		}
		g.Go(func() error { return seed.Put(gctx, h.Key(), bytes.NewReader(p), int64(len(p)), opts) })
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	timeList := func(b *s3store.Backend) (time.Duration, int64, error) {
		s.ResetStats()
		start := time.Now()
		got := 0
		for _, err := range b.List(ctx, cas.KeyPrefix) {
			if err != nil {
				return 0, 0, err
			}
			got++
		}
		if got != n {
			return 0, 0, fmt.Errorf("listed %d blobs, want %d", got, n)
		}
		return time.Since(start), s.Requests("HeadObject"), nil
	}
	seq, seqHeads, err := timeList(s3store.New(s.Client, s.Bucket, s3store.WithListConcurrency(1)))
	if err != nil {
		return nil, err
	}
	conc, concHeads, err := timeList(seed)
	if err != nil {
		return nil, err
	}
	s.ResetStats()
	start := time.Now()
	got := 0
	for _, err := range cas.ListKeys(ctx, seed, cas.KeyPrefix) {
		if err != nil {
			return nil, err
		}
		got++
	}
	keys := time.Since(start)
	keyHeads := s.Requests("HeadObject")
	if got != n {
		return nil, fmt.Errorf("ListKeys yielded %d blobs, want %d", got, n)
	}
	ratio := conc.Seconds() / seq.Seconds()
	return []row{
		{
			Name:   fmt.Sprintf("s3store List of %d blobs, 5 ms per request, %d HEADs at a time (%d HEADs)", n, s3store.DefaultListConcurrency, concHeads),
			Figure: conc.Round(time.Millisecond).String(),
			Peer:   fmt.Sprintf("one at a time: %v (%d HEADs)", seq.Round(time.Millisecond), seqHeads),
			Ratio:  ratio, Target: "<= 0.30", Pass: ratio <= 0.30,
		},
		{
			Name:   fmt.Sprintf("cas.ListKeys (Cleanup's and Collect's listing) of the same %d blobs: HEADs", n),
			Figure: fmt.Sprint(keyHeads),
			Peer:   fmt.Sprintf("took %v", keys.Round(time.Millisecond)),
			Target: "0", Pass: keyHeads == 0,
		},
	}, nil
}
