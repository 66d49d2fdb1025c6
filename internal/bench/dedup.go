package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/fsstore"
	"github.com/casa-go/casa/internal/testutil"
)

// dedupSection: the dedup check every Put makes on fsstore. Stat of a
// plain blob (one Lstat) beside a bare os.Lstat of its file, Stat of a
// compressed one (its seek table is read), and a Put of a 1 MiB blob that
// is stored already (hashed, then the staged bytes discarded) beside a Put
// of a new one (hashed, fdatasynced and linked), with fsync on.
func dedupSection(cfg *config) ([]row, error) {
	ctx := context.Background()
	fsb, err := fsstore.New(filepath.Join(cfg.tmp, "dedup-fs"))
	if err != nil {
		return nil, err
	}
	plain, err := cas.New(fsb).Put(ctx, bytes.NewReader(testutil.Bytes(12, 64<<10)))
	if err != nil {
		return nil, err
	}
	zst, err := cas.New(fsb, cas.WithCompression(cas.Compression{})).Put(ctx, bytes.NewReader(testutil.Text(12, 64<<10)))
	if err != nil {
		return nil, err
	}
	if info, err := fsb.Stat(ctx, zst.Hash.Key()); err != nil {
		return nil, err
	} else if info.Encoding != cas.EncodingZstd {
		return nil, fmt.Errorf("the text blob was stored %q, not compressed", info.Encoding)
	}
	hex := plain.Hash.String()
	file := filepath.Join(fsb.Dir(), "cas", hex[:2], hex)
	const batch = 1000 // Stats per op: one is too short to time alone
	stat := func(h cas.Hash) op {
		return func(int) (time.Duration, error) {
			return timed(func() error {
				for range batch {
					if _, err := fsb.Stat(ctx, h.Key()); err != nil {
						return err
					}
				}
				return nil
			})
		}
	}
	lstat := func(int) (time.Duration, error) {
		return timed(func() error {
			for range batch {
				if _, err := os.Lstat(file); err != nil {
					return err
				}
			}
			return nil
		})
	}
	r, err := interleaved(cfg.minDur, stat(plain.Hash), stat(zst.Hash), lstat)
	if err != nil {
		return nil, err
	}
	us := func(opsPerSec float64) string { return fmt.Sprintf("%.1f µs", 1e6/(opsPerSec*batch)) }
	rows := []row{
		{Name: "Stat fs, plain blob", Figure: us(r[0]), Peer: "os.Lstat " + us(r[2]), Ratio: r[0] / r[2]},
		{Name: "Stat fs, compressed blob", Figure: us(r[1]), Peer: "os.Lstat " + us(r[2]), Ratio: r[1] / r[2]},
	}

	const size = 1 << 20
	data := testutil.Bytes(13, size)
	store := cas.New(fsb, cas.WithTempDir(cfg.tmp))
	dup, err := store.Put(ctx, bytes.NewReader(data))
	if err != nil {
		return rows, err
	}
	fresh := bytes.Clone(data)
	putDup := func(int) (time.Duration, error) {
		var res cas.PutResult
		d, err := timed(func() (err error) { res, err = store.Put(ctx, bytes.NewReader(data)); return err })
		if err == nil && (!res.Deduplicated || res.Hash != dup.Hash) {
			err = fmt.Errorf("put of a stored blob: %+v", res)
		}
		return d, err
	}
	putNew := func(i int) (time.Duration, error) {
		binary.LittleEndian.PutUint64(fresh, uint64(i)+1)
		var res cas.PutResult
		d, err := timed(func() (err error) { res, err = store.Put(ctx, bytes.NewReader(fresh)); return err })
		if err == nil && res.Deduplicated {
			err = fmt.Errorf("put %d was deduplicated", i)
		}
		if err == nil {
			err = store.Delete(ctx, res.Hash)
		}
		return d, err
	}
	rd, rn, err := paired(cfg.minDur, putDup, putNew)
	if err != nil {
		return rows, err
	}
	rows = append(rows, row{
		Name: "Put fs, 1 MiB, stored already", Figure: mbps(rd * size),
		Peer: "Put fs, 1 MiB, new " + mbps(rn*size), Ratio: rd / rn,
	})
	return rows, nil
}
