package testutil

import (
	"encoding/binary"
	"io"
	"math/rand/v2"
)

// Bytes returns n deterministic pseudo-random bytes: the same (seed, n)
// always gives the same bytes, and different seeds give unrelated ones, so
// blobs made with distinct seeds never deduplicate. It is fast (ChaCha8,
// several GB/s), so benchmarks may use it for large blobs.
func Bytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	_, _ = source(seed).Read(b)
	return b
}

// Reader returns a reader of n bytes, the same as Bytes(seed, n), generated
// as they are read: no backing buffer, and only Read (no Seek, no WriterTo),
// so it can stand for a stream of any size.
func Reader(seed uint64, n int64) io.Reader {
	return struct{ io.Reader }{io.LimitReader(source(seed), n)}
}

func source(seed uint64) *rand.ChaCha8 {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	return rand.NewChaCha8(s)
}
