package cas_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/memstore"
	"github.com/casa-go/casa/internal/testutil"
	"github.com/casa-go/casa/internal/testutil/backendtest"
	"github.com/casa-go/casa/internal/testutil/faulty"
)

// TestPutHookRunsBeforeEveryWriteAndDeduplication: on the staged and the
// spooled Put paths of every Backend, the hook gets the blob's hash once
// per Put, before the Store writes it or finds it stored (the Backend has
// seen no Commit, Put or Stat of the key yet), also when the Put
// deduplicates; an error from the hook fails the Put and stores nothing.
func TestPutHookRunsBeforeEveryWriteAndDeduplication(t *testing.T) {
	t.Parallel()
	for _, c := range backendtest.All() {
		for _, staged := range []bool{true, false} {
			t.Run(c.Name+map[bool]string{true: "/staged", false: "/spooled"}[staged], func(t *testing.T) {
				t.Parallel()
				ctx := t.Context()
				f := faulty.New(c.New(t))
				var b cas.Backend = f
				if staged {
					b = f.Staging()
				}
				data := testutil.Bytes(1, 10_000)
				want := cas.SumBytes(data)
				var hooked []cas.Hash
				var seenBefore []int // backend calls on the key before the hook ran
				refuse := false
				store := cas.New(b, cas.WithPutHook(func(_ context.Context, h cas.Hash) error {
					hooked = append(hooked, h)
					seenBefore = append(seenBefore, f.Calls(faulty.MethodCommit)+f.Calls(faulty.MethodPut)+f.Calls(faulty.MethodStat))
					if refuse {
						return errors.New("refused")
					}
					return nil
				}))
				res, err := store.Put(ctx, bytes.NewReader(data))
				require.NoError(t, err)
				require.False(t, res.Deduplicated)
				res, err = store.Put(ctx, bytes.NewReader(data))
				require.NoError(t, err)
				require.True(t, res.Deduplicated)
				require.Equal(t, []cas.Hash{want, want}, hooked)
				calls := f.Calls(faulty.MethodCommit) + f.Calls(faulty.MethodPut) + f.Calls(faulty.MethodStat)
				require.Less(t, seenBefore[1], calls, "the deduplicating Put looked for the blob after the hook")
				require.Zero(t, seenBefore[0], "the first Put reached the Backend's key only after the hook")

				refuse = true
				other := testutil.Bytes(2, 100)
				_, err = store.Put(ctx, bytes.NewReader(other))
				require.ErrorContains(t, err, "refused")
				ok, err := store.Has(ctx, cas.SumBytes(other))
				require.NoError(t, err)
				require.False(t, ok, "a refused Put stores nothing")
			})
		}
	}
}

// TestStoreTouchRunsThePutHook: Touch runs the hook with the hash and
// returns its error; without a hook it does nothing.
func TestStoreTouchRunsThePutHook(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	h := cas.SumBytes([]byte("x"))
	require.NoError(t, cas.New(memstore.New()).Touch(ctx, h))
	var got []cas.Hash
	boom := errors.New("boom")
	store := cas.New(memstore.New(), cas.WithPutHook(func(_ context.Context, h cas.Hash) error {
		got = append(got, h)
		return boom
	}))
	require.ErrorIs(t, store.Touch(ctx, h), boom)
	require.Equal(t, []cas.Hash{h}, got)
}
