package fsstore_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/castest"
	"github.com/casa-go/casa/cas/fsstore"
	"github.com/casa-go/casa/cas/memstore"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	castest.Run(t, func(t *testing.T) cas.Backend {
		b, err := fsstore.New(t.TempDir())
		require.NoError(t, err)
		return b
	})
}

func TestConformanceWithoutSync(t *testing.T) {
	t.Parallel()
	castest.Run(t, func(t *testing.T) cas.Backend {
		b, err := fsstore.New(t.TempDir(), fsstore.WithoutSync())
		require.NoError(t, err)
		return b
	})
}

func newBackend(t *testing.T) *fsstore.Backend {
	t.Helper()
	b, err := fsstore.New(t.TempDir())
	require.NoError(t, err)
	return b
}

// tree returns every path under dir, relative and slash-separated, with
// "/" appended to directories.
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			rel += "/"
		}
		paths = append(paths, rel)
		return nil
	})
	require.NoError(t, err)
	return paths
}

// requireNoTemps fails when the temp directory of b holds any file.
func requireNoTemps(t *testing.T, b *fsstore.Backend) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(b.Dir(), ".tmp"))
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	require.Empty(t, names, "temp files left behind")
}

func TestHostileKeys(t *testing.T) {
	t.Parallel()
	h := cas.SumBytes([]byte("x")).String()
	hostile := []string{
		"", "/", "//", "/etc/passwd", "..", "../x", "../../etc/passwd", "a/..", "a/../b", "a/../../b",
		".", "./a", "a/.", "a/./b", "a//b", "a/", "/a", "a\\b", "..\\..\\x", "\\x", "a\x00b", "\x00",
		"\xff\xfe", "a/\xc3", strings.Repeat("s", 256), "a/" + strings.Repeat("s", 256), strings.Repeat("abcdefg/", 128) + "x",
		".tmp", ".tmp/put-1", ".tmp/x/y", "...", ".hidden", "cas", "cas/", "cas/x", "cas/" + h[:63], "cas/" + h + "0",
		"cas/" + strings.ToUpper(h), "cas/" + h[:2] + "/" + h, "cas/" + h + "/x",
	}
	parent := t.TempDir()
	dir := filepath.Join(parent, "root")
	b, err := fsstore.New(dir)
	require.NoError(t, err)
	ctx := t.Context()
	before := tree(t, parent)
	for _, key := range hostile {
		_, err := b.Stat(ctx, key)
		require.ErrorIs(t, err, fsstore.ErrInvalidKey, "Stat %q", key)
		require.NotErrorIs(t, err, cas.ErrNotFound, "Stat %q", key)
		_, err = b.Open(ctx, key)
		require.ErrorIs(t, err, fsstore.ErrInvalidKey, "Open %q", key)
		err = b.Put(ctx, key, strings.NewReader("x"), 1, cas.PutOptions{})
		require.ErrorIs(t, err, fsstore.ErrInvalidKey, "Put %q", key)
		err = b.Put(ctx, key, strings.NewReader("x"), 1, cas.PutOptions{IfAbsent: true})
		require.ErrorIs(t, err, fsstore.ErrInvalidKey, "Put IfAbsent %q", key)
		require.ErrorIs(t, b.Delete(ctx, key), fsstore.ErrInvalidKey, "Delete %q", key)
		st, err := b.Stage(ctx)
		require.NoError(t, err)
		_, err = st.Write([]byte("x"))
		require.NoError(t, err)
		require.ErrorIs(t, st.Commit(ctx, key), fsstore.ErrInvalidKey, "Commit %q", key)
		require.Equal(t, before, tree(t, parent), "the tree changed after operations on %q", key)
	}

	// Keys that look odd but are safe are accepted.
	for _, key := range []string{"a..b", "a/.hidden", "a/.tmp", "a/...", "cassette", "cas-x", "x/cas/y",
		"x/" + strings.Repeat("s", 255), "sp ace/ünï", "a:b"} {
		require.NoError(t, b.Put(ctx, key, strings.NewReader(key), int64(len(key)), cas.PutOptions{}), "Put %q", key)
		info, err := b.Stat(ctx, key)
		require.NoError(t, err)
		require.Equal(t, int64(len(key)), info.Size)
		_, err = os.Stat(filepath.Join(dir, filepath.FromSlash(key)))
		require.NoError(t, err, "%q is stored at its own path", key)
	}
	out, err := os.ReadDir(parent)
	require.NoError(t, err)
	require.Len(t, out, 1, "nothing was written outside the root")
}

