package cas_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/fsstore"
	"github.com/casa-go/casa/cas/memstore"
	"github.com/casa-go/casa/cas/s3store"
	"github.com/casa-go/casa/internal/testutil"
	"github.com/casa-go/casa/internal/testutil/faulty"
	"github.com/casa-go/casa/internal/testutil/s3test"
)

// damagedCase is a Backend holding a blob whose stored form Stat reports
// corrupt, or of the wrong size.
type damagedCase struct {
	name string
	// new returns a Backend holding data's blob damaged; files, when not
	// nil, returns the paths of the blob's files (fsstore).
	new func(t *testing.T, data []byte) (b cas.Backend, files func() []string)
}

// goodStored returns the stored form (compressed in 64 KiB frames) of
// data, and its hash.
func goodStored(t *testing.T, data []byte) ([]byte, cas.Hash) {
	t.Helper()
	_, h, stored := compressed(t, data)
	return stored, h
}

// blobFiles returns a func listing the files of h's blob in fsstore's dir.
func blobFiles(dir string, h cas.Hash) func() []string {
	return func() []string {
		m, _ := filepath.Glob(filepath.Join(dir, "cas", h.String()[:2], h.String()+"*"))
		return m
	}
}

// truncateFile cuts the read-only file at path to n bytes, as a damaged
// disk would.
func truncateFile(t *testing.T, path string, n int64) {
	t.Helper()
	require.NoError(t, os.Chmod(path, 0o644))
	require.NoError(t, os.Truncate(path, n))
	require.NoError(t, os.Chmod(path, 0o444))
}

func damagedCases() []damagedCase {
	return []damagedCase{
		{"fsstore/truncated .zst", func(t *testing.T, data []byte) (cas.Backend, func() []string) {
			dir := t.TempDir()
			b, err := fsstore.New(dir, fsstore.WithoutSync())
			require.NoError(t, err)
			res, err := cas.New(b, cas.WithCompression(smallChunks)).Put(t.Context(), bytes.NewReader(data))
			require.NoError(t, err)
			hex := res.Hash.String()
			truncateFile(t, filepath.Join(dir, "cas", hex[:2], hex+".zst"), 1000)
			_, err = b.Stat(t.Context(), res.Hash.Key())
			require.ErrorIs(t, err, cas.ErrCorrupt, "the damage is one Stat reports")
			return b, blobFiles(dir, res.Hash)
		}},
		{"fsstore/truncated plain file", func(t *testing.T, data []byte) (cas.Backend, func() []string) {
			dir := t.TempDir()
			b, err := fsstore.New(dir, fsstore.WithoutSync())
			require.NoError(t, err)
			res, err := cas.New(b).Put(t.Context(), bytes.NewReader(data))
			require.NoError(t, err)
			hex := res.Hash.String()
			truncateFile(t, filepath.Join(dir, "cas", hex[:2], hex), int64(len(data)/2))
			return b, blobFiles(dir, res.Hash)
		}},
		{"memstore/wrong decoded size", func(t *testing.T, data []byte) (cas.Backend, func() []string) {
			stored, h := goodStored(t, data)
			b := memstore.New()
			// The marker damaged: the frames are whole, the decoded size
			// recorded beside them is not theirs.
			require.NoError(t, b.Put(t.Context(), h.Key(), bytes.NewReader(stored), int64(len(stored)),
				cas.PutOptions{Encoding: cas.EncodingZstd, DecodedSize: int64(len(data)) + 1}))
			return b, nil
		}},
		{"memstore/truncated, marker lost", func(t *testing.T, data []byte) (cas.Backend, func() []string) {
			stored, h := goodStored(t, data)
			b := memstore.New()
			half := stored[:len(stored)/2]
			require.NoError(t, b.Put(t.Context(), h.Key(), bytes.NewReader(half), int64(len(half)), cas.PutOptions{}))
			return b, nil
		}},
		{"s3store/decoded size metadata unreadable", func(t *testing.T, data []byte) (cas.Backend, func() []string) {
			stored, h := goodStored(t, data)
			srv := s3test.New(t)
			key := h.Key()
			_, err := srv.Client.PutObject(t.Context(), &s3.PutObjectInput{
				Bucket: &srv.Bucket, Key: &key, Body: bytes.NewReader(stored),
				Metadata: map[string]string{"casa-encoding": cas.EncodingZstd, "casa-decoded-size": "lost"},
			})
			require.NoError(t, err)
			b := s3store.New(srv.Client, srv.Bucket)
			_, err = b.Stat(t.Context(), key)
			require.ErrorIs(t, err, cas.ErrCorrupt, "the damage is one Stat reports")
			return b, nil
		}},
		{"s3store/truncated", func(t *testing.T, data []byte) (cas.Backend, func() []string) {
			stored, h := goodStored(t, data)
			srv := s3test.New(t)
			b := s3store.New(srv.Client, srv.Bucket)
			half := stored[:len(stored)/2]
			require.NoError(t, b.Put(t.Context(), h.Key(), bytes.NewReader(half), int64(len(half)),
				cas.PutOptions{Encoding: cas.EncodingZstd, DecodedSize: int64(len(data))}))
			// Stat believes the marker; the size is right, the bytes are
			// not. Verify finds it; a Put cannot (see DESIGN.md).
			return b, nil
		}},
	}
}

