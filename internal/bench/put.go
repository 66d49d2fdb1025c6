package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/fsstore"
	"github.com/casa-go/casa/cas/memstore"
	"github.com/casa-go/casa/cas/s3store"
	"github.com/casa-go/casa/internal/testutil"
)

// putSection: Store.Put throughput per backend and size beside raw SHA-256
// of the same bytes.
func putSection(cfg *config) ([]row, error) {
	ctx := context.Background()
	fsb, err := fsstore.New(cfg.tmp + "/put-fs")
	if err != nil {
		return nil, err
	}
	srv, err := startS3(cfg, 0)
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	backends := []struct {
		name string
		b    cas.Backend
	}{
		{"mem", memstore.New()},
		{"fs", fsb},
		{"s3", s3store.New(srv.Client, srv.Bucket)},
	}
	var rows []row
	// 128 MiB is above s3store's multipart threshold (64 MiB): the S3 row
	// shows the multipart path; the other backends have no such threshold.
	for _, size := range []int{4 << 10, 1 << 20, 64 << 20, 128 << 20} {
		data := testutil.Bytes(uint64(size), size)
		limit := func(i int) (time.Duration, error) {
			binary.LittleEndian.PutUint64(data, uint64(i))
			return timed(func() error { sha256.Sum256(data); return nil })
		}
		for bi, be := range backends {
			if size > 64<<20 && be.name != "s3" {
				continue
			}
			store := cas.New(be.b, cas.WithTempDir(cfg.tmp))
			put := func(i int) (time.Duration, error) {
				// A fresh blob every iteration, so no Put is deduplicated.
				binary.LittleEndian.PutUint64(data, uint64(i)<<8|uint64(bi))
				var res cas.PutResult
				d, err := timed(func() (err error) {
					res, err = store.Put(ctx, bytes.NewReader(data))
					return err
				})
				if err == nil && res.Deduplicated {
					err = fmt.Errorf("put %d was deduplicated", i)
				}
				if err == nil {
					err = store.Delete(ctx, res.Hash)
				}
				return d, err
			}
			rp, rl, err := paired(cfg.minDur, put, limit)
			if err != nil {
				return rows, fmt.Errorf("%s %s: %w", be.name, sizeName(size), err)
			}
			r := row{
				Name:   fmt.Sprintf("Put %s, %s", be.name, sizeName(size)),
				Figure: mbps(rp * float64(size)),
				Peer:   "SHA-256 " + mbps(rl*float64(size)),
				Ratio:  rp / rl,
			}
			if be.name == "fs" && size == 64<<20 {
				r.Target = ">= 0.70"
				r.Pass = r.Ratio >= 0.70
			}
			rows = append(rows, r)
		}
	}
	return rows, nil
}