func TestCollidingKeys(t *testing.T) {
	t.Parallel()
	b := newBackend(t)
	ctx := t.Context()
	require.NoError(t, b.Put(ctx, "legacy/x", strings.NewReader("x"), 1, cas.PutOptions{}))
	for _, opts := range []cas.PutOptions{{}, {IfAbsent: true}} {
		// "legacy" is a directory of keys, "legacy/x" a file.
		err := b.Put(ctx, "legacy", strings.NewReader("y"), 1, opts)
		require.ErrorIs(t, err, fsstore.ErrInvalidKey)
		require.NotErrorIs(t, err, cas.ErrExists)
		err = b.Put(ctx, "legacy/x/y", strings.NewReader("y"), 1, opts)
		require.ErrorIs(t, err, fsstore.ErrInvalidKey)
	}
	_, err := b.Stat(ctx, "legacy")
	require.ErrorIs(t, err, cas.ErrNotFound, "a directory of keys is no object")
	_, err = b.Stat(ctx, "legacy/x/y")
	require.ErrorIs(t, err, cas.ErrNotFound)
	requireNoTemps(t, b)
}

func TestLayoutAndReadOnly(t *testing.T) {
	t.Parallel()
	b := newBackend(t)
	s := cas.New(b)
	res, err := s.Put(t.Context(), strings.NewReader("hello, world\n"))
	require.NoError(t, err)
	require.NoError(t, b.Put(t.Context(), "legacy/doc.pdf", strings.NewReader("pdf"), 3, cas.PutOptions{}))
	hex := res.Hash.String()
	want := []string{"cas/", "cas/" + hex[:2] + "/", "cas/" + hex[:2] + "/" + hex, "legacy/", "legacy/doc.pdf"}
	require.Empty(t, cmp.Diff(want, tree(t, b.Dir())[1:]), "layout (after .tmp/)")

	for _, p := range []string{filepath.Join(b.Dir(), "cas", hex[:2], hex), filepath.Join(b.Dir(), "legacy", "doc.pdf")} {
		fi, err := os.Stat(p)
		require.NoError(t, err)
		require.Equal(t, fs.FileMode(0o444), fi.Mode().Perm(), "%s is read-only", p)
		if os.Geteuid() != 0 { // root ignores permissions
			_, err = os.OpenFile(p, os.O_WRONLY, 0)
			require.ErrorIs(t, err, fs.ErrPermission)
		}
	}
}

func TestObjectIsFile(t *testing.T) {
	t.Parallel()
	b := newBackend(t)
	p := bytes.Repeat([]byte("0123456789"), 10_000)
	require.NoError(t, b.Put(t.Context(), "legacy/file", bytes.NewReader(p), int64(len(p)), cas.PutOptions{}))
	obj, err := b.Open(t.Context(), "legacy/file")
	require.NoError(t, err)
	f, ok := obj.(*fsstore.Object)
	require.True(t, ok, "Open returns *fsstore.Object, got %T", obj)
	// cas.FileObject: net.TCPConn.ReadFrom uses sendfile(2) for the file.
	fo, ok := obj.(cas.FileObject)
	require.True(t, ok, "Object implements cas.FileObject")
	require.Same(t, f.File(), fo.File())
	fi, err := f.File().Stat()
	require.NoError(t, err)
	require.Equal(t, int64(len(p)), fi.Size())
	_, err = f.File().Write([]byte("x"))
	require.Error(t, err, "an Object is read-only")
	require.NoError(t, obj.Close())
	_, err = f.File().Stat()
	require.ErrorIs(t, err, os.ErrClosed, "Close of the Object closes its file")

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		obj, err := b.Open(r.Context(), "legacy/file")
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer obj.Close()
		http.ServeContent(w, r, "", obj.Info().ModTime, obj)
	}))
	defer srv.Close()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL, nil)
	require.NoError(t, err)
	req.Header.Set("Range", "bytes=1000-50999")
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusPartialContent, resp.StatusCode)
	require.True(t, bytes.Equal(p[1000:51000], body), "ranged body")
}

