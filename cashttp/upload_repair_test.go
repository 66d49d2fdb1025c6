package cashttp_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/fsstore"
	"github.com/casa-go/casa/internal/testutil"
)

// TestUploadRepairsCorrupt: the upload protocol lets a client that has
// the bytes repair a blob whose stored form is damaged, as Store.Put
// does (DESIGN.md, "Put repairs a corrupt stored form"). A form that
// Stat reports corrupt (a compressed file whose seek table is cut off)
// is missing to HEAD and to the batch, and a PUT of the bytes replaces
// it (201); a plain file cut short is not "already stored" to a PUT
// whose Content-Length is the blob's size: the body is read and replaces
// it (201). Before, the corrupt form made HEAD, the whole batch and the
// PUT fail with 500, and the short file was answered 200 without reading
// the body, so neither could ever be repaired through the protocol.
func TestUploadRepairsCorrupt(t *testing.T) {
	t.Parallel()
	data := testutil.Text(61, 300<<10)
	h := cas.SumBytes(data)
	other := cas.SumBytes([]byte("never stored"))
	for _, tc := range []struct {
		name     string
		compress bool
		suffix   string
		cut      int64
		// corrupt: Stat reports ErrCorrupt (else the size is wrong,
		// which a hash alone does not reveal to HEAD and the batch).
		corrupt bool
	}{
		{"compressed, seek table cut off", true, ".zst", 1000, true},
		{"plain, cut short", false, "", int64(len(data) / 2), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			b, err := fsstore.New(dir, fsstore.WithoutSync())
			require.NoError(t, err)
			var opts []cas.Option
			if tc.compress {
				opts = append(opts, cas.WithCompression(cas.Compression{ChunkSize: 64 << 10}))
			}
			_, err = cas.New(b, opts...).Put(t.Context(), bytes.NewReader(data))
			require.NoError(t, err)
			file := filepath.Join(dir, "cas", h.String()[:2], h.String()+tc.suffix)
			require.NoError(t, os.Chmod(file, 0o644))
			require.NoError(t, os.Truncate(file, tc.cut))
			require.Error(t, cas.New(b).Verify(t.Context(), h), "damaged")

			f := newUploadFixture(t, b)
			if tc.corrupt {
				r := f.req(t, http.MethodHead, "/"+h.String(), "", nil)
				require.Equal(t, http.StatusNotFound, r.StatusCode, "HEAD of a corrupt blob: missing, for the client to upload")
				body := fmt.Sprintf(`{"hashes": [%q, %q]}`, h, other)
				r = f.req(t, http.MethodPost, "/missing", "application/json", []byte(body))
				require.Equal(t, http.StatusOK, r.StatusCode, "%s", r.body)
				require.JSONEq(t, fmt.Sprintf(`{"missing":[%q, %q]}`, h, other), string(r.body))
			}
			r := f.req(t, http.MethodPut, "/"+h.String(), "", data)
			require.Equal(t, http.StatusCreated, r.StatusCode, "%s", r.body)
			require.JSONEq(t, fmt.Sprintf(`{"hash":%q,"size":%d}`, h, len(data)), string(r.body))
			s := cas.New(b)
			require.NoError(t, s.Verify(t.Context(), h), "repaired")
			obj, err := s.Open(t.Context(), h)
			require.NoError(t, err)
			got, err := io.ReadAll(obj)
			require.NoError(t, err)
			require.NoError(t, obj.Close())
			require.Equal(t, data, got)

			r = f.req(t, http.MethodPut, "/"+h.String(), "", data)
			require.Equal(t, http.StatusOK, r.StatusCode, "sound now: already stored")
			r = f.req(t, http.MethodHead, "/"+h.String(), "", nil)
			require.Equal(t, http.StatusOK, r.StatusCode)
		})
	}
}
