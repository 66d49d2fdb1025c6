package cas_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
)

func TestCheckKey(t *testing.T) {
	t.Parallel()
	h := cas.SumBytes([]byte("key"))
	for _, key := range []string{
		h.Key(),
		"legacy/6f1c3a1e-8b7d-4f0e-9a55-0c1d2e3f4a5b",
		"6f1c3a1e-8b7d-4f0e-9a55-0c1d2e3f4a5b",
		cas.DerivedKey(cas.ThumbnailPrefix, h, "150.jpg"),
		"a/b/c.d",
		"with space/ünïcode ✓",
		"dir/.hidden", // only a first segment with a dot is reserved
		"cascade/x",   // not under cas/
		strings.Repeat("a", cas.MaxSegmentLen),
		strings.Repeat("a/", cas.MaxKeyLen/2-1) + "ab",
	} {
		require.NoError(t, cas.CheckKey(key), "%q", key)
	}
	hostile := []struct{ name, key string }{
		{"empty", ""},
		{"leading slash", "/etc/passwd"},
		{"trailing slash", "dir/"},
		{"dot dot", "a/../b"},
		{"leading dot dot", "../b"},
		{"dot segment", "a/./b"},
		{"empty segment", "a//b"},
		{"backslash", `a\b`},
		{"windows escape", `..\..\x`},
		{"NUL", "a\x00b"},
		{"newline", "a\nb"},
		{"DEL", "a\x7fb"},
		{"invalid UTF-8", "a\xffb"},
		{"reserved tmp", ".tmp/put-123"},
		{"reserved dot", ".git"},
		{"bare cas", "cas"},
		{"cas dir", "cas/"},
		{"short CAS key", h.Key()[:67]},
		{"uppercase CAS key", strings.ToUpper(h.Key()[:4]) + h.String()},
		{"upper hex CAS key", cas.KeyPrefix + strings.ToUpper(h.String())},
		{"nested under cas", h.Key() + "/x"},
		{"other under cas", "cas/readme"},
		{"long segment", strings.Repeat("a", cas.MaxSegmentLen+1)},
		{"long key", strings.Repeat("a/", cas.MaxKeyLen/2) + "a"},
	}
	for _, tc := range hostile {
		t.Run(tc.name, func(t *testing.T) {
			err := cas.CheckKey(tc.key)
			require.ErrorIs(t, err, cas.ErrInvalidKey)
		})
	}
}

func TestKeySpace(t *testing.T) {
	t.Parallel()
	h := cas.SumBytes([]byte("derived"))
	thumb := cas.DerivedKey(cas.ThumbnailPrefix, h, "150.jpg")
	require.Equal(t, "thumbnails/"+h.String()+"_150.jpg", thumb)
	require.True(t, cas.IsDerivedKey(thumb))
	require.False(t, cas.IsDerivedKey(h.Key()))
	require.False(t, cas.IsDerivedKey("legacy/thumbnails/x"))
	require.False(t, cas.IsKey(thumb))

	p := cas.DerivedPrefixes()
	require.Contains(t, p, cas.ThumbnailPrefix)
	p[0] = "changed/"
	require.Contains(t, cas.DerivedPrefixes(), cas.ThumbnailPrefix, "DerivedPrefixes returns a copy")
}

// FuzzCheckKey: CheckKey never panics, its errors wrap ErrInvalidKey, and a
// key it accepts can neither climb out of a directory nor hide in a
// backend's reserved names.
func FuzzCheckKey(f *testing.F) {
	h := cas.SumBytes([]byte("fuzz"))
	for _, s := range []string{h.Key(), "a/../b", ".tmp/x", "cas/x", "a\x00", "legacy/uuid", "a//b", `a\b`, "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		err := cas.CheckKey(key)
		if err != nil {
			if !errors.Is(err, cas.ErrInvalidKey) {
				t.Fatalf("CheckKey(%q) = %v, not ErrInvalidKey", key, err)
			}
			return
		}
		for _, seg := range strings.Split(key, "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("CheckKey accepted %q", key)
			}
		}
		if strings.HasPrefix(key, ".") || strings.ContainsAny(key, "\x00\\") || len(key) > cas.MaxKeyLen {
			t.Fatalf("CheckKey accepted %q", key)
		}
		if strings.HasPrefix(key, cas.KeyPrefix) && !cas.IsKey(key) {
			t.Fatalf("CheckKey accepted %q under %s", key, cas.KeyPrefix)
		}
	})
}