// failAfter returns n bytes of r, then err.
type failAfter struct {
	r   io.Reader
	n   int
	err error
}

func (f *failAfter) Read(p []byte) (int, error) {
	if f.n <= 0 {
		if f.err == nil {
			return 0, io.EOF
		}
		return 0, f.err
	}
	p = p[:min(len(p), f.n)]
	n, err := f.r.Read(p)
	f.n -= n
	return n, err
}

func TestNoTempsLeftBehind(t *testing.T) {
	t.Parallel()
	b := newBackend(t)
	ctx := t.Context()
	big := bytes.Repeat([]byte("abcdefgh"), 1<<20) // 8 MiB, past the writeback chunk
	h := cas.SumBytes(big)
	errBoom := errors.New("boom")
	cancelled, cancel := context.WithCancel(ctx)
	cancel()

	require.NoError(t, b.Put(ctx, "legacy/exists", strings.NewReader("e"), 1, cas.PutOptions{}))
	// Sizes, digests and contexts are the checked layer's: those cases
	// call the Backend through it, as a Store does.
	cb := cas.Checked(b)
	cases := []struct {
		name string
		run  func() error
		want error
	}{
		{"failing reader", func() error {
			return b.Put(ctx, "legacy/a", &failAfter{bytes.NewReader(big), 5 << 20, errBoom}, int64(len(big)), cas.PutOptions{})
		}, errBoom},
		{"digest mismatch", func() error {
			return cb.Put(ctx, "legacy/a", bytes.NewReader(big), int64(len(big)), cas.PutOptions{SHA256: cas.SumBytes(nil)})
		}, cas.ErrDigestMismatch},
		{"short body", func() error {
			return cb.Put(ctx, "legacy/a", bytes.NewReader(big), int64(len(big))+1, cas.PutOptions{})
		}, nil},
		{"long body", func() error {
			return cb.Put(ctx, "legacy/a", bytes.NewReader(big), int64(len(big))-1, cas.PutOptions{})
		}, nil},
		{"cancelled", func() error {
			return cb.Put(cancelled, "legacy/a", bytes.NewReader(big), int64(len(big)), cas.PutOptions{})
		}, context.Canceled},
		{"cancelled midway", func() error {
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			r := &failAfter{bytes.NewReader(big), 3 << 20, nil}
			return cb.Put(ctx, "legacy/a", io.MultiReader(r, readerFunc(func([]byte) (int, error) { cancel(); return 0, io.EOF }), bytes.NewReader(big)), 2*int64(len(big)), cas.PutOptions{})
		}, context.Canceled},
		{"exists", func() error {
			return b.Put(ctx, "legacy/exists", bytes.NewReader(big), int64(len(big)), cas.PutOptions{IfAbsent: true})
		}, cas.ErrExists},
		{"commit exists", func() error {
			st, err := b.Stage(ctx)
			require.NoError(t, err)
			_, err = st.Write(big)
			require.NoError(t, err)
			return st.Commit(ctx, "legacy/exists")
		}, cas.ErrExists},
		{"commit cancelled", func() error {
			st, err := b.Stage(ctx)
			require.NoError(t, err)
			_, err = st.Write(big)
			require.NoError(t, err)
			return st.Commit(cancelled, "legacy/a")
		}, context.Canceled},
		{"abort", func() error {
			st, err := b.Stage(ctx)
			require.NoError(t, err)
			_, err = st.Write(big)
			require.NoError(t, err)
			require.NoError(t, st.Abort())
			require.NoError(t, st.Abort(), "a second Abort is a no-op")
			_, err = st.Write(big)
			return err
		}, nil},
		{"store too large", func() error {
			_, err := cas.New(b, cas.WithMaxSize(1<<20)).Put(ctx, bytes.NewReader(big))
			return err
		}, cas.ErrTooLarge},
		{"store verified mismatch", func() error {
			_, err := cas.New(b).PutVerified(ctx, cas.SumBytes(nil), bytes.NewReader(big))
			return err
		}, cas.ErrDigestMismatch},
		{"store cancelled midway", func() error {
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			r := io.MultiReader(bytes.NewReader(big), readerFunc(func([]byte) (int, error) { cancel(); return 0, io.EOF }), bytes.NewReader(big))
			_, err := cas.New(b).Put(ctx, r)
			return err
		}, context.Canceled},
	}
	for _, tc := range cases {
		err := tc.run()
		require.Error(t, err, tc.name)
		if tc.want != nil {
			require.ErrorIs(t, err, tc.want, tc.name)
		}
		requireNoTemps(t, b)
		_, err = b.Stat(ctx, "legacy/a")
		require.ErrorIs(t, err, cas.ErrNotFound, "%s: nothing published", tc.name)
		_, err = b.Stat(ctx, h.Key())
		require.ErrorIs(t, err, cas.ErrNotFound, "%s: nothing published", tc.name)
		got := make([]byte, 2)
		obj, err := b.Open(ctx, "legacy/exists")
		require.NoError(t, err)
		n, _ := io.ReadFull(obj, got)
		require.NoError(t, obj.Close())
		require.Equal(t, "e", string(got[:n]), "%s: existing object intact", tc.name)
	}

	// And after successes.
	require.NoError(t, b.Put(ctx, "legacy/a", bytes.NewReader(big), int64(len(big)), cas.PutOptions{SHA256: h, IfAbsent: true}))
	require.NoError(t, b.Put(ctx, "legacy/a", bytes.NewReader(big[:10]), 10, cas.PutOptions{}))
	res, err := cas.New(b).Put(ctx, bytes.NewReader(big))
	require.NoError(t, err)
	require.Equal(t, h, res.Hash)
	requireNoTemps(t, b)
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

func TestCrashLeftovers(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b, err := fsstore.New(dir)
	require.NoError(t, err)
	ctx := t.Context()
	p := []byte("the whole blob")
	h := cas.SumBytes(p)

	// Two writes in progress (never committed), one of them for hours.
	for range 2 {
		st, err := b.Stage(ctx)
		require.NoError(t, err)
		_, err = st.Write(p[:5])
		require.NoError(t, err)
	}
	temps, err := os.ReadDir(filepath.Join(dir, ".tmp"))
	require.NoError(t, err)
	require.Len(t, temps, 2)
	old := time.Now().Add(-2 * time.Hour)
	require.NoError(t, os.Chtimes(filepath.Join(dir, ".tmp", temps[0].Name()), old, old))
	// A crashed write's file: nobody holds it. (TestCrashedWriterSwept
	// kills a real writer process.)
	crashed := filepath.Join(dir, ".tmp", "put-crashed")
	require.NoError(t, os.WriteFile(crashed, p[:7], 0o444))

	// After the "restart" the leftovers are no object, and are not listed.
	b2, err := fsstore.New(dir, fsstore.WithStaleTempAge(time.Hour))
	require.NoError(t, err)
	for _, key := range []string{h.Key(), ".tmp/" + temps[1].Name()} {
		_, err := b2.Stat(ctx, key)
		require.Error(t, err, key)
	}
	for info, err := range b2.List(ctx, "") {
		require.NoError(t, err)
		require.Fail(t, "listed a leftover", info.Key)
	}
	left, err := os.ReadDir(filepath.Join(dir, ".tmp"))
	require.NoError(t, err)
	var names []string
	for _, e := range left {
		names = append(names, e.Name())
	}
	if runtime.GOOS == "linux" {
		require.ElementsMatch(t, []string{temps[0].Name(), temps[1].Name()}, names,
			"the crashed write's file was swept at once, the live ones kept, however old")
	} else {
		require.ElementsMatch(t, []string{temps[1].Name(), "put-crashed"}, names,
			"without locks: the old file was swept, the fresh ones kept")
	}

	// Writing the blob for real works, and a sweep of age zero is off.
	_, err = cas.New(b2).Put(ctx, bytes.NewReader(p))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(crashed, p[:7], 0o444))
	_, err = fsstore.New(dir, fsstore.WithStaleTempAge(0))
	require.NoError(t, err)
	require.FileExists(t, crashed)
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	_, err := fsstore.New("")
	require.Error(t, err)
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o644))
	_, err = fsstore.New(file)
	require.Error(t, err, "a file is no directory")
	b, err := fsstore.New(filepath.Join(t.TempDir(), "new", "nested"))
	require.NoError(t, err, "New creates the directory")
	require.DirExists(t, b.Dir())
	require.True(t, filepath.IsAbs(b.Dir()))
}

