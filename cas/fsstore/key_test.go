package fsstore

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
)

func FuzzCheckKey(f *testing.F) {
	h := cas.SumBytes([]byte("x")).String()
	for _, s := range []string{
		"", "a", "legacy/0b7e6c2a", "thumbnails/" + h + "_150.jpg", "cas/" + h, "cas/" + strings.ToUpper(h),
		"cas", "cas/x", ".tmp", ".tmp/x", "a/.tmp", "..", "../x", "a/../../b", "/etc/passwd", "a//b", "a/",
		"./a", "a/.", "a\\b", "..\\x", "a\x00b", "\xff", "C:/x", "C:\\x", "...", "a..b", strings.Repeat("a", 256),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		err := checkKey(key)
		if err != nil {
			require.ErrorIs(t, err, ErrInvalidKey)
			return
		}
		rel := relPath(key)
		require.True(t, filepath.IsLocal(rel), "valid key %q maps to non-local path %q", key, rel)
		require.NotEqual(t, tmpDir, strings.Split(filepath.ToSlash(rel), "/")[0], "valid key %q maps into the temp dir", key)
		// The mapping is reversible: what List reconstructs is the key.
		back := filepath.ToSlash(rel)
		if cas.IsKey(key) {
			parts := strings.Split(back, "/")
			require.Len(t, parts, 3)
			require.Equal(t, parts[2][:2], parts[1], "shard of %q", key)
			back = parts[0] + "/" + parts[2]
		} else {
			require.False(t, strings.HasPrefix(key, "cas/") || key == "cas", "non-CAS key %q accepted under cas", key)
		}
		require.Equal(t, key, back)
	})
}
