package cas

import (
	"bytes"
	"fmt"
	"mime"
	"runtime"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// Compression is the policy of WithCompression: which blobs a Store
// stores compressed, and how. The zero value is the default policy.
type Compression struct {
	// MinSaving is the least fraction of the sample's bytes that
	// compression must save for the blob to be stored compressed: 0 means
	// the default, 0.10 (10%); otherwise above 0 and below 1.
	MinSaving float64
	// ChunkSize is the number of blob bytes in each independently
	// compressed frame: a ranged read decompresses the frames it touches,
	// at most two for a read shorter than a chunk. 0 means the default,
	// DefaultChunkSize; otherwise 64 KiB to MaxChunkSize.
	ChunkSize int
	// Level is the zstd compression level, 1 (fastest) to 4 (best), as
	// klauspost/compress/zstd's EncoderLevel counts them: 1 is about zstd
	// -1, 2 about zstd -3, 3 about zstd -7, 4 about zstd -11. 0 means the
	// default, 1. Level 1 leaves some data uncompressed that level 2
	// compresses, text of short distinct tokens with few repeats such as
	// a column of consecutive numbers (the first 64 KiB of `seq 1 100000`:
	// 65,550 bytes at level 1, 23,667 at level 2, 27,829 with libzstd's
	// level 1), so such a blob's sample saves nothing and it is stored as
	// it is.
	Level int
	// Encoder, when set, compresses the chunks instead of the Store's own
	// klauspost/compress encoder at Level (which Encoder's maker chooses
	// then). It must write one standard zstd frame per call, with the
	// frame's content checksum, which reads check: a Put fails, storing
	// nothing, on a frame without one. cas/libzstd is one, the system's
	// libzstd through cgo, about 1.8 times as fast at level 1 on the
	// bench's text; a build without it needs no C compiler.
	Encoder FrameEncoder
}

// FrameEncoder compresses one chunk of a blob into one zstd frame, for a
// Store with compression (Compression.Encoder). EncodeAll must be safe for
// concurrent use: a Put runs up to GOMAXPROCS calls at once.
type FrameEncoder interface {
	// EncodeAll appends to dst one zstd frame of src, with the frame's
	// content checksum, and returns it.
	EncodeAll(src, dst []byte) []byte
}

// DefaultChunkSize is the default Compression.ChunkSize: 1 MiB.
const DefaultChunkSize = 1 << 20

// DefaultMinSaving is the default Compression.MinSaving: 10%.
const DefaultMinSaving = 0.10

// SampleSize is how many bytes at the start of a blob a Store with
// compression compresses to decide whether to compress the blob.
const SampleSize = 64 << 10

// WithCompression makes Put store compressible blobs compressed with zstd
// (EncodingZstd), under the hash and size of their uncompressed bytes.
// Put compresses a sample, the first SampleSize bytes, and compresses the
// blob only when the sample shrinks by at least the policy's MinSaving,
// and never when the blob is of a format that is compressed already:
// JPEG, PNG, GIF, WebP, AVIF/HEIF, ZIP (and the office and archive formats
// built on it), gzip, zstd, bzip2, xz, 7z, RAR, and video and audio
// containers, recognised by their leading bytes and by the ContentType put
// option. The decision is final: a blob whose sample compresses is stored
// compressed even if the rest does not.
//
// Reading needs no option: every Store reads blobs stored compressed, and
// a Store with compression reads and deduplicates blobs stored before it
// was turned on. A policy value outside its documented range panics.
func WithCompression(p Compression) Option {
	switch {
	case p.MinSaving < 0 || p.MinSaving >= 1 || p.MinSaving != p.MinSaving:
		panic(fmt.Sprintf("cas: WithCompression: MinSaving %v: want 0 (default) or above 0 and below 1", p.MinSaving))
	case p.ChunkSize != 0 && (p.ChunkSize < 64<<10 || p.ChunkSize > MaxChunkSize):
		panic(fmt.Sprintf("cas: WithCompression: ChunkSize %d: want 0 (default) or 65536 to %d", p.ChunkSize, MaxChunkSize))
	case p.Level < 0 || p.Level > 4:
		panic(fmt.Sprintf("cas: WithCompression: Level %d: want 0 (default) or 1 to 4", p.Level))
	}
	if p.MinSaving == 0 {
		p.MinSaving = DefaultMinSaving
	}
	if p.ChunkSize == 0 {
		p.ChunkSize = DefaultChunkSize
	}
	if p.Level == 0 {
		p.Level = 1
	}
	return func(s *Store) {
		s.compression = &p
	}
}

// newEncoder returns the Store's encoder for p: p.Encoder, or
// klauspost's at p.Level. EncodeAll is safe for concurrent use, up to
// GOMAXPROCS at once, and writes each frame with its content checksum,
// which decoding checks.
func newEncoder(p *Compression) (FrameEncoder, error) {
	if p.Encoder != nil {
		return p.Encoder, nil
	}
	return zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.EncoderLevel(p.Level)),
		zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)),
		zstd.WithEncoderCRC(true), // each frame checks its bytes on decode
		zstd.WithWindowSize(windowFor(p.ChunkSize)),
		zstd.WithZeroFrames(true),
	)
}

// windowFor is the zstd window for chunks of n bytes: the smallest power
// of two that holds a chunk (a frame never refers beyond itself).
func windowFor(n int) int {
	w := zstd.MinWindowSize
	for w < n && w < zstd.MaxWindowSize {
		w <<= 1
	}
	return w
}