func TestListSkipsForeignFiles(t *testing.T) {
	t.Parallel()
	b := newBackend(t)
	h := cas.SumBytes([]byte("blob"))
	require.NoError(t, b.Put(t.Context(), h.Key(), strings.NewReader("blob"), 4, cas.PutOptions{}))
	// Files that no key maps to: a shard holding a wrong name, a file
	// directly in cas/, a symlink.
	dir := b.Dir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "cas", h.String()[:2], "junk"), nil, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "cas", "junk"), nil, 0o644))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "cas", "zzz"), 0o755))
	require.NoError(t, os.Symlink("/etc/passwd", filepath.Join(dir, "link")))
	var keys []string
	for info, err := range b.List(t.Context(), "") {
		require.NoError(t, err)
		keys = append(keys, info.Key)
	}
	require.Equal(t, []string{h.Key()}, keys)
	_, err := b.Stat(t.Context(), "link")
	require.ErrorIs(t, err, cas.ErrNotFound, "a symbolic link is no object")
	_, err = b.Open(t.Context(), "link")
	require.ErrorIs(t, err, cas.ErrNotFound, "a symbolic link is no object")
}

func TestConcurrentReplace(t *testing.T) {
	t.Parallel()
	b := newBackend(t)
	ctx := t.Context()
	const writers, size = 8, 256 << 10
	versions := make([][]byte, writers)
	for i := range versions {
		versions[i] = bytes.Repeat([]byte{byte('a' + i)}, size)
	}
	require.NoError(t, b.Put(ctx, "legacy/r", bytes.NewReader(versions[0]), size, cas.PutOptions{}))
	whole := func(p []byte) bool {
		return len(p) == size && bytes.Count(p, p[:1]) == size
	}
	done := make(chan struct{})
	readerErr := make(chan error, 1)
	go func() {
		defer close(readerErr)
		for {
			select {
			case <-done:
				return
			default:
			}
			obj, err := b.Open(ctx, "legacy/r")
			if err != nil {
				readerErr <- err
				return
			}
			p, err := io.ReadAll(obj)
			_ = obj.Close()
			if err != nil || !whole(p) {
				readerErr <- errors.New("a reader saw a mix of versions or a partial object")
				return
			}
		}
	}()
	errs := make(chan error, writers)
	for i := range writers {
		go func() {
			errs <- b.Put(ctx, "legacy/r", bytes.NewReader(versions[i]), size, cas.PutOptions{})
		}()
	}
	for range writers {
		require.NoError(t, <-errs, "Put without IfAbsent replaces")
	}
	close(done)
	require.NoError(t, <-readerErr)
	obj, err := b.Open(ctx, "legacy/r")
	require.NoError(t, err)
	defer obj.Close()
	p, err := io.ReadAll(obj)
	require.NoError(t, err)
	require.True(t, whole(p), "the final object is one whole version")
	requireNoTemps(t, b)
}

