package main

import (
	"bytes"
	"io"
	"net/http"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/internal/testutil"
	"github.com/casa-go/casa/internal/testutil/imagetest"
)

// TestCompress: with Compress (-compress), a text upload is stored
// zstd-compressed and a JPEG as it is; the text downloads byte for byte,
// and as the stored zstd stream to a client that accepts zstd.
func TestCompress(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, Config{Compress: true})
	part := ta.createPart("resistor")
	bom := testutil.Text(5, 300<<10)
	photo := imagetest.JPEG(120, 90)
	atBOM := ta.uploadOK(part, "bom", "bom.csv", "text/csv", bom)
	ta.uploadOK(part, "photo", "photo.jpg", "image/jpeg", photo)

	info, err := ta.backend.Stat(t.Context(), cas.SumBytes(bom).Key())
	require.NoError(t, err)
	require.Equal(t, cas.EncodingZstd, info.Encoding)
	require.EqualValues(t, len(bom), info.Size)
	info, err = ta.backend.Stat(t.Context(), cas.SumBytes(photo).Key())
	require.NoError(t, err)
	require.Empty(t, info.Encoding)

	status, _, body := ta.get(*atBOM.DownloadURL)
	require.Equal(t, http.StatusOK, status)
	require.True(t, bytes.Equal(bom, body), "identity download differs")

	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, ta.srv.URL+*atBOM.DownloadURL, nil)
	require.NoError(t, err)
	req.Header.Set("Accept-Encoding", "zstd")
	resp, err := ta.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "zstd", resp.Header.Get("Content-Encoding"))
	dec, err := zstd.NewReader(resp.Body)
	require.NoError(t, err)
	defer dec.Close()
	got, err := io.ReadAll(dec)
	require.NoError(t, err)
	require.True(t, bytes.Equal(bom, got), "zstd download differs")
}