// newDecoder returns a Store's decoder: DecodeAll is safe for concurrent
// use, and limited to the capacity of its destination (a frame cannot
// decode to more than its seek table entry says).
func newDecoder() (*zstd.Decoder, error) {
	return zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(runtime.GOMAXPROCS(0)),
		zstd.WithDecoderMaxMemory(MaxChunkSize),
		zstd.WithDecodeAllCapLimit(true),
	)
}

// refusedTypes are media types (or type/ prefixes) that are compressed
// already; Put stores them as they are.
var refusedTypes = []string{
	"image/jpeg", "image/png", "image/gif", "image/webp", "image/avif", "image/heic", "image/heif", "image/jxl",
	"application/zip", "application/gzip", "application/x-gzip", "application/zstd", "application/x-zstd",
	"application/x-bzip2", "application/x-xz", "application/x-7z-compressed", "application/vnd.rar",
	"application/x-rar-compressed", "application/java-archive", "application/epub+zip",
	"application/vnd.openxmlformats-", "application/vnd.oasis.opendocument.",
	"video/", "audio/",
}

// refusedType reports whether the media type ct is of a compressed format.
func refusedType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	for _, r := range refusedTypes {
		if mt == r || (strings.HasSuffix(r, "/") || strings.HasSuffix(r, ".") || strings.HasSuffix(r, "-")) && strings.HasPrefix(mt, r) {
			return true
		}
	}
	return false
}

// magic numbers of compressed formats, at offset 0.
var compressedMagic = [][]byte{
	{0xFF, 0xD8, 0xFF},                 // JPEG
	[]byte("\x89PNG\r\n\x1a\n"),        // PNG
	[]byte("GIF87a"), []byte("GIF89a"), // GIF
	[]byte("PK\x03\x04"),                         // ZIP, docx, xlsx, jar, odt, epub
	[]byte("PK\x05\x06"),                         // empty ZIP
	[]byte("PK\x07\x08"),                         // spanned ZIP
	{0x1F, 0x8B},                                 // gzip
	{0x28, 0xB5, 0x2F, 0xFD},                     // zstd frame
	[]byte("BZh"),                                // bzip2
	{0xFD, '7', 'z', 'X', 'Z', 0x00},             // xz
	{'7', 'z', 0xBC, 0xAF, 0x27, 0x1C},           // 7z
	[]byte("Rar!\x1a\x07"),                       // RAR
	{0x04, 0x22, 0x4D, 0x18},                     // LZ4 frame
	{0x1A, 0x45, 0xDF, 0xA3},                     // Matroska, WebM
	{0x00, 0x00, 0x01, 0xBA},                     // MPEG program stream
	{0x00, 0x00, 0x01, 0xB3},                     // MPEG video
	[]byte("FLV\x01"),                            // Flash video
	[]byte("OggS"),                               // Ogg: Vorbis, Opus, Theora
	[]byte("fLaC"),                               // FLAC
	[]byte("ID3"),                                // MP3 with an ID3v2 tag
	{0x30, 0x26, 0xB2, 0x75, 0x8E, 0x66},         // ASF: WMA, WMV
	[]byte("\xff\x0a"),                           // JPEG XL codestream
	{0x00, 0x00, 0x00, 0x0C, 'J', 'X', 'L', ' '}, // JPEG XL container
}

// compressedFormat reports whether b, the first bytes of a blob, begins a
// format that is compressed already.
func compressedFormat(b []byte) bool {
	for _, m := range compressedMagic {
		if bytes.HasPrefix(b, m) {
			return true
		}
	}
	switch {
	case len(b) >= 4 && b[0]&0xF0 == 0x50 && b[1] == 0x2A && b[2] == 0x4D && b[3] == 0x18:
		return true // zstd skippable frame (a seekable zstd file's first frame may be one)
	case len(b) >= 12 && bytes.Equal(b[:4], []byte("RIFF")):
		switch string(b[8:12]) {
		case "WEBP", "AVI ", "WAVE":
			return true
		}
	case len(b) >= 12 && bytes.Equal(b[:4], []byte("FORM")):
		switch string(b[8:12]) {
		case "AIFF", "AIFC":
			return true
		}
	case len(b) >= 12 && bytes.Equal(b[4:8], []byte("ftyp")):
		return true // ISO base media: MP4, MOV, M4A, 3GP, HEIC, AVIF
	case len(b) >= 2 && b[0] == 0xFF && b[1]&0xE0 == 0xE0:
		return true // MPEG audio frame sync (MP3, AAC ADTS)
	case len(b) >= 189 && b[0] == 0x47 && b[188] == 0x47:
		return true // MPEG transport stream
	}
	return false
}

// worthCompressing reports whether a sample (the whole blob when it is
// shorter than SampleSize; then final) compresses to save at least
// minSaving of its bytes, counting the seek table's bytes against it.
func worthCompressing(enc FrameEncoder, sample []byte, final bool, minSaving float64) bool {
	if len(sample) == 0 {
		return false
	}
	n := len(enc.EncodeAll(sample, make([]byte, 0, len(sample))))
	if final {
		n += seekOverhead + seekEntryLen
	}
	return float64(n) <= (1-minSaving)*float64(len(sample))
}