// TestDirectoryIsNoObject: a key whose path is a directory of other keys is
// a missing key: Delete of it is nil, as for any missing key, and removes
// nothing.
func TestDirectoryIsNoObject(t *testing.T) {
	t.Parallel()
	b := newBackend(t)
	ctx := t.Context()
	require.NoError(t, b.Put(ctx, "legacy/x", strings.NewReader("x"), 1, cas.PutOptions{}))
	require.NoError(t, b.Delete(ctx, "legacy"), "Delete of a key that is a directory of keys")
	info, err := b.Stat(ctx, "legacy/x")
	require.NoError(t, err, "the keys under it are untouched")
	require.EqualValues(t, 1, info.Size)
}

// TestEmptyDirectoryDoesNotBlockKey: once every key under "legacy/" is
// deleted, the key "legacy" itself can be stored.
func TestEmptyDirectoryDoesNotBlockKey(t *testing.T) {
	t.Parallel()
	for _, opts := range []cas.PutOptions{{}, {IfAbsent: true}} {
		b := newBackend(t)
		ctx := t.Context()
		require.NoError(t, b.Put(ctx, "legacy/x", strings.NewReader("x"), 1, cas.PutOptions{}))
		require.NoError(t, b.Put(ctx, "legacy/y/z", strings.NewReader("z"), 1, cas.PutOptions{}))
		require.NoError(t, b.Delete(ctx, "legacy/x"))
		require.ErrorIs(t, b.Put(ctx, "legacy", strings.NewReader("l"), 1, opts), fsstore.ErrInvalidKey,
			"legacy/y/z still lives under it")
		require.NoError(t, b.Delete(ctx, "legacy/y/z"))
		require.NoError(t, b.Put(ctx, "legacy/y", strings.NewReader("y"), 1, opts), "legacy/y is empty now")
		require.ErrorIs(t, b.Put(ctx, "legacy", strings.NewReader("l"), 1, opts), fsstore.ErrInvalidKey,
			"legacy/y still lives under it")
		require.NoError(t, b.Delete(ctx, "legacy/y"))
		require.NoError(t, b.Put(ctx, "legacy", strings.NewReader("l"), 1, opts))
		info, err := b.Stat(ctx, "legacy")
		require.NoError(t, err)
		require.EqualValues(t, 1, info.Size)
		requireNoTemps(t, b)
	}
}

