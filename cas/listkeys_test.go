package cas_test

import (
	"bytes"
	"context"
	"iter"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/memstore"
)

// countingKeyLister is a memstore with a KeyLister that counts its calls.
type countingKeyLister struct {
	*memstore.Backend
	calls int
}

func (c *countingKeyLister) ListKeys(ctx context.Context, prefix string) iter.Seq2[cas.KeyInfo, error] {
	c.calls++
	return func(yield func(cas.KeyInfo, error) bool) {
		for info, err := range c.Backend.List(ctx, prefix) {
			if !yield(cas.KeyInfo{Key: info.Key, ModTime: info.ModTime, StoredSize: info.StoredSize}, err) {
				return
			}
		}
	}
}

// TestListKeys: cas.ListKeys uses the Backend's KeyLister, through the
// checked layer too, falls back to List without one, and ends with the
// context's error once the context is done.
func TestListKeys(t *testing.T) {
	t.Parallel()
	kl := &countingKeyLister{Backend: memstore.New()}
	for _, k := range []string{"b", "a", "c/d"} {
		require.NoError(t, kl.Put(t.Context(), k, bytes.NewReader([]byte(k)), int64(len(k)), cas.PutOptions{}))
	}
	for i, b := range []cas.Backend{kl, cas.Checked(kl), kl.Backend, cas.Checked(kl.Backend)} {
		usesKL := i < 2
		before := kl.calls
		var got []string
		for ki, err := range cas.ListKeys(t.Context(), b, "") {
			require.NoError(t, err)
			require.Equal(t, int64(len(ki.Key)), ki.StoredSize)
			require.False(t, ki.ModTime.IsZero())
			got = append(got, ki.Key)
		}
		require.Equal(t, []string{"a", "b", "c/d"}, got)
		if usesKL {
			require.Equal(t, before+1, kl.calls, "the KeyLister is used")
		} else {
			require.Equal(t, before, kl.calls)
		}

		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		n, errs := 0, 0
		for _, err := range cas.ListKeys(ctx, b, "") {
			if err != nil {
				require.ErrorIs(t, err, context.Canceled)
				errs++
				continue
			}
			n++
			cancel()
		}
		require.Equal(t, 1, n, "nothing after the context ends")
		require.Equal(t, 1, errs, "the context's error, once")
	}
}
