package backendtest_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/internal/testutil"
	"github.com/casa-go/casa/internal/testutil/backendtest"
)

// TestCases: every case makes independent, empty Backends that store and
// return bytes, keeps its temporary directories empty between Puts, and
// Corrupt changes what a later Open returns.
func TestCases(t *testing.T) {
	t.Parallel()
	var names []string
	backendtest.Each(t, func(t *testing.T, c backendtest.Case) {
		names = append(names, c.Name)
		ctx := context.Background()
		b := c.New(t)
		other := c.New(t)
		data := testutil.Bytes(1, 5000)
		h := cas.SumBytes(data)
		require.NoError(t, b.Put(ctx, h.Key(), bytes.NewReader(data), int64(len(data)), cas.PutOptions{IfAbsent: true}))
		require.Equal(t, data, read(t, b, h.Key()))
		_, err := other.Stat(ctx, h.Key())
		require.ErrorIs(t, err, cas.ErrNotFound, "each New is a separate, empty Backend")

		for _, dir := range c.TempDirs(b) {
			entries, err := os.ReadDir(dir)
			if !os.IsNotExist(err) {
				require.NoError(t, err)
			}
			require.Empty(t, entries, "temporary files left in %s", dir)
		}

		rotten := testutil.Bytes(2, 5000)
		c.Corrupt(t, b, h.Key(), rotten)
		require.Equal(t, rotten, read(t, b, h.Key()))
	})
	require.Equal(t, []string{"memstore", "fsstore", "s3store"}, names)
}

// TestEachParallel: EachParallel runs f once per case of All, in
// subtests named by the case that are parallel: none has run when
// EachParallel returns (a parallel subtest waits for its parent's
// function to end).
func TestEachParallel(t *testing.T) {
	t.Parallel()
	var (
		mu    sync.Mutex
		names []string
	)
	t.Run("group", func(t *testing.T) {
		backendtest.EachParallel(t, func(t *testing.T, c backendtest.Case) {
			require.True(t, strings.HasSuffix(t.Name(), "/"+c.Name), t.Name())
			mu.Lock()
			names = append(names, c.Name)
			mu.Unlock()
		})
		mu.Lock()
		defer mu.Unlock()
		require.Empty(t, names, "a case ran before EachParallel returned: not parallel")
	})
	require.ElementsMatch(t, []string{"memstore", "fsstore", "s3store"}, names)
}

func read(t *testing.T, b cas.Backend, key string) []byte {
	t.Helper()
	obj, err := b.Open(context.Background(), key)
	require.NoError(t, err)
	defer obj.Close()
	p, err := io.ReadAll(obj)
	require.NoError(t, err)
	return p
}
