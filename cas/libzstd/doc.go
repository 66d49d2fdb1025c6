// Package libzstd is a cas.FrameEncoder over the system's libzstd,
// through cgo: the zstd reference implementation, about 1.8 times as fast
// as klauspost/compress at level 1 on the text-like data of casa's
// benchmarks (BENCHMARKS.md, section 9), which is what a compressed Put
// costs: with it a Store compresses at the speed a fast disk writes.
//
//	enc, err := libzstd.New(1)
//	...
//	store := cas.New(backend, cas.WithCompression(cas.Compression{Encoder: enc}))
//
// The package builds only with cgo and the casa_libzstd build tag, and
// needs libzstd's header and library (Debian: apt-get install
// libzstd-dev): go build -tags casa_libzstd. Without the tag it is empty,
// so that the module builds with no C compiler; a Store without an
// Encoder compresses with klauspost/compress. Reading needs neither: every
// Store decodes with klauspost/compress, whichever encoder wrote the
// frames.
package libzstd