// repairers are the Stores that Put a blob's good bytes over a damaged
// stored form: plain (fsstore: the staged route; others: spooled in memory
// or, with a small threshold, in a file) and compressing.
func repairers(t *testing.T, b cas.Backend) map[string]*cas.Store {
	return map[string]*cas.Store{
		"plain":               cas.New(b, cas.WithTempDir(t.TempDir())),
		"plain spooled":       cas.New(b, cas.WithTempDir(t.TempDir()), cas.WithSpoolThreshold(16<<10)),
		"compressing":         cas.New(b, cas.WithTempDir(t.TempDir()), cas.WithCompression(smallChunks)),
		"compressing spooled": cas.New(b, cas.WithTempDir(t.TempDir()), cas.WithCompression(smallChunks), cas.WithSpoolThreshold(16<<10)),
	}
}

// requireSound fails unless the blob h reads back as data through a plain
// Store, Verify passes, and a Put of data now deduplicates.
func requireSound(t *testing.T, b cas.Backend, h cas.Hash, data []byte) {
	t.Helper()
	s := cas.New(b, cas.WithTempDir(t.TempDir()))
	require.NoError(t, s.Verify(t.Context(), h))
	require.Equal(t, data, readAll(t, s, h))
	res, err := s.Put(t.Context(), bytes.NewReader(data))
	require.NoError(t, err)
	require.True(t, res.Deduplicated, "a sound blob deduplicates")
}

// TestPutRepairsCorrupt: a Put of a blob's bytes over a stored form that
// Stat reports corrupt (ErrCorrupt) or of the wrong size replaces it, on
// every route (fsstore's staged one, the spooled one, the compressed one)
// and backend: the Put succeeds, is not Deduplicated, and Verify and Open
// find the blob sound. Without the repair, the Put failed with ErrCorrupt
// or deduplicated onto the damage.
func TestPutRepairsCorrupt(t *testing.T) {
	t.Parallel()
	data := testutil.Text(40, 300<<10)
	h := cas.SumBytes(data)
	for _, dc := range damagedCases() {
		if dc.name == "s3store/truncated" {
			continue // TestPutCannotSeeDamageBehindStat
		}
		for name := range repairers(t, memstore.New()) {
			t.Run(dc.name+"/"+name, func(t *testing.T) {
				t.Parallel()
				b, files := dc.new(t, data)
				s := repairers(t, b)[name]
				require.Error(t, s.Verify(t.Context(), h), "damaged before the Put")
				res, err := s.Put(t.Context(), bytes.NewReader(data))
				require.NoError(t, err)
				require.Equal(t, cas.PutResult{Hash: h, Size: int64(len(data))}, res, "repaired: not Deduplicated")
				requireSound(t, b, h, data)
				if files != nil {
					require.Len(t, files(), 1, "one form of the blob on disk: %v", files())
				}
			})
		}
	}
}

