package thumbnail_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/memstore"
	"github.com/casa-go/casa/thumbnail"
)

func listFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	require.NoError(t, filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		require.NoError(t, err)
		if d.Type().IsRegular() {
			rel, err := filepath.Rel(dir, p)
			require.NoError(t, err)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	}))
	return out
}

func TestDirCacheRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	c, err := thumbnail.NewDirCache(dir, 0)
	require.NoError(t, err)
	_, ok, err := c.Get(ctx, "thumbnails/a_1.jpg")
	require.NoError(t, err)
	require.False(t, ok)

	require.NoError(t, c.Put(ctx, "thumbnails/a_1.jpg", []byte("one")))
	require.NoError(t, c.Put(ctx, "thumbnails/a_1.jpg", []byte("uno!")))
	b, ok, err := c.Get(ctx, "thumbnails/a_1.jpg")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, []byte("uno!"), b)
	require.EqualValues(t, 4, c.Size(), "a replaced entry is counted once")
	require.Equal(t, []string{"thumbnails/a_1.jpg"}, listFiles(t, dir), "no temporary files remain")

	// A file removed behind the cache's back is a miss, not an error.
	require.NoError(t, os.Remove(filepath.Join(dir, "thumbnails", "a_1.jpg")))
	_, ok, err = c.Get(ctx, "thumbnails/a_1.jpg")
	require.NoError(t, err)
	require.False(t, ok)
	require.Zero(t, c.Size())
}

func TestDirCacheRejectsBadKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	c, err := thumbnail.NewDirCache(filepath.Join(dir, "cache"), 0)
	require.NoError(t, err)
	for _, key := range []string{
		"", "../escape.jpg", "thumbnails/../../escape.jpg", "/etc/passwd", "a//b", "a/./b", ".",
		"thumbnails/.tmp-123", `a\b`, "a b", "a/b/", "naïve.jpg", "a\x00b", strings.Repeat("a", 600),
	} {
		require.Error(t, c.Put(ctx, key, []byte("x")), "%q", key)
		_, _, err := c.Get(ctx, key)
		require.Error(t, err, "%q", key)
	}
	require.Empty(t, listFiles(t, dir))
}

func TestDirCacheEvictsLeastRecentlyUsed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	c, err := thumbnail.NewDirCache(dir, 250)
	require.NoError(t, err)
	blob := func(b byte) []byte { return bytes.Repeat([]byte{b}, 100) }
	require.NoError(t, c.Put(ctx, "t/a", blob('a')))
	require.NoError(t, c.Put(ctx, "t/b", blob('b')))
	_, ok, err := c.Get(ctx, "t/a") // a is now more recent than b
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, c.Put(ctx, "t/c", blob('c')))
	require.Equal(t, []string{"t/a", "t/c"}, listFiles(t, dir))
	require.EqualValues(t, 200, c.Size())
	_, ok, err = c.Get(ctx, "t/b")
	require.NoError(t, err)
	require.False(t, ok)

	// An entry larger than the whole bound is not stored and evicts nothing.
	require.NoError(t, c.Put(ctx, "t/huge", bytes.Repeat([]byte{'h'}, 251)))
	require.Equal(t, []string{"t/a", "t/c"}, listFiles(t, dir))
	// One that fills the bound alone evicts everything else.
	require.NoError(t, c.Put(ctx, "t/full", bytes.Repeat([]byte{'f'}, 250)))
	require.Equal(t, []string{"t/full"}, listFiles(t, dir))
	require.EqualValues(t, 250, c.Size())
}

func TestDirCacheReopen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	c, err := thumbnail.NewDirCache(dir, 0)
	require.NoError(t, err)
	base := time.Now().Add(-time.Hour)
	for i, k := range []string{"t/old", "t/mid", "t/new"} {
		require.NoError(t, c.Put(ctx, k, bytes.Repeat([]byte{'x'}, 100)))
		mod := base.Add(time.Duration(i) * time.Minute)
		require.NoError(t, os.Chtimes(filepath.Join(dir, filepath.FromSlash(k)), mod, mod))
	}
	// A write interrupted by a crash leaves a temporary file.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "t", ".tmp-12345"), []byte("half"), 0o644))

	again, err := thumbnail.NewDirCache(dir, 0)
	require.NoError(t, err)
	require.EqualValues(t, 300, again.Size())
	require.NotContains(t, listFiles(t, dir), "t/.tmp-12345")

	// Reopened with a smaller bound: the oldest go first.
	smaller, err := thumbnail.NewDirCache(dir, 150)
	require.NoError(t, err)
	require.Equal(t, []string{"t/new"}, listFiles(t, dir))
	require.EqualValues(t, 100, smaller.Size())
}

func TestDirCacheConcurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	c, err := thumbnail.NewDirCache(dir, 1000)
	require.NoError(t, err)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			for j := range 20 {
				key := "t/k" + string(rune('a'+(i+j)%8))
				assert.NoError(t, c.Put(ctx, key, bytes.Repeat([]byte{byte(i)}, 50+j)))
				if b, ok, err := c.Get(ctx, key); err == nil && ok {
					assert.GreaterOrEqual(t, len(b), 50, "never a partial file")
				}
			}
		})
	}
	wg.Wait()
	require.LessOrEqual(t, c.Size(), int64(1000))
	var onDisk int64
	for _, f := range listFiles(t, dir) {
		require.False(t, strings.Contains(f, ".tmp-"))
		fi, err := os.Stat(filepath.Join(dir, filepath.FromSlash(f)))
		require.NoError(t, err)
		onDisk += fi.Size()
	}
	require.Equal(t, c.Size(), onDisk, "the index matches the directory")
}

func TestBackendCache(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := memstore.New()
	c := thumbnail.NewBackendCache(b)
	key := cas.DerivedKey(cas.ThumbnailPrefix, cas.SumBytes([]byte("abc")), "100.jpg")
	// The cache writes through cas.Checked: a key under the derived prefix
	// that names no blob is refused, and nothing is stored.
	require.ErrorIs(t, c.Put(ctx, "thumbnails/abc_100.jpg", []byte("jpeg bytes")), cas.ErrInvalidKey)
	_, err := b.Stat(ctx, "thumbnails/abc_100.jpg")
	require.ErrorIs(t, err, cas.ErrNotFound)
	_, ok, err := c.Get(ctx, key)
	require.NoError(t, err)
	require.False(t, ok)
	require.NoError(t, c.Put(ctx, key, []byte("jpeg bytes")))
	require.NoError(t, c.Put(ctx, key, []byte("jpeg bytes")), "a concurrent writer got there first")
	got, ok, err := c.Get(ctx, key)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, []byte("jpeg bytes"), got)
	info, err := b.Stat(ctx, key)
	require.NoError(t, err)
	require.EqualValues(t, len("jpeg bytes"), info.Size)

	// A backend failure is an error, not a miss.
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, _, err = c.Get(cancelled, key)
	require.ErrorIs(t, err, context.Canceled)
	require.NotErrorIs(t, err, cas.ErrNotFound)
}

// FuzzDirCacheKey: whatever the key, a Put either fails or writes a file
// inside the cache directory that Get returns.
func FuzzDirCacheKey(f *testing.F) {
	for _, k := range []string{"thumbnails/abc_1.jpg", "../x", "a/../../b", "/abs", "a//b", ".tmp-x", "a/./b", "C:\\x", "ok-key_1.jpg"} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, key string) {
		ctx := context.Background()
		root := t.TempDir()
		dir := filepath.Join(root, "cache")
		c, err := thumbnail.NewDirCache(dir, 0)
		require.NoError(t, err)
		if err := c.Put(ctx, key, []byte("v")); err != nil {
			require.Empty(t, listFiles(t, root))
			return
		}
		files := listFiles(t, root)
		require.Len(t, files, 1)
		require.True(t, strings.HasPrefix(files[0], "cache/"), "%q escaped to %q", key, files[0])
		b, ok, err := c.Get(ctx, key)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, []byte("v"), b)
	})
}

// TestDirCacheGetRacingPut has readers ask for keys while they are being
// written: a Get that found no file must not drop the index entry of a Put
// that published the file in the meantime (the file would then be on disk
// but outside the size bound for good).
func TestDirCacheGetRacingPut(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	c, err := thumbnail.NewDirCache(dir, 0)
	require.NoError(t, err)
	for i := range 200 {
		key := fmt.Sprintf("t/k%d", i)
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for {
					_, ok, err := c.Get(ctx, key)
					if !assert.NoError(t, err) || ok {
						return
					}
				}
			})
		}
		require.NoError(t, c.Put(ctx, key, bytes.Repeat([]byte{1}, 10)))
		wg.Wait()
	}
	var onDisk int64
	for _, f := range listFiles(t, dir) {
		fi, err := os.Stat(filepath.Join(dir, filepath.FromSlash(f)))
		require.NoError(t, err)
		onDisk += fi.Size()
	}
	require.Equal(t, onDisk, c.Size(), "the index matches the directory")
}

// TestNewDirCacheRejectsNegativeBound: a negative size bound is an error
// that names it, and creates nothing.
func TestNewDirCacheRejectsNegativeBound(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "cache")
	_, err := thumbnail.NewDirCache(dir, -1)
	require.ErrorContains(t, err, "NewDirCache")
	require.ErrorContains(t, err, "-1")
	_, statErr := os.Stat(dir)
	require.ErrorIs(t, statErr, os.ErrNotExist)
}
