package cas

import (
	"crypto/rand"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSeekTableBoundsStoredFrame: a seek table whose frame claims more
// stored bytes than any chunk of MaxChunkSize compresses to is corrupt, so
// a reader never allocates a buffer the size of the whole object for one
// frame; the encoder's worst case (incompressible bytes) is within it.
func TestSeekTableBoundsStoredFrame(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		comp, dec uint32
		ok        bool
	}{
		"at the bound":         {maxStoredFrame, MaxChunkSize, true},
		"one byte over":        {maxStoredFrame + 1, MaxChunkSize, false},
		"a 1 GiB frame of one": {1 << 30, 1, false},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			table := appendSeekTable(nil, []uint32{tc.comp}, []uint32{tc.dec})
			_, err := parseSeekTable(table, seekEntryLen, int64(tc.comp)+int64(len(table)))
			if tc.ok {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, ErrCorrupt)
				require.ErrorIs(t, err, errSeekTable)
			}
		})
	}

	enc, err := newEncoder(&Compression{ChunkSize: MaxChunkSize, Level: 1})
	require.NoError(t, err)
	chunk := make([]byte, MaxChunkSize)
	_, _ = rand.Read(chunk)
	frame := enc.EncodeAll(chunk, nil)
	require.LessOrEqual(t, len(frame), maxStoredFrame, "the encoder's worst case fits the bound")
}
