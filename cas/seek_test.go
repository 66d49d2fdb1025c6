package cas_test

import (
	"bytes"
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
)

// TestSeekOffset: SeekOffset agrees with bytes.Reader's Seek, the model
// io.Seeker, on every whence, including positions past the end, and fails
// where it fails (a negative result, an unknown whence) with the reason.
func TestSeekOffset(t *testing.T) {
	const size = 10
	for _, tc := range []struct {
		pos, offset int64
		whence      int
		wantErr     string
	}{
		{0, 0, io.SeekStart, ""},
		{3, 4, io.SeekStart, ""},
		{3, 4, io.SeekCurrent, ""},
		{3, -3, io.SeekCurrent, ""},
		{3, -4, io.SeekCurrent, "negative position -1"},
		{3, 0, io.SeekEnd, ""},
		{3, -10, io.SeekEnd, ""},
		{3, -11, io.SeekEnd, "negative position -1"},
		{3, 5, io.SeekEnd, ""},
		{3, 20, io.SeekStart, ""},
		{0, -1, io.SeekStart, "negative position -1"},
		{3, 0, 7, "invalid whence 7"},
	} {
		got, err := cas.SeekOffset(tc.pos, size, tc.offset, tc.whence)
		model := bytes.NewReader(make([]byte, size))
		_, merr := model.Seek(tc.pos, io.SeekStart)
		require.NoError(t, merr)
		want, merr := model.Seek(tc.offset, tc.whence)
		if tc.wantErr != "" {
			require.EqualError(t, err, tc.wantErr, "%+v", tc)
			require.Error(t, merr, "%+v: the model accepts it", tc)
			continue
		}
		require.NoError(t, err, "%+v", tc)
		require.NoError(t, merr, "%+v", tc)
		require.Equal(t, want, got, "%+v", tc)
	}
}