// TestPutHugeDeclaredSize: a declared size of math.MaxInt64 is reported as
// a short body (io.ErrUnexpectedEOF after 3 bytes), not as a read of zero
// bytes, and leaves nothing behind.
func TestPutHugeDeclaredSize(t *testing.T) {
	t.Parallel()
	b := newBackend(t)
	err := cas.Checked(b).Put(t.Context(), "legacy/huge", strings.NewReader("abc"), math.MaxInt64, cas.PutOptions{})
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	require.ErrorContains(t, err, "body of 3 bytes")
	_, err = b.Stat(t.Context(), "legacy/huge")
	require.ErrorIs(t, err, cas.ErrNotFound)
	requireNoTemps(t, b)
}

// TestWithStaleTempAgeRejectsNegative: a negative age panics at
// construction, naming the option; zero (no sweep) is accepted.
func TestWithStaleTempAgeRejectsNegative(t *testing.T) {
	t.Parallel()
	require.PanicsWithValue(t, "fsstore: WithStaleTempAge(-1s): want 0 (no sweep) or a positive age", func() { fsstore.WithStaleTempAge(-time.Second) })
	require.NotPanics(t, func() { fsstore.WithStaleTempAge(0) })
}

// TestStatAgreesWithOpen: Stat (one Lstat for an object stored as it is,
// the seek table for a compressed blob) describes an object exactly as
// Open's Info does, and refuses what Open refuses with the same error: a
// symlink (to a file or as a blob's file, plain or compressed), a
// directory of other keys, a missing key.
func TestStatAgreesWithOpen(t *testing.T) {
	t.Parallel()
	b := newBackend(t)
	ctx := t.Context()
	dir := b.Dir()
	plain, err := cas.New(b).Put(ctx, strings.NewReader("plain blob"))
	require.NoError(t, err)
	text := bytes.Repeat([]byte("a compressible line of text, again and again\n"), 4000)
	zst, err := cas.New(b, cas.WithCompression(cas.Compression{})).Put(ctx, bytes.NewReader(text))
	require.NoError(t, err)
	require.NoError(t, b.Put(ctx, "legacy/a.txt", strings.NewReader("legacy"), 6, cas.PutOptions{}))

	for _, key := range []string{plain.Hash.Key(), zst.Hash.Key(), "legacy/a.txt"} {
		info, err := b.Stat(ctx, key)
		require.NoError(t, err, key)
		obj, err := b.Open(ctx, key)
		require.NoError(t, err, key)
		require.Equal(t, obj.Info(), info, "Stat and Open of %s", key)
		require.NoError(t, obj.Close())
	}
	info, err := b.Stat(ctx, zst.Hash.Key())
	require.NoError(t, err)
	require.Equal(t, cas.EncodingZstd, info.Encoding)
	require.EqualValues(t, len(text), info.Size)

	// Refusals.
	target := filepath.Join(dir, "legacy", "a.txt")
	require.NoError(t, os.Symlink(target, filepath.Join(dir, "link")))
	linked := cas.SumBytes([]byte("linked"))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "cas", linked.String()[:2]), 0o755))
	require.NoError(t, os.Symlink(target, filepath.Join(dir, "cas", linked.String()[:2], linked.String())))
	linkedZst := cas.SumBytes([]byte("linked zst"))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "cas", linkedZst.String()[:2]), 0o755))
	require.NoError(t, os.Symlink(filepath.Join(dir, "cas", zst.Hash.String()[:2], zst.Hash.String()+".zst"),
		filepath.Join(dir, "cas", linkedZst.String()[:2], linkedZst.String()+".zst")))
	for _, key := range []string{"link", linked.Key(), linkedZst.Key(), "legacy", "missing", cas.SumBytes(nil).Key()} {
		_, serr := b.Stat(ctx, key)
		require.ErrorIs(t, serr, cas.ErrNotFound, "Stat %s", key)
		_, oerr := b.Open(ctx, key)
		require.ErrorIs(t, oerr, cas.ErrNotFound, "Open %s", key)
		require.Equal(t, oerr.Error(), serr.Error(), "Stat and Open of %s fail alike", key)
	}
}

