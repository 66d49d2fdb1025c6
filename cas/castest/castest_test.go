package castest_test

import (
	"bytes"
	"context"
	"errors"
	"go/parser"
	"go/token"
	"io"
	"iter"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/castest"
	"github.com/casa-go/casa/cas/memstore"
)

func TestMemstorePasses(t *testing.T) {
	castest.Run(t, func(t *testing.T) cas.Backend { return memstore.New() })
}

// TestImports keeps the public suite free of assertion libraries and of
// casa's internal packages, so a Backend outside this module can run it: the
// suite itself may import only the standard library, go-cmp and cas; its
// tests may add castest and memstore.
func TestImports(t *testing.T) {
	names, err := filepath.Glob("*.go")
	if err != nil || len(names) == 0 {
		t.Fatalf("listing the package's Go files: %v, %d files", err, len(names))
	}
	fset := token.NewFileSet()
	for _, name := range names {
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatalf("parse %s: %v", name, err)
		}
		for _, imp := range f.Imports {
			path, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				t.Fatalf("%s: import %s: %v", name, imp.Path.Value, err)
			}
			std := !strings.Contains(strings.Split(path, "/")[0], ".")
			ok := std || path == "github.com/google/go-cmp/cmp" || strings.HasPrefix(path, "github.com/google/go-cmp/cmp/") ||
				path == "github.com/casa-go/casa/cas"
			if strings.HasSuffix(name, "_test.go") {
				ok = ok || path == "github.com/casa-go/casa/cas/castest" || path == "github.com/casa-go/casa/cas/memstore"
			}
			if !ok {
				t.Errorf("%s imports %q; castest may import only the standard library, go-cmp and cas", name, path)
			}
		}
	}
}

// broken wraps a real memstore and breaks one rule of the Backend contract.
type broken struct {
	*memstore.Backend
	fault string
}

func (b broken) Stat(ctx context.Context, key string) (cas.Info, error) {
	info, err := b.Backend.Stat(ctx, key)
	if b.fault == "stat-error-not-wrapped" && errors.Is(err, cas.ErrNotFound) {
		return info, errors.New("no such key")
	}
	return info, err
}

// Open, for the fileobject faults, returns an Object that implements
// cas.FileObject over a temporary file: a sound one, one whose file holds
// extra bytes, and one whose Close leaves the file open.
func (b broken) Open(ctx context.Context, key string) (cas.Object, error) {
	obj, err := b.Backend.Open(ctx, key)
	if err == nil && b.fault == "short-object" && obj.Info().Size > 0 {
		defer obj.Close()
		p, err := io.ReadAll(obj)
		if err != nil {
			return nil, err
		}
		return &shortObject{Reader: bytes.NewReader(p[:len(p)-1]), info: obj.Info()}, nil
	}
	if err != nil || !strings.HasPrefix(b.fault, "fileobject-") {
		return obj, err
	}
	defer obj.Close()
	p, err := io.ReadAll(obj)
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp("", "castest-fileobject-*")
	if err != nil {
		return nil, err
	}
	_ = os.Remove(f.Name()) // the open file outlives its name
	content := p
	if b.fault == "fileobject-extra-bytes" {
		content = append(slices.Clip(p), "tail"...)
	}
	if _, err := f.Write(content); err != nil {
		_ = f.Close()
		return nil, err
	}
	return &fileObject{Reader: bytes.NewReader(p), f: f, info: obj.Info(), leak: b.fault == "fileobject-close-leaks"}, nil
}

// shortObject ends one byte before its Info().Size.
type shortObject struct {
	*bytes.Reader
	info cas.Info
}

func (o *shortObject) Info() cas.Info { return o.info }
func (o *shortObject) Close() error   { return nil }

// fileObject is a cas.FileObject whose reads come from memory and whose
// file is a temporary copy.
type fileObject struct {
	*bytes.Reader
	f    *os.File
	info cas.Info
	leak bool // Close does not close f
}

func (o *fileObject) Info() cas.Info { return o.info }
func (o *fileObject) File() *os.File { return o.f }
func (o *fileObject) Close() error {
	if o.leak {
		return nil
	}
	return o.f.Close()
}

func (b broken) Put(ctx context.Context, key string, r io.Reader, size int64, opts cas.PutOptions) error {
	switch b.fault {
	case "ignore-if-absent":
		opts.IfAbsent = false
	case "ignore-digest":
		opts.SHA256 = cas.Hash{}
	case "drop-encoding":
		opts.Encoding, opts.DecodedSize = "", 0
	case "ignore-size":
		p, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		return b.Backend.Put(ctx, key, strings.NewReader(string(p)), int64(len(p)), opts)
	case "keep-partial":
		p, err := io.ReadAll(r)
		if perr := b.Backend.Put(ctx, key, bytes.NewReader(p), int64(len(p)), opts); perr != nil {
			return perr
		}
		return err
	}
	return b.Backend.Put(ctx, key, r, size, opts)
}

func (b broken) Delete(ctx context.Context, key string) error {
	if b.fault == "delete-missing-fails" {
		if _, err := b.Backend.Stat(ctx, key); err != nil {
			return err
		}
	}
	return b.Backend.Delete(ctx, key)
}

func (b broken) List(ctx context.Context, prefix string) iter.Seq2[cas.Info, error] {
	var infos []cas.Info
	for info, err := range b.Backend.List(ctx, prefix) {
		if err != nil {
			return func(yield func(cas.Info, error) bool) { yield(cas.Info{}, err) }
		}
		infos = append(infos, info)
	}
	switch b.fault {
	case "list-unsorted":
		slices.Reverse(infos)
	case "list-no-encoding":
		for i := range infos {
			infos[i].Encoding, infos[i].Size = "", infos[i].StoredSize
		}
	case "list-first-page-only":
		infos = infos[:min(len(infos), 1000)]
	case "list-ignores-break":
		return func(yield func(cas.Info, error) bool) {
			for _, info := range infos {
				yield(info, nil)
			}
		}
	}
	return func(yield func(cas.Info, error) bool) {
		for _, info := range infos {
			if !yield(info, nil) {
				return
			}
		}
	}
}

