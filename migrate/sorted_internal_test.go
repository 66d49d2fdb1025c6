package migrate

import (
	"context"
	"errors"
	"iter"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func seqOf(keys []string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		for _, k := range keys {
			if !yield(k, nil) {
				return
			}
		}
	}
}

// TestSortKeysMatchesSortInEveryRunSize: the on-disk sort gives
// slices.Sorted + Compact of the kept keys, in memory or spilled in runs
// of any size, for keys with newlines, NULs, non-ASCII, duplicates across
// runs and keys of the maximum length; its files are gone after stop, also
// when the caller stops reading early.
func TestSortKeysMatchesSortInEveryRunSize(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	keys := []string{"", "a\nb", "a\x00b", "é", "e", "日本", strings.Repeat("k", 1024), "Z", "z", "_", "-"}
	for range 500 {
		b := make([]byte, 1+rng.IntN(12))
		for i := range b {
			b[i] = "abAB_-./é\n"[rng.IntN(10)]
		}
		keys = append(keys, string(b))
	}
	keys = append(keys, keys[:100]...) // duplicates
	keep := func(k string) bool { return k != "drop" }
	want := slices.Compact(slices.Sorted(slices.Values(keys)))
	for _, memory := range []int{1, 100, 2000, 1 << 20} {
		dir := t.TempDir()
		seq, stop, err := sortKeys(context.Background(), seqOf(append(slices.Clone(keys), "drop")), keep, dir, memory)
		require.NoError(t, err)
		var got []string
		for k, err := range seq {
			require.NoError(t, err)
			got = append(got, k)
		}
		require.Equal(t, want, got, "memory %d", memory)

		// Stop early, then clean up.
		for range seq {
			break
		}
		stop()
		left, err := filepath.Glob(filepath.Join(dir, "*"))
		require.NoError(t, err)
		require.Empty(t, left, "memory %d: temporary files removed", memory)
	}
}

// TestSortKeysErrors: an error from the source, a cancelled context and an
// unwritable directory are returned and leave no files.
func TestSortKeysErrors(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	dir := t.TempDir()
	failing := func(yield func(string, error) bool) {
		for i := range 100 {
			if !yield(strings.Repeat("x", i), nil) {
				return
			}
		}
		yield("", boom)
	}
	_, stop, err := sortKeys(context.Background(), failing, func(string) bool { return true }, dir, 10)
	require.ErrorIs(t, err, boom)
	stop()
	left, _ := filepath.Glob(filepath.Join(dir, "*"))
	require.Empty(t, left)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err = sortKeys(ctx, seqOf([]string{"a"}), func(string) bool { return true }, dir, 10)
	require.ErrorIs(t, err, context.Canceled)

	_, _, err = sortKeys(context.Background(), seqOf([]string{"a", "b", "c"}), func(string) bool { return true }, filepath.Join(dir, "missing"), 1)
	require.ErrorIs(t, err, os.ErrNotExist)
}

// TestCursorRefusesUnorderedStreams: a cursor over keys that go backwards
// reports ErrUnordered instead of answering.
func TestCursorRefusesUnorderedStreams(t *testing.T) {
	t.Parallel()
	c := newCursor("test", seqOf([]string{"a", "c", "b"}))
	defer c.close()
	ok, err := c.contains("a")
	require.NoError(t, err)
	require.True(t, ok)
	_, err = c.contains("d")
	require.ErrorIs(t, err, ErrUnordered)
}
