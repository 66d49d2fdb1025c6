package testutil_test

import (
	"bytes"
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/internal/testutil"
)

func TestBytes(t *testing.T) {
	t.Parallel()
	a := testutil.Bytes(1, 1000)
	require.Len(t, a, 1000)
	require.Equal(t, a, testutil.Bytes(1, 1000), "same seed, same bytes")
	require.Equal(t, a[:10], testutil.Bytes(1, 10), "a shorter call is a prefix")
	require.NotEqual(t, a, testutil.Bytes(2, 1000), "another seed, other bytes")
	require.Empty(t, testutil.Bytes(3, 0))
	// Not a constant fill: most byte values appear in 1000 random bytes.
	seen := map[byte]bool{}
	for _, c := range a {
		seen[c] = true
	}
	require.Greater(t, len(seen), 200)
}

func TestReader(t *testing.T) {
	t.Parallel()
	r := testutil.Reader(5, 3000)
	_, seeker := r.(io.Seeker)
	require.False(t, seeker, "Reader hides Seek")
	_, writerTo := r.(io.WriterTo)
	require.False(t, writerTo, "Reader hides WriteTo")
	got, err := io.ReadAll(r)
	require.NoError(t, err)
	require.True(t, bytes.Equal(testutil.Bytes(5, 3000), got), "Reader yields Bytes")
}
