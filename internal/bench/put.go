package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/fsstore"
	"github.com/casa-go/casa/cas/memstore"
	"github.com/casa-go/casa/cas/s3store"
	"github.com/casa-go/casa/internal/testutil"
)

// putChunk is the size of the chunks cas.Store.Put reads, hashes and
// writes (cas's copyBufferSize), and of the writes the limit of the fs
// Put is measured with.
const putChunk = 256 << 10

// putNote explains the limit of the fs Put row.
const putNote = "The 64 MiB fs Put is measured beside its limit on this machine, in the same rounds: " +
	"the slower of writing the same bytes into a fresh file in fsstore's temporary directory " +
	"(256 KiB writes, as fsstore gets them, then fdatasync) and hashing them the way Put does " +
	"(256 KiB chunks through sha256.New). " +
	"Put does both at once, so even a perfect overlap cannot beat the slower; " +
	"SHA-256 of the whole blob in one call stays beside it as info."

// putSection: Store.Put throughput per backend and size beside raw SHA-256
// of the same bytes; the 64 MiB fs Put also beside its limit on this
// machine (limitOps).
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
			if be.name == "fs" && size == 64<<20 {
				rs, err := fsLimitRows(cfg, fsb, data, put, limit)
				if err != nil {
					return rows, fmt.Errorf("fs %s: %w", sizeName(size), err)
				}
				rows = append(rows, rs...)
				continue
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
			rows = append(rows, r)
		}
	}
	return rows, nil
}

// fsLimitRows measures the fs Put of data, interleaved with plain SHA-256
// (sha), with hashing the way Put hashes and with writing the way fsstore
// writes (limitOps), and returns the target row, the Put beside the slower
// of those two, and an info row, the Put beside plain SHA-256.
func fsLimitRows(cfg *config, fsb *fsstore.Backend, data []byte, put, sha op) ([]row, error) {
	hash, write := limitOps(filepath.Join(fsb.Dir(), ".tmp"), data)
	r, err := interleaved(cfg.minDur, put, sha, hash, write)
	if err != nil {
		return nil, err
	}
	size := float64(len(data))
	rp, rs, rh, rw := r[0], r[1], r[2], r[3]
	limit := min(rh, rw)
	name := fmt.Sprintf("Put fs, %s", sizeName(len(data)))
	return []row{{
		Name:   name,
		Figure: mbps(rp * size),
		Peer:   fmt.Sprintf("limit %s: slower of write+fdatasync %s, hashing as Put does %s", mbps(limit*size), mbps(rw*size), mbps(rh*size)),
		Ratio:  rp / limit,
		Target: ">= 0.80",
		Pass:   rp/limit >= 0.80,
	}, {
		Name:   name + " beside plain SHA-256",
		Figure: mbps(rp * size),
		Peer:   "SHA-256 " + mbps(rs*size),
		Ratio:  rp / rs,
	}}, nil
}

// limitOps returns the two halves of an fs Put of data, each alone: hash
// hashes data in putChunk chunks through sha256.New, as the hashing stage
// of cas.Store.Put's pipeline does; write creates a fresh file in dir
// (fsstore's temporary directory), writes data to it in putChunk writes
// and fdatasyncs it, as fsstore does its temporary file before publishing.
// A Put that overlaps the two perfectly takes as long as the slower of
// them; it cannot take less. Each iteration changes the first bytes of
// data, as the Puts do.
func limitOps(dir string, data []byte) (hash, write op) {
	hash = func(i int) (time.Duration, error) {
		binary.LittleEndian.PutUint64(data, uint64(i)<<8|0xfe)
		return timed(func() error {
			h := sha256.New()
			for p := data; len(p) > 0; p = p[min(len(p), putChunk):] {
				h.Write(p[:min(len(p), putChunk)])
			}
			h.Sum(nil)
			return nil
		})
	}
	write = func(i int) (time.Duration, error) {
		binary.LittleEndian.PutUint64(data, uint64(i)<<8|0xff)
		var f *os.File
		d, err := timed(func() (err error) {
			if f, err = os.CreateTemp(dir, "bench-write-*"); err != nil {
				return err
			}
			for p := data; len(p) > 0; p = p[min(len(p), putChunk):] {
				if _, err := f.Write(p[:min(len(p), putChunk)]); err != nil {
					return err
				}
			}
			return datasync(f)
		})
		if f != nil {
			err = errors.Join(err, f.Close(), os.Remove(f.Name()))
		}
		return d, err
	}
	return hash, write
}