// TestPutCannotSeeDamageBehindStat pins the limit of the repair: damage
// that Stat cannot see (a truncated compressed object whose marker still
// gives the right decoded size) deduplicates; Verify reports it, and
// Delete then Put repairs it.
func TestPutCannotSeeDamageBehindStat(t *testing.T) {
	t.Parallel()
	data := testutil.Text(41, 300<<10)
	h := cas.SumBytes(data)
	for _, dc := range damagedCases() {
		if dc.name != "s3store/truncated" {
			continue
		}
		b, _ := dc.new(t, data)
		s := cas.New(b, cas.WithTempDir(t.TempDir()))
		res, err := s.Put(t.Context(), bytes.NewReader(data))
		require.NoError(t, err)
		require.True(t, res.Deduplicated)
		require.ErrorIs(t, s.Verify(t.Context(), h), cas.ErrCorrupt)
		require.NoError(t, s.Delete(t.Context(), h))
		res, err = s.Put(t.Context(), bytes.NewReader(data))
		require.NoError(t, err)
		require.False(t, res.Deduplicated)
		requireSound(t, b, h, data)
	}
}

// TestPutRepairsCorruptConcurrently: Puts of a plain and of a compressing
// Store (two of each) repairing the same damaged blob at once all succeed
// and leave a sound blob: no writer removes another's fresh form (on
// fsstore a replacing write removes the other form only if it is still the
// stale file it saw).
func TestPutRepairsCorruptConcurrently(t *testing.T) {
	t.Parallel()
	data := testutil.Text(42, 200<<10)
	h := cas.SumBytes(data)
	for _, dc := range damagedCases() {
		if dc.name == "s3store/truncated" {
			continue
		}
		t.Run(dc.name, func(t *testing.T) {
			t.Parallel()
			rounds := 10
			if testing.Short() {
				rounds = 3
			}
			for round := range rounds {
				b, files := dc.new(t, data)
				rs := repairers(t, b)
				stores := []*cas.Store{rs["plain"], rs["compressing"], rs["plain spooled"], rs["compressing spooled"]}
				var wg sync.WaitGroup
				errs := make([]error, len(stores))
				for i, s := range stores {
					wg.Go(func() {
						_, errs[i] = s.Put(t.Context(), bytes.NewReader(data))
					})
				}
				wg.Wait()
				for i, err := range errs {
					require.NoError(t, err, "round %d, Put %d", round, i)
				}
				requireSound(t, b, h, data)
				if files != nil {
					// Both forms may remain after a race (harmless: Stat
					// prefers the plain file); each must be sound.
					fs := files()
					require.NotEmpty(t, fs)
					for _, f := range fs {
						requireSoundFile(t, f, data)
					}
				}
			}
		})
	}
}

// requireSoundFile fails unless the fsstore file at path holds data, as
// it is or compressed (.zst).
func requireSoundFile(t *testing.T, path string, data []byte) {
	t.Helper()
	p, err := os.ReadFile(path)
	require.NoError(t, err)
	if filepath.Ext(path) != ".zst" {
		require.Equal(t, data, p, path)
		return
	}
	b := memstore.New()
	h := cas.SumBytes(data)
	require.NoError(t, b.Put(t.Context(), h.Key(), bytes.NewReader(p), int64(len(p)), cas.PutOptions{Encoding: cas.EncodingZstd, DecodedSize: int64(len(data))}))
	require.NoError(t, cas.New(b).Verify(t.Context(), h), path)
}

// TestPutRepairsWithoutStagedReplacer: over a Stager whose Staged cannot
// CommitReplace (faulty's staging view of fsstore), the Store repairs by a
// Delete and a create-only Commit.
func TestPutRepairsWithoutStagedReplacer(t *testing.T) {
	t.Parallel()
	data := testutil.Text(43, 300<<10)
	dc := damagedCases()[0]
	require.Equal(t, "fsstore/truncated .zst", dc.name)
	inner, files := dc.new(t, data)
	b := faulty.New(inner).Staging()
	st, ok := b.(cas.Stager)
	require.True(t, ok)
	obj, err := st.Stage(t.Context())
	require.NoError(t, err)
	_, ok = obj.(cas.StagedReplacer)
	require.False(t, ok, "the view hides CommitReplace")
	require.NoError(t, obj.Abort())

	s := cas.New(b, cas.WithTempDir(t.TempDir()))
	res, err := s.Put(t.Context(), bytes.NewReader(data))
	require.NoError(t, err)
	require.False(t, res.Deduplicated)
	requireSound(t, inner, res.Hash, data)
	require.Len(t, files(), 1, "%v", files())
}