// TestReplaceKeepsConcurrentOtherForm: a replacing write of a blob's plain
// form removes the compressed form only if it is still the stale file it
// saw before publishing. Here a replacing write of the compressed form
// runs between the plain write's publish and its removal (and removes the
// plain file it saw as stale): the fresh .zst stays, so one sound form
// remains. Removing the other form unconditionally left neither.
func TestReplaceKeepsConcurrentOtherForm(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	text := bytes.Repeat([]byte("a compressible line of text, again and again\n"), 4000)
	h := cas.SumBytes(text)
	good := memstoreStored(t, text)

	var b *fsstore.Backend
	raced := false
	b, err := fsstore.New(t.TempDir(), fsstore.WithoutSync(), fsstore.WithPublished(func(key string) {
		if raced {
			return
		}
		raced = true
		require.NoError(t, b.Put(ctx, key, bytes.NewReader(good), int64(len(good)),
			cas.PutOptions{Encoding: cas.EncodingZstd, DecodedSize: int64(len(text))}))
	}))
	require.NoError(t, err)
	rotten := []byte("not a seekable zstd stream")
	require.NoError(t, b.Put(ctx, h.Key(), bytes.NewReader(rotten), int64(len(rotten)),
		cas.PutOptions{Encoding: cas.EncodingZstd, DecodedSize: int64(len(text))}))
	_, err = b.Stat(ctx, h.Key())
	require.ErrorIs(t, err, cas.ErrCorrupt)

	require.NoError(t, b.Put(ctx, h.Key(), bytes.NewReader(text), int64(len(text)), cas.PutOptions{}))
	require.True(t, raced)
	info, err := b.Stat(ctx, h.Key())
	require.NoError(t, err)
	require.Equal(t, cas.EncodingZstd, info.Encoding, "the concurrent write's fresh form")
	require.NoError(t, cas.New(b).Verify(ctx, h))
	requireNoTemps(t, b)
}

