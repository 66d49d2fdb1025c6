// Package thumbnail makes decode-safe JPEG thumbnails of stored images, with
// caching and request coalescing.
//
// Generate turns a JPEG, PNG, GIF (first frame) or WebP source into a JPEG
// that fits inside N x N pixels. It is written for untrusted uploads: the
// format is sniffed from the first bytes and only those four decoders are
// ever called (never the image package's registry, so a TIFF or BMP
// decoder linked in elsewhere is not reachable); the header is decoded
// first and an image over the pixel limit is refused before any pixel
// buffer is allocated; the memory decoding will take (progressive JPEG
// coefficients, 16-bit and interlaced PNGs, CMYK conversions included)
// is estimated from the header and checked against a limit before
// decoding (WithMaxMemory); a JPEG with more than MaxJPEGScans scans is
// refused; each generation has a deadline (WithTimeout); the source is
// read through a byte limit; a decoder panic becomes an error. Errors are
// ErrUnsupported (not an accepted image), ErrTooLarge (over a limit:
// pixels, bytes, memory, scans), ErrCorrupt (damaged data), ErrTimeout
// (past the deadline) and ErrInvalidSize.
//
// The output keeps the aspect ratio and is never upscaled; the JPEG EXIF
// orientation is applied; transparency is flattened onto white; no
// metadata is carried over. Large JPEGs are first shrunk by an integer
// factor with a box filter working on the decoded YCbCr planes, to at
// least twice the target size, and then filtered (Catmull-Rom) to the
// target, so that the whole thumbnail costs little more than decoding.
//
// Service serves thumbnails of the blobs of a cas.Store: from its caches
// (DirCache on a local disk, BackendCache beside the blobs under
// "thumbnails/<hex>_<N>.jpg"), otherwise by generating them. Concurrent
// requests for the same thumbnail share one generation, generations are
// bounded in number and by a shared memory budget (WithMemoryBudget),
// failures that always repeat are remembered (WithFailureCacheSize), and
// metrics are recorded through OpenTelemetry.
package thumbnail
