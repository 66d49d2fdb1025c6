//go:build cgo && casa_libzstd

package libzstd

/*
#cgo LDFLAGS: -lzstd
#include <zstd.h>

// casa_compress writes one frame of src into dst at level, with the
// content size and checksum; on failure it returns 0 and sets *err.
static size_t casa_compress(ZSTD_CCtx *c, void *dst, size_t cap, const void *src, size_t n, int level, const char **err) {
	size_t r = ZSTD_CCtx_reset(c, ZSTD_reset_session_and_parameters);
	if (!ZSTD_isError(r)) r = ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level);
	if (!ZSTD_isError(r)) r = ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
	if (!ZSTD_isError(r)) r = ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 1);
	if (!ZSTD_isError(r)) r = ZSTD_compress2(c, dst, cap, src, n);
	if (ZSTD_isError(r)) {
		*err = ZSTD_getErrorName(r);
		return 0;
	}
	return r;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"github.com/casa-go/casa/cas"
)

// Version is the version of the libzstd the package was built against.
const Version = C.ZSTD_VERSION_STRING

// levels maps cas.Compression's levels 1 to 4 to libzstd's, as
// klauspost/compress counts its own: about zstd -1, -3, -7 and -11.
var levels = [...]C.int{1: 1, 2: 3, 3: 7, 4: 11}

// Encoder is a cas.FrameEncoder over libzstd: one compression context per
// concurrent call, up to GOMAXPROCS at the time New ran; more calls wait
// for a context. Its contexts are freed when it is garbage.
type Encoder struct {
	level C.int
	ctxs  chan *C.ZSTD_CCtx // idle contexts
}

var _ cas.FrameEncoder = (*Encoder)(nil)

// ErrLevel: a level outside 1 to 4.
var ErrLevel = errors.New("libzstd: level out of range")

// New returns an Encoder at level, 1 (fastest) to 4 (best), as
// cas.Compression's Level counts them.
func New(level int) (*Encoder, error) {
	if level < 1 || level > 4 {
		return nil, fmt.Errorf("%w: %d, want 1 to 4", ErrLevel, level)
	}
	n := runtime.GOMAXPROCS(0)
	e := &Encoder{level: levels[level], ctxs: make(chan *C.ZSTD_CCtx, n)}
	for range n {
		c := C.ZSTD_createCCtx()
		if c == nil {
			freeAll(e.ctxs, len(e.ctxs))
			return nil, errors.New("libzstd: ZSTD_createCCtx failed: out of memory")
		}
		e.ctxs <- c
	}
	runtime.AddCleanup(e, func(ctxs chan *C.ZSTD_CCtx) { freeAll(ctxs, cap(ctxs)) }, e.ctxs)
	return e, nil
}

// freeAll frees n contexts taken from ctxs.
func freeAll(ctxs chan *C.ZSTD_CCtx, n int) {
	for range n {
		C.ZSTD_freeCCtx(<-ctxs)
	}
}

// EncodeAll implements cas.FrameEncoder: it appends to dst one zstd frame
// of src with its content size and checksum. Should libzstd fail (it
// cannot with these parameters), it appends nothing, which fails the
// Store's Put.
func (e *Encoder) EncodeAll(src, dst []byte) []byte {
	bound := int(C.ZSTD_compressBound(C.size_t(len(src))))
	if cap(dst)-len(dst) < bound {
		grown := make([]byte, len(dst), len(dst)+bound)
		copy(grown, dst)
		dst = grown
	}
	out := dst[len(dst):cap(dst)]
	var srcp unsafe.Pointer
	if len(src) > 0 {
		srcp = unsafe.Pointer(&src[0])
	}
	c := <-e.ctxs
	var cerr *C.char
	n := C.casa_compress(c, unsafe.Pointer(&out[0]), C.size_t(len(out)), srcp, C.size_t(len(src)), e.level, &cerr)
	e.ctxs <- c
	runtime.KeepAlive(e)
	if cerr != nil {
		// The destination holds ZSTD_compressBound bytes and the
		// parameters are fixed: only a libzstd bug gets here. No frame is
		// appended, so the Store's Put fails, storing nothing.
		return dst
	}
	return dst[:len(dst)+int(n)]
}
