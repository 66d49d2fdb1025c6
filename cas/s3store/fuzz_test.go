package s3store_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"testing"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/s3store"
	"github.com/casa-go/casa/internal/testutil"
	"github.com/casa-go/casa/internal/testutil/s3test"
)

// FuzzObjectSeekRead drives an Object with a fuzzed sequence of Seek and
// Read calls and checks every result against bytes.Reader, the model of
// io.ReadSeeker semantics.
func FuzzObjectSeekRead(f *testing.F) {
	s := s3test.New(f)
	b := s3store.New(s.Client, s.Bucket)
	const size = 3000
	p := testutil.Bytes(99, size)
	s.Seed(f, "obj", p)
	s.Seed(f, "empty", nil)

	f.Add(false, []byte{3, 10, 0})                                       // read 10 at the start
	f.Add(false, []byte{2, 0xff, 0xf6, 3, 20, 0})                        // SeekEnd(-10), read 20
	f.Add(false, []byte{0, 0x0b, 0xb8, 3, 1, 0, 1, 0xff, 0xff, 3, 5, 0}) // to the end, read, back 1
	f.Add(false, []byte{0, 0x80, 0x00, 3, 1, 0})                         // negative SeekStart
	f.Add(false, []byte{0, 0x10, 0x00, 3, 0xff, 0xff})                   // past the end
	f.Add(true, []byte{3, 1, 0, 2, 0, 0, 3, 1, 0})                       // the empty object
	f.Add(false, []byte{3, 0, 1, 3, 0, 1, 1, 0xfe, 0x00, 3, 0, 2})       // sequential reads, seek back
	f.Add(false, []byte{4, 0, 0})                                        // invalid whence

	f.Fuzz(func(t *testing.T, empty bool, ops []byte) {
		key, want := "obj", p
		if empty {
			key, want = "empty", nil
		}
		obj, err := b.Open(t.Context(), key)
		if err != nil {
			t.Fatal(err)
		}
		defer obj.Close()
		model := bytes.NewReader(want)
		for i := 0; i+3 <= len(ops) && i < 60; i += 3 {
			arg := int64(int16(uint16(ops[i+1])<<8 | uint16(ops[i+2])))
			switch op := ops[i] % 5; op {
			case 0, 1, 2, 4: // Seek; 4 is an invalid whence
				whence := int(op)
				if op == 4 {
					whence = 7
				}
				gotPos, gotErr := obj.Seek(arg, whence)
				wantPos, wantErr := model.Seek(arg, whence)
				if (gotErr != nil) != (wantErr != nil) {
					t.Fatalf("op %d: Seek(%d, %d): got err %v, model %v", i/3, arg, whence, gotErr, wantErr)
				}
				if gotErr == nil && gotPos != wantPos {
					t.Fatalf("op %d: Seek(%d, %d) = %d, model %d", i/3, arg, whence, gotPos, wantPos)
				}
			case 3: // Read up to n bytes
				n := int(uint16(arg)) % 4096
				got := make([]byte, n)
				gn, gerr := io.ReadFull(obj, got)
				exp := make([]byte, n)
				wn, werr := io.ReadFull(model, exp)
				if gn != wn || !bytes.Equal(got[:gn], exp[:wn]) {
					t.Fatalf("op %d: read %d bytes: got %d, model %d (or bytes differ)", i/3, n, gn, wn)
				}
				if !errors.Is(gerr, werr) && !(gerr == nil && werr == nil) {
					t.Fatalf("op %d: read %d bytes: got err %v, model %v", i/3, n, gerr, werr)
				}
			}
		}
	})
}

// FuzzPutSize puts a fuzzed body under a fuzzed declared size, through a
// seekable and a plain reader, single and multipart. A Put succeeds exactly
// when the declared size matches (or is unknown, -1) and then stores the
// body; otherwise it fails and stores nothing.
func FuzzPutSize(f *testing.F) {
	s := s3test.New(f)
	b := s3store.New(s.Client, s.Bucket, s3store.WithMultipartThreshold(256), s3store.WithPartSize(100))
	f.Add([]byte("hello"), int64(5), true)
	f.Add([]byte("hello"), int64(4), true)
	f.Add([]byte("hello"), int64(6), false)
	f.Add([]byte("hello"), int64(0), false)
	f.Add([]byte("hello"), int64(-1), false)
	f.Add([]byte{}, int64(0), true)
	f.Add([]byte{}, int64(1), false)
	f.Add(bytes.Repeat([]byte("m"), 1000), int64(1000), false)
	f.Add(bytes.Repeat([]byte("m"), 1000), int64(999), true)
	f.Add(bytes.Repeat([]byte("m"), 1000), int64(1001), false)
	f.Add(bytes.Repeat([]byte("m"), 1000), int64(-1), false)
	f.Add(bytes.Repeat([]byte("m"), 300), int64(-7), true)
	var n atomic.Int64
	f.Fuzz(func(t *testing.T, body []byte, size int64, seekable bool) {
		if len(body) > 4096 {
			body = body[:4096]
		}
		if size < -1 {
			size = -1
		}
		key := fmt.Sprintf("fuzz/%d", n.Add(1))
		var r io.Reader = bytes.NewReader(body)
		if !seekable {
			r = struct{ io.Reader }{r}
		}
		// A known size goes through the checked layer, which owns exact
		// sizes; an unknown one (-1) is s3store's own, read to EOF.
		put := cas.Checked(b).Put
		if size == -1 {
			put = b.Put
		}
		err := put(t.Context(), key, r, size, cas.PutOptions{IfAbsent: true})
		ok := size == -1 || size == int64(len(body))
		if ok != (err == nil) {
			t.Fatalf("Put of %d bytes declared %d (seekable %v): err %v", len(body), size, seekable, err)
		}
		if !ok {
			if _, err := b.Stat(t.Context(), key); !errors.Is(err, cas.ErrNotFound) {
				t.Fatalf("failed Put left %q: %v", key, err)
			}
			return
		}
		obj, err := b.Open(t.Context(), key)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(obj)
		_ = obj.Close()
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("read back %d bytes (%v), want %d", len(got), err, len(body))
		}
		_ = b.Delete(t.Context(), key)
	})
}