// TestHasCorrupt: Has of a blob whose stored form Stat reports corrupt
// returns Stat's error (wrapping ErrCorrupt), not false: the blob is
// stored but unreadable.
func TestHasCorrupt(t *testing.T) {
	t.Parallel()
	data := testutil.Text(44, 100<<10)
	for _, dc := range damagedCases() {
		if dc.name != "fsstore/truncated .zst" && dc.name != "s3store/decoded size metadata unreadable" {
			continue
		}
		b, _ := dc.new(t, data)
		ok, err := cas.New(b).Has(t.Context(), cas.SumBytes(data))
		require.ErrorIs(t, err, cas.ErrCorrupt, dc.name)
		require.False(t, ok)
	}
}

// TestStagedReplacerThroughChecked: the checked layer's Staged is a
// StagedReplacer exactly when the Backend's is, and its CommitReplace
// checks the digest as Commit does.
func TestStagedReplacerThroughChecked(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	fb, err := fsstore.New(t.TempDir(), fsstore.WithoutSync())
	require.NoError(t, err)
	for _, b := range []cas.Backend{fb, faulty.New(fb).Staging()} {
		_, want := mustStage(t, b).(cas.StagedReplacer)
		obj := mustStage(t, cas.Checked(b))
		r, ok := obj.(cas.StagedReplacer)
		require.Equal(t, want, ok, "%T", b)
		if !ok {
			require.NoError(t, obj.Abort())
			continue
		}
		_, err := fmt.Fprint(r, "new bytes")
		require.NoError(t, err)
		err = r.CommitReplace(ctx, cas.SumBytes([]byte("other bytes")).Key())
		require.ErrorIs(t, err, cas.ErrDigestMismatch)

		key := cas.SumBytes([]byte("replaced")).Key()
		require.NoError(t, fb.Put(ctx, key, bytes.NewReader([]byte("rotten")), 6, cas.PutOptions{}))
		r = mustStage(t, cas.Checked(b)).(cas.StagedReplacer)
		_, err = fmt.Fprint(r, "replaced")
		require.NoError(t, err)
		require.NoError(t, r.CommitReplace(ctx, key))
		info, err := fb.Stat(ctx, key)
		require.NoError(t, err)
		require.EqualValues(t, len("replaced"), info.Size)
	}
}

func mustStage(t *testing.T, b cas.Backend) cas.Staged {
	t.Helper()
	obj, err := b.(cas.Stager).Stage(context.Background())
	require.NoError(t, err)
	return obj
}

// TestPutConfirmDoesNotClaimRepair: when a create-only commit fails with
// ErrExists and the confirming Stat then finds a corrupt form (another
// writer stored it meanwhile), the Put fails with a retryable error and
// replaces nothing: its log must not say it is replacing the blob (it
// said "replacing a stored blob of the wrong size", which sends an
// operator looking for a repair that never happened).
func TestPutConfirmDoesNotClaimRepair(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	data := testutil.Text(45, 100<<10)
	h := cas.SumBytes(data)
	inner, err := fsstore.New(t.TempDir(), fsstore.WithoutSync())
	require.NoError(t, err)
	f := faulty.New(inner)
	f.SetBefore(faulty.MethodCommit, func(ctx context.Context, key string) error {
		// Another writer stores a corrupt form between the dedup check
		// and the commit.
		half := data[:len(data)/2]
		return inner.Put(ctx, key, bytes.NewReader(half), int64(len(half)), cas.PutOptions{})
	})
	var logs bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := cas.New(f.Staging(), cas.WithLogger(logger))
	_, err = s.Put(ctx, bytes.NewReader(data))
	require.Error(t, err)
	require.Contains(t, err.Error(), "retry")
	require.NotErrorIs(t, err, cas.ErrExists)
	mu.Lock()
	defer mu.Unlock()
	require.NotContains(t, logs.String(), "replacing", "nothing was replaced")
	info, err := inner.Stat(ctx, h.Key())
	require.NoError(t, err)
	require.EqualValues(t, len(data)/2, info.Size, "the other writer's form stays")
}

// lockedWriter is an io.Writer safe for concurrent use.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
