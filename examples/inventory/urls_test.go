package main

import (
	"database/sql"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
)

// TestAttachmentJSONWithoutAServableURL: a stored row whose content type or
// filename no URL can carry (rows written before uploads checked them) gets
// a null download_url, not a URL that always answers 400.
func TestAttachmentJSONWithoutAServableURL(t *testing.T) {
	t.Parallel()
	a := &App{}
	key := sql.NullString{String: cas.SumBytes([]byte("x")).Key(), Valid: true}
	for _, tc := range []struct{ ct, filename string }{
		{"not a type", "a.bin"},
		{"image/png", "a\u202egnp.exe"},
	} {
		at := attachment{ContentType: sql.NullString{String: tc.ct, Valid: true}, Filename: sql.NullString{String: tc.filename, Valid: true}, StorageKey: key}
		j := a.attachmentJSON(at)
		require.Nil(t, j.DownloadURL, tc)
		require.Nil(t, j.ThumbnailURL, tc)
		require.Equal(t, tc.filename, *j.Filename)
	}
	at := attachment{ContentType: sql.NullString{String: "image/png", Valid: true}, Filename: sql.NullString{String: "a.png", Valid: true}, StorageKey: key}
	j := a.attachmentJSON(at)
	require.NotNil(t, j.DownloadURL)
	require.NotNil(t, j.ThumbnailURL)
}
