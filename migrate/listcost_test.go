package migrate_test

import (
	"bytes"
	"context"
	"fmt"
	"iter"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/memstore"
	"github.com/casa-go/casa/cas/s3store"
	"github.com/casa-go/casa/internal/testutil"
	"github.com/casa-go/casa/internal/testutil/s3test"
	"github.com/casa-go/casa/migrate"
)

// TestSweepsHeadOnlyWhatTheyDelete: on s3store, whose List costs a
// HeadObject per blob, Cleanup lists without any HEAD (it never deletes a
// blob), and Collect issues one HEAD per blob it deletes (for the decoded
// size in Bytes), none for the blobs it keeps. Bytes counts decoded sizes,
// compressed blobs included.
func TestSweepsHeadOnlyWhatTheyDelete(t *testing.T) {
	t.Parallel()
	s := s3test.New(t)
	b := s3store.New(s.Client, s.Bucket)
	ctx := t.Context()
	store := cas.New(b, cas.WithCompression(cas.Compression{}), cas.WithTempDir(t.TempDir()))

	const n = 60
	var referenced []string
	var orphanBytes int64
	compressed := 0
	for i := range n {
		var p []byte
		if i%3 == 0 {
			p = testutil.Text(uint64(i), 8<<10) // compressible: stored zstd
		} else {
			p = testutil.Bytes(uint64(i), 1000+i) // random: stored as is
		}
		res, err := store.Put(ctx, bytes.NewReader(p))
		require.NoError(t, err)
		if info, err := store.Stat(ctx, res.Hash); err == nil && info.Encoding != "" {
			compressed++
		}
		if i%4 == 0 {
			orphanBytes += int64(len(p))
			continue
		}
		referenced = append(referenced, res.Hash.Key())
	}
	require.Positive(t, compressed)
	for i := range 5 {
		put(t, b, fmt.Sprintf("uploads/legacy-%d", i), []byte("legacy"))
	}
	m, _ := sqliteMigrator(t, referenced...)
	time.Sleep(20 * time.Millisecond) // older than MinAge

	s.ResetStats()
	var deleted []string
	crep, err := migrate.Cleanup(ctx, store, m, migrate.CleanupOptions{OnDelete: func(k string) { deleted = append(deleted, k) }})
	require.NoError(t, err)
	require.Equal(t, 5, crep.Deleted)
	require.Equal(t, n+5, crep.Scanned)
	require.Zero(t, s.Requests("HeadObject"), "Cleanup lists keys without a HEAD per blob")

	s.ResetStats()
	rep, err := migrate.Collect(ctx, store, m, migrate.CollectOptions{MinAge: time.Millisecond})
	require.NoError(t, err)
	orphans := n - len(referenced)
	require.Equal(t, orphans, rep.Deleted)
	require.Equal(t, n, rep.Scanned)
	require.Equal(t, len(referenced), rep.Referenced)
	require.Equal(t, orphanBytes, rep.Bytes, "decoded sizes, compressed blobs included")
	require.EqualValues(t, orphans, s.Requests("HeadObject"), "one HEAD per deleted blob, none per kept one")
}

// ghostList is a memstore whose listing also yields a blob key that is not
// stored: a blob deleted between the listing and Collect's Stat.
type ghostList struct {
	*memstore.Backend
	ghost string
}

func (g ghostList) List(ctx context.Context, prefix string) iter.Seq2[cas.Info, error] {
	return func(yield func(cas.Info, error) bool) {
		ghostDone := !strings.HasPrefix(g.ghost, prefix)
		for info, err := range g.Backend.List(ctx, prefix) {
			if err == nil && !ghostDone && g.ghost < info.Key {
				ghostDone = true
				if !yield(cas.Info{Key: g.ghost, ModTime: time.Unix(1, 0)}, nil) {
					return
				}
			}
			if !yield(info, err) {
				return
			}
		}
		if !ghostDone {
			yield(cas.Info{Key: g.ghost, ModTime: time.Unix(1, 0)}, nil)
		}
	}
}

// TestCollectBlobGoneAfterListing: a listed blob whose Stat finds it gone
// (deleted since the listing) is not counted, and its old derived objects
// go as those of any missing blob do.
func TestCollectBlobGoneAfterListing(t *testing.T) {
	t.Parallel()
	mem := memstore.New()
	ghost := cas.SumBytes([]byte("ghost"))
	b := ghostList{Backend: mem, ghost: ghost.Key()}
	orphan := cas.SumBytes([]byte("orphan"))
	put(t, mem, orphan.Key(), []byte("orphan"))
	thumb := cas.DerivedKey(cas.ThumbnailPrefix, ghost, "150.jpg")
	put(t, mem, thumb, []byte("x"))
	for _, k := range []string{orphan.Key(), thumb} {
		mem.SetModTime(k, time.Now().Add(-time.Hour))
	}
	m, _ := sqliteMigrator(t)
	store := cas.New(b)
	rep, err := migrate.Collect(t.Context(), store, m, migrate.CollectOptions{MinAge: time.Minute})
	require.NoError(t, err)
	require.Equal(t, 1, rep.Scanned, "the ghost is not counted")
	require.Equal(t, 1, rep.Deleted)
	require.Equal(t, int64(len("orphan")), rep.Bytes)
	require.Equal(t, 1, rep.DerivedDeleted, "the ghost's old thumbnail goes")
	_, err = mem.Stat(t.Context(), thumb)
	require.ErrorIs(t, err, cas.ErrNotFound)
}
