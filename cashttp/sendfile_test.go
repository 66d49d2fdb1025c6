package cashttp_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/fsstore"
	"github.com/casa-go/casa/cas/memstore"
	"github.com/casa-go/casa/cashttp"
	"github.com/casa-go/casa/internal/testutil"
)

// readFromRecorder is a ResponseWriter with ReadFrom, like net/http's, that
// records what reaches ReadFrom.
type readFromRecorder struct {
	*httptest.ResponseRecorder
	srcs []io.Reader
}

func (r *readFromRecorder) ReadFrom(src io.Reader) (int64, error) {
	r.srcs = append(r.srcs, src)
	return io.Copy(r.ResponseRecorder, src)
}

// TestSendfilePath proves that with fsstore the bytes reach the
// ResponseWriter's ReadFrom as an *io.LimitedReader around something that
// is a syscall.Conn (the *os.File), which is what net/http hands to
// sendfile(2); memstore bytes take the ordinary copy.
func TestSendfilePath(t *testing.T) {
	t.Parallel()
	fs, err := fsstore.New(t.TempDir(), fsstore.WithoutSync())
	require.NoError(t, err)
	for _, tt := range []struct {
		name     string
		b        cas.Backend
		sendfile bool
	}{
		{"fsstore", fs, true},
		{"memstore", memstore.New(), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			store := cas.New(tt.b)
			data := testutil.Bytes(9, 64<<10)
			res, err := store.Put(context.Background(), bytes.NewReader(data))
			require.NoError(t, err)
			for _, rng := range []string{"", "bytes=10-20000"} {
				w := &readFromRecorder{ResponseRecorder: httptest.NewRecorder()}
				req := httptest.NewRequest(http.MethodGet, urls.Inline(res.Hash, "application/octet-stream"), nil)
				if rng != "" {
					req.Header.Set("Range", rng)
				}
				cashttp.NewHandler(store).ServeHTTP(w, req)
				require.Len(t, w.srcs, 1, "the body goes through ReadFrom")
				lr, ok := w.srcs[0].(*io.LimitedReader)
				require.True(t, ok, "got %T", w.srcs[0])
				_, isConn := lr.R.(syscall.Conn)
				require.Equal(t, tt.sendfile, isConn, "got %T", lr.R)
				if rng == "" {
					require.Equal(t, http.StatusOK, w.Code)
					require.True(t, bytes.Equal(data, w.Body.Bytes()))
				} else {
					require.Equal(t, http.StatusPartialContent, w.Code)
					require.True(t, bytes.Equal(data[10:20001], w.Body.Bytes()))
				}
			}
		})
	}
}
