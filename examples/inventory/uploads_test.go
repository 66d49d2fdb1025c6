package main

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cashttp"
	"github.com/casa-go/casa/internal/testutil"
)

// TestUploadRoutes: the upload protocol is mounted on /api/uploads, apart
// from /api/cas: a client that hashed its files uploads only the missing
// ones through cashttp.UploadClient; the routes are protected like the
// app's other writes (a cross-site browser request is refused, the
// upload limit holds), and the serving route gives no existence answer
// for a blob it is not asked to serve with a valid URL.
func TestUploadRoutes(t *testing.T) {
	t.Parallel()
	ta := newTestApp(t, Config{MaxUpload: 1 << 20, SignKey: []byte("k")})
	c := &cashttp.UploadClient{BaseURL: ta.srv.URL + uploadPrefix, HTTP: ta.srv.Client()}
	files := [][]byte{testutil.Bytes(1, 5000), testutil.Bytes(2, 6000), testutil.Bytes(3, 7000)}
	var hs []cas.Hash
	for _, f := range files {
		hs = append(hs, cas.SumBytes(f))
	}
	_, err := ta.uploads.Put(t.Context(), bytes.NewReader(files[0]))
	require.NoError(t, err)

	missing, err := c.Missing(t.Context(), hs)
	require.NoError(t, err)
	require.Equal(t, hs[1:], missing)
	for _, h := range missing {
		i := map[cas.Hash]int{hs[1]: 1, hs[2]: 2}[h]
		stored, err := c.Put(t.Context(), h, bytes.NewReader(files[i]), int64(len(files[i])))
		require.NoError(t, err)
		require.True(t, stored)
	}
	ok, err := c.Exists(t.Context(), hs[2])
	require.NoError(t, err)
	require.True(t, ok)

	// Wrong bytes: 400, nothing stored.
	_, err = c.Put(t.Context(), cas.SumBytes([]byte("x")), bytes.NewReader([]byte("y")), 1)
	require.ErrorContains(t, err, "400")

	// Over the app's upload limit: 413.
	big := testutil.Bytes(4, 1<<20+1)
	_, err = c.Put(t.Context(), cas.SumBytes(big), bytes.NewReader(big), int64(len(big)))
	require.ErrorContains(t, err, "413")

	// A cross-site browser request is refused, as every other write is.
	req, err := http.NewRequest(http.MethodPut, ta.srv.URL+uploadPrefix+"/"+cas.SumBytes([]byte("z")).String(), bytes.NewReader([]byte("z")))
	require.NoError(t, err)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err := ta.srv.Client().Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	has, err := ta.store.Has(t.Context(), cas.SumBytes([]byte("z")))
	require.NoError(t, err)
	require.False(t, has)

	// The serving route (signed URLs) answers an unsigned probe with 403,
	// stored or not: no existence oracle there.
	for _, h := range []cas.Hash{hs[0], cas.SumBytes([]byte("never"))} {
		status, _ := ta.do(http.MethodHead, "/api/cas/"+h.String()+"?content_type=image/png", "", nil)
		require.Equal(t, http.StatusForbidden, status)
	}
}