// keyLister is a broken Backend that is a cas.KeyLister, sound unless the
// fault says otherwise.
type keyLister struct{ broken }

func (k keyLister) ListKeys(ctx context.Context, prefix string) iter.Seq2[cas.KeyInfo, error] {
	var keys []cas.KeyInfo
	for info, err := range k.Backend.List(ctx, prefix) {
		if err != nil {
			return func(yield func(cas.KeyInfo, error) bool) { yield(cas.KeyInfo{}, err) }
		}
		ki := cas.KeyInfo{Key: info.Key, ModTime: info.ModTime, StoredSize: info.StoredSize}
		if k.fault == "keys-decoded-size" {
			ki.StoredSize = info.Size
		}
		keys = append(keys, ki)
	}
	switch k.fault {
	case "keys-drop-last":
		keys = keys[:max(len(keys)-1, 0)]
	case "keys-ignores-break":
		return func(yield func(cas.KeyInfo, error) bool) {
			for _, ki := range keys {
				yield(ki, nil)
			}
		}
	}
	return func(yield func(cas.KeyInfo, error) bool) {
		for _, ki := range keys {
			if !yield(ki, nil) {
				return
			}
		}
	}
}

const faultEnv = "CASTEST_FAULT"

// TestBrokenBackend runs the suite over a broken Backend when the
// environment asks for it; TestSuiteCatchesFaults runs it in a child
// process and expects it to fail.
func TestBrokenBackend(t *testing.T) {
	fault := os.Getenv(faultEnv)
	if fault == "" {
		t.Skip("run by TestSuiteCatchesFaults")
	}
	castest.Run(t, func(t *testing.T) cas.Backend {
		b := broken{Backend: memstore.New(), fault: fault}
		if strings.HasPrefix(fault, "presign-") {
			return newPresigning(t, b)
		}
		if strings.HasPrefix(fault, "keys-") {
			return keyLister{b}
		}
		return b
	})
}

// presigning is a broken Backend that is a cas.Presigner: its URLs point
// at an HTTP server that serves the memstore's objects with the headers
// the URL names (Range included, through http.ServeContent), unless the
// fault says otherwise.
type presigning struct {
	broken
	url string
}

func newPresigning(t *testing.T, b broken) presigning {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := strings.TrimPrefix(r.URL.Path, "/")
		obj, err := b.Backend.Open(r.Context(), key)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		defer obj.Close()
		q := r.URL.Query()
		if b.fault != "presign-ignores-type" {
			w.Header().Set("Content-Type", q.Get("ct"))
		}
		w.Header().Set("Content-Disposition", q.Get("cd"))
		w.Header().Set("Cache-Control", q.Get("cc"))
		if b.fault == "presign-no-range" {
			_, _ = io.Copy(w, obj)
			return
		}
		http.ServeContent(w, r, "", time.Time{}, obj)
	}))
	t.Cleanup(srv.Close)
	return presigning{broken: b, url: srv.URL}
}

func (p presigning) PresignGet(_ context.Context, key string, opts cas.PresignOptions) (string, error) {
	q := url.Values{"ct": {opts.ContentType}, "cd": {opts.ContentDisposition}, "cc": {opts.CacheControl}}
	return p.url + "/" + key + "?" + q.Encode(), nil
}

func TestSuiteCatchesFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child test process per fault")
	}
	// Faults the checked layer owns (cas.Checked) are no faults of a thin
	// Backend: the suite must pass them, which shows that its Checked part
	// relies on the layer, not on the Backend, for sizes and digests.
	caughtByLayer := map[string]bool{"ignore-digest": true, "ignore-size": true}
	for _, fault := range []string{
		"",                 // control: the wrapper itself is sound
		"fileobject-sound", // control: a sound cas.FileObject passes
		"presign-sound",    // control: a sound cas.Presigner passes
		"keys-sound",       // control: a sound cas.KeyLister passes
		"keys-drop-last", "keys-ignores-break", "keys-decoded-size",
		"presign-ignores-type", "presign-no-range",
		"ignore-digest", "ignore-size",
		"fileobject-extra-bytes", "fileobject-close-leaks",
		"stat-error-not-wrapped", "ignore-if-absent", "keep-partial", "short-object",
		"delete-missing-fails", "list-unsorted", "list-first-page-only", "list-ignores-break",
		"drop-encoding", "list-no-encoding",
	} {
		t.Run("fault="+fault, func(t *testing.T) {
			t.Parallel()
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestBrokenBackend$", "-test.count=1", "-test.timeout=60s")
			cmd.Env = append(os.Environ(), faultEnv+"="+fault)
			if fault == "" {
				cmd.Env = append(cmd.Env, faultEnv+"=none")
			}
			out, err := cmd.CombinedOutput()
			if fault == "" || fault == "fileobject-sound" || fault == "presign-sound" || fault == "keys-sound" || caughtByLayer[fault] {
				if err != nil {
					t.Fatalf("the suite fails a sound wrapper: %v\n%s", err, out)
				}
				return
			}
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("the suite passes a Backend with fault %q: got error %v, want a failed child test\n%s", fault, err, out)
			}
			if !strings.Contains(string(out), "--- FAIL: TestBrokenBackend/") {
				t.Fatalf("fault %q: the child failed, but no TestBrokenBackend subtest reported FAIL:\n%s", fault, out)
			}
		})
	}
}