// memstoreStored returns the stored form of p compressed by a Store.
func memstoreStored(t *testing.T, p []byte) []byte {
	t.Helper()
	m := memstore.New()
	res, err := cas.New(m, cas.WithCompression(cas.Compression{})).Put(t.Context(), bytes.NewReader(p))
	require.NoError(t, err)
	obj, err := m.Open(t.Context(), res.Hash.Key())
	require.NoError(t, err)
	defer obj.Close()
	stored, err := io.ReadAll(obj)
	require.NoError(t, err)
	return stored
}

// TestReplaceLeavesFreshOtherFormInPlace: a replacing write that finds
// the other form's file already replaced by a concurrent writer's fresh
// one leaves that file where it is: it is not moved into the temporary
// directory and linked back (its ctime stays). While it was there it was
// unlocked, so another process's New swept it at once, a crash left it to
// the next sweep, and readers found no such form; two repairs of different
// forms at once could have both fresh files there, and lose the blob.
func TestReplaceLeavesFreshOtherFormInPlace(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	text := bytes.Repeat([]byte("another compressible line of text, again\n"), 4000)
	h := cas.SumBytes(text)
	good := memstoreStored(t, text)

	var (
		b     *fsstore.Backend
		fresh os.FileInfo
		raced bool
	)
	b, err := fsstore.New(t.TempDir(), fsstore.WithoutSync(), fsstore.WithPublished(func(key string) {
		if raced {
			return
		}
		raced = true // before the Put, which calls this hook too
		require.NoError(t, b.Put(ctx, key, bytes.NewReader(good), int64(len(good)),
			cas.PutOptions{Encoding: cas.EncodingZstd, DecodedSize: int64(len(text))}))
		zst := filepath.Join(b.Dir(), "cas", h.String()[:2], h.String()+".zst")
		fi, err := os.Lstat(zst)
		require.NoError(t, err)
		fresh = fi
		// The clock that stamps ctime is coarse: let it move on, so that
		// a rename or link of the file after this shows.
		time.Sleep(30 * time.Millisecond)
	}))
	require.NoError(t, err)
	rotten := []byte("not a seekable zstd stream")
	require.NoError(t, b.Put(ctx, h.Key(), bytes.NewReader(rotten), int64(len(rotten)),
		cas.PutOptions{Encoding: cas.EncodingZstd, DecodedSize: int64(len(text))}))

	require.NoError(t, b.Put(ctx, h.Key(), bytes.NewReader(text), int64(len(text)), cas.PutOptions{}))
	require.NotNil(t, fresh, "the concurrent write ran")
	after, err := os.Lstat(filepath.Join(b.Dir(), "cas", h.String()[:2], h.String()+".zst"))
	require.NoError(t, err, "the fresh compressed form stays")
	require.True(t, os.SameFile(fresh, after))
	before, ok1 := fresh.Sys().(*syscall.Stat_t)
	now, ok2 := after.Sys().(*syscall.Stat_t)
	if !ok1 || !ok2 {
		t.Skip("no ctime on this platform")
	}
	require.Equal(t, before.Ctim, now.Ctim, "the fresh form was moved and linked back")
	require.NoError(t, cas.New(b).Verify(ctx, h))
	requireNoTemps(t, b)
}
