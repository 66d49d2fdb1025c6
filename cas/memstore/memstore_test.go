package memstore_test

import (
	"io"
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
// must not make Put preallocate it (a panic or an out-of-memory crash).
// Through the checked layer it fails with io.ErrUnexpectedEOF and stores
// nothing; the thin Backend alone stores what it read.
func TestPutHostileSize(t *testing.T) {
	t.Parallel()
	b := memstore.New()
	for _, size := range []int64{1 << 40, math.MaxInt64} {
		err := cas.Checked(b).Put(t.Context(), "legacy/huge", strings.NewReader("small"), size, cas.PutOptions{})
		require.ErrorIs(t, err, io.ErrUnexpectedEOF, "size %d", size)
		_, err = b.Stat(t.Context(), "legacy/huge")
		require.ErrorIs(t, err, cas.ErrNotFound)

		require.NoError(t, b.Put(t.Context(), "legacy/thin", strings.NewReader("small"), size, cas.PutOptions{}), "size %d", size)
		info, err := b.Stat(t.Context(), "legacy/thin")
		require.NoError(t, err)
		require.Equal(t, int64(len("small")), info.Size)
	}
}
