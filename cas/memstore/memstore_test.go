package memstore_test

import (
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/castest"
	"github.com/casa-go/casa/cas/memstore"
)

func TestConformance(t *testing.T) {
	castest.Run(t, func(t *testing.T) cas.Backend { return memstore.New() })
}

// TestPutHostileSize: a declared size far beyond the bytes the reader holds
// fails with an error; it must not make Put preallocate it (a panic or an
// out-of-memory crash) and it stores nothing.
func TestPutHostileSize(t *testing.T) {
	t.Parallel()
	b := memstore.New()
	for _, size := range []int64{1 << 40, math.MaxInt64} {
		err := b.Put(t.Context(), "legacy/huge", strings.NewReader("small"), size, cas.PutOptions{})
		require.Error(t, err, "size %d", size)
		_, err = b.Stat(t.Context(), "legacy/huge")
		require.ErrorIs(t, err, cas.ErrNotFound)
	}
}
