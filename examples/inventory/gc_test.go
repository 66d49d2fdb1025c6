package main

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/memstore"
	"github.com/casa-go/casa/internal/testutil"
)

// TestGCDeletesBlobsOfDeletedAttachments: the blob of a deleted attachment
// is collected by a later start with -gc once it is older than the grace
// period, the blob a row still references stays, and uploads touch their
// blobs (attachments_casa_gc); in the blocking and the background (online)
// modes, on every database (forEachDB).
func TestGCDeletesBlobsOfDeletedAttachments(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{MigrateBlocking, MigrateOnline} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			forEachDB(t, func(t *testing.T, d testDB) {
				b := memstore.New()
				dir := d.dir
				app := serveApp(t, Config{DataDir: dir, DB: d.dsn, Backend: b, Migrate: MigrateBlocking})
				part := app.createPart("gc")
				kept := testutil.Bytes(1, 2000)
				gone := testutil.Bytes(2, 3000)
				gone2 := testutil.Bytes(3, 1000)
				app.uploadOK(part, "kept", "kept.bin", "application/octet-stream", kept)
				at := app.uploadOK(part, "gone", "gone.bin", "application/octet-stream", gone)
				at2 := app.uploadOK(part, "gone2", "gone2.bin", "application/octet-stream", gone2)
				var touched int
				require.NoError(t, app.db.QueryRowContext(t.Context(), "SELECT COUNT(*) FROM attachments_casa_gc").Scan(&touched))
				require.Equal(t, 3, touched, "every upload touched its blob")
				for _, id := range []int64{at.ID, at2.ID} {
					status, body := app.do("DELETE", "/api/parts/"+part+"/attachments/"+strconv.FormatInt(id, 10), "", nil)
					require.Equal(t, http.StatusNoContent, status, "%s", body)
				}
				require.NoError(t, app.Close())

				old := time.Now().Add(-48 * time.Hour)
				for _, data := range [][]byte{kept, gone} {
					require.True(t, b.SetModTime(cas.SumBytes(data).Key(), old))
				}
				// The touches of the uploads are recent: with a grace period
				// of an hour, "gone" would be kept for an hour after its
				// upload. Start with a grace period that its touch has passed.
				time.Sleep(5 * time.Millisecond)
				var progress bytes.Buffer
				app2, err := NewApp(t.Context(), Config{DataDir: dir, DB: d.dsn, Backend: b, Migrate: mode, GC: true, GCMinAge: time.Millisecond, Progress: &progress})
				require.NoError(t, err)
				if mode == MigrateOnline {
					require.Eventually(t, func() bool { r, _ := app2.GCReport(); return r != nil }, 10*time.Second, 10*time.Millisecond)
				}
				rep, err := app2.GCReport()
				require.NoError(t, err)
				require.NoError(t, app2.Close())
				require.Equal(t, 2, rep.Deleted, "%+v", rep)
				require.Equal(t, int64(len(gone)+len(gone2)), rep.Bytes)
				require.Equal(t, 1, rep.Referenced)
				if mode == MigrateBlocking {
					require.Contains(t, progress.String(), "gc: 2 unreferenced blobs deleted")
				}
				store := cas.New(b)
				for data, want := range map[*[]byte]bool{&kept: true, &gone: false, &gone2: false} {
					ok, err := store.Has(t.Context(), cas.SumBytes(*data))
					require.NoError(t, err)
					require.Equal(t, want, ok)
				}
			})
		})
	}
}

// TestGCKeepsRecentlyTouchedOrphan: with the default grace period, an
// orphan whose upload touched it is kept even when its ModTime is old (an
// upload that deduplicated against an old orphan and whose row has not
// committed yet looks exactly like that).
func TestGCKeepsRecentlyTouchedOrphan(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, d testDB) {
		b := memstore.New()
		dir := d.dir
		app := serveApp(t, Config{DataDir: dir, DB: d.dsn, Backend: b, Migrate: MigrateBlocking})
		data := testutil.Bytes(4, 500)
		h, err := app.uploads.Put(t.Context(), bytes.NewReader(data)) // stored, row never written
		require.NoError(t, err)
		require.NoError(t, app.Close())
		require.True(t, b.SetModTime(h.Hash.Key(), time.Now().Add(-48*time.Hour)))

		app2, err := NewApp(t.Context(), Config{DataDir: dir, DB: d.dsn, Backend: b, Migrate: MigrateBlocking, GC: true, Progress: io.Discard})
		require.NoError(t, err)
		rep, err := app2.GCReport()
		require.NoError(t, err)
		require.NoError(t, app2.Close())
		require.Zero(t, rep.Deleted)
		require.Equal(t, 1, rep.Touched, "%+v", rep)
	})
}

func TestParseFlagsGC(t *testing.T) {
	t.Parallel()
	o, err := parseFlags([]string{"-gc"}, io.Discard)
	require.NoError(t, err)
	require.True(t, o.gc)
	_, err = parseFlags([]string{"-revert", "-gc"}, io.Discard)
	require.ErrorContains(t, err, "-revert runs alone")
}

// TestCopyAttachmentTouchesBlob: a copy relies on the source row's blob, so
// it touches the blob (attachments_casa_gc) before inserting the new row,
// and refuses (409, no row) when the blob is gone: a collection that ran
// after the source row was read, once that row was deleted, must not leave
// the copy pointing at nothing.
func TestCopyAttachmentTouchesBlob(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, d testDB) {
		b := memstore.New()
		ta := serveApp(t, Config{DataDir: d.dir, DB: d.dsn, Backend: b, Migrate: MigrateBlocking})
		src, dst := ta.createPart("source"), ta.createPart("target")
		data := testutil.Bytes(5, 700)
		at := ta.uploadOK(src, "doc", "doc.bin", "application/octet-stream", data)
		key := cas.SumBytes(data).Key()
		_, err := ta.db.Exec("DELETE FROM attachments_casa_gc")
		require.NoError(t, err)

		copyPath := "/api/parts/" + src + "/attachments/" + strconv.FormatInt(at.ID, 10) + "/copy"
		ta.doJSON("POST", copyPath, map[string]string{"target_part_key": dst}, http.StatusCreated, nil)
		var n int
		require.NoError(t, ta.db.QueryRowContext(t.Context(), "SELECT COUNT(*) FROM attachments_casa_gc WHERE k = ?", key).Scan(&n))
		require.Equal(t, 1, n, "the copy touched the blob it relies on")

		// The blob went (a collection deleted it meanwhile): no dangling copy.
		require.NoError(t, b.Delete(t.Context(), key))
		rows := ta.rowCount("attachments")
		ta.doJSON("POST", copyPath, map[string]string{"target_part_key": dst}, http.StatusConflict, nil)
		require.Equal(t, rows, ta.rowCount("attachments"), "no row points at a missing blob")
	})
}
