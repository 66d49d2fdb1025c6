package cas

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
)

// EncodingZstd is the Info.Encoding (and PutOptions.Encoding) of a blob a
// Store wrote compressed (WithCompression): the zstd seekable format, a
// series of independent zstd frames, each holding one chunk of the blob,
// followed by a seek table in a zstd skippable frame. Any zstd decoder
// reads the stored bytes as one stream (it skips the seek table); a Store
// reads only the frames a read touches.
const EncodingZstd = "zstd"

// The zstd seekable format (facebook/zstd contrib/seekable_format): a
// skippable frame at the end of the stream,
//
//	Skippable_Magic_Number u32 LE = 0x184D2A5E
//	Frame_Size             u32 LE = bytes that follow
//	Seek_Table_Entries     Number_Of_Frames x (Compressed_Size u32 LE,
//	                       Decompressed_Size u32 LE [, Checksum u32 LE])
//	Number_Of_Frames       u32 LE
//	Seek_Table_Descriptor  u8: bit 7 checksum flag, bits 2-6 reserved (0)
//	Seekable_Magic_Number  u32 LE = 0x8F92EAB1
const (
	skippableMagic = 0x184D2A5E
	seekableMagic  = 0x8F92EAB1
	seekFooterLen  = 9
	seekHeaderLen  = 8
	// seekEntryLen is the length of an entry without checksum, as Store
	// writes them; a table with checksums (12-byte entries) is read too.
	seekEntryLen = 8
	// seekOverhead is the length of a seek table with no entries.
	seekOverhead = seekHeaderLen + seekFooterLen
)

// MaxChunkSize is the largest chunk (decompressed frame) of a compressed
// blob that a Store writes or reads: a frame declaring more is corrupt. It
// bounds the memory a read of a compressed blob needs.
const MaxChunkSize = 16 << 20

// maxStoredFrame is the most stored bytes a frame may have: zstd's worst
// case for a chunk of MaxChunkSize (incompressible bytes in raw blocks of
// at most 128 KiB, 3 bytes of header each, plus the frame's header and
// checksum) with room to spare. A reader holds one frame's stored bytes
// at a time, so a seek table that claims a bigger frame is corrupt: it
// would make the reader allocate and read up to the whole object at once.
const maxStoredFrame = MaxChunkSize + MaxChunkSize>>7 + 1<<10

// maxFrames bounds the frames of one compressed blob (4 TiB in 1 MiB
// chunks), so that a hostile seek table cannot make a reader allocate or
// read more than 32 MiB of table.
const maxFrames = 1 << 22

// seekTable is the parsed seek table of a compressed blob: frame i holds
// the decoded bytes [dec[i], dec[i+1]) in the stored bytes [comp[i],
// comp[i+1]).
type seekTable struct {
	comp []int64 // stored offsets; len = frames+1
	dec  []int64 // decoded offsets; len = frames+1
}

// frames returns the number of frames.
func (t *seekTable) frames() int { return len(t.comp) - 1 }

// size returns the decoded size.
func (t *seekTable) size() int64 { return t.dec[len(t.dec)-1] }

// find returns the frame holding decoded offset off, 0 <= off < size().
func (t *seekTable) find(off int64) int {
	// The first frame whose end is past off.
	return sort.Search(t.frames(), func(i int) bool { return t.dec[i+1] > off })
}

// appendSeekTable appends the seek table of frames with the given sizes
// (stored, decoded) to b.
func appendSeekTable(b []byte, comp, dec []uint32) []byte {
	n := len(comp)
	b = binary.LittleEndian.AppendUint32(b, skippableMagic)
	b = binary.LittleEndian.AppendUint32(b, uint32(n*seekEntryLen+seekFooterLen))
	for i := range n {
		b = binary.LittleEndian.AppendUint32(b, comp[i])
		b = binary.LittleEndian.AppendUint32(b, dec[i])
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(n))
	b = append(b, 0)
	return binary.LittleEndian.AppendUint32(b, seekableMagic)
}

// errSeekTable is the error every malformed seek table wraps, with
// ErrCorrupt.
var errSeekTable = errors.New("cas: bad zstd seek table")

func badTable(format string, args ...any) error {
	return fmt.Errorf("%w: %w: %s", ErrCorrupt, errSeekTable, fmt.Sprintf(format, args...))
}

// parseSeekFooter checks the 9-byte footer at the end of a stored blob of
// storedSize bytes and returns the length of the whole table.
func parseSeekFooter(footer []byte, storedSize int64) (tableLen int64, entryLen int, err error) {
	if len(footer) != seekFooterLen || storedSize < seekOverhead {
		return 0, 0, badTable("%d bytes cannot hold a seek table", storedSize)
	}
	if binary.LittleEndian.Uint32(footer[5:]) != seekableMagic {
		return 0, 0, badTable("no seekable magic number at the end")
	}
	desc := footer[4]
	if desc&0x7c != 0 {
		return 0, 0, badTable("reserved descriptor bits set (%#x)", desc)
	}
	entryLen = seekEntryLen
	if desc&0x80 != 0 {
		entryLen += 4
	}
	n := int64(binary.LittleEndian.Uint32(footer[:4]))
	if n == 0 || n > maxFrames {
		return 0, 0, badTable("%d frames", n)
	}
	tableLen = n*int64(entryLen) + seekOverhead
	if tableLen > storedSize {
		return 0, 0, badTable("a table of %d frames does not fit in %d bytes", n, storedSize)
	}
	return tableLen, entryLen, nil
}

// parseSeekTable parses the whole seek table (as located by
// parseSeekFooter) of a stored blob of storedSize bytes. It checks that
// the frames exactly fill the bytes before the table, that no frame is
// empty, decodes to more than MaxChunkSize or is stored in more than
// maxStoredFrame bytes, and that the decoded size
// fits an int64.
func parseSeekTable(table []byte, entryLen int, storedSize int64) (*seekTable, error) {
	tableLen := int64(len(table))
	if tableLen < seekOverhead || tableLen > storedSize || (tableLen-seekOverhead)%int64(entryLen) != 0 {
		return nil, badTable("table of %d bytes", tableLen)
	}
	if binary.LittleEndian.Uint32(table) != skippableMagic {
		return nil, badTable("no skippable frame magic number at the start of the table")
	}
	if got := int64(binary.LittleEndian.Uint32(table[4:])); got != tableLen-seekHeaderLen {
		return nil, badTable("skippable frame of %d bytes, table of %d", got, tableLen-seekHeaderLen)
	}
	n := int((tableLen - seekOverhead) / int64(entryLen))
	if n == 0 || int64(binary.LittleEndian.Uint32(table[tableLen-seekFooterLen:])) != int64(n) {
		return nil, badTable("frame count does not match the table length")
	}
	t := &seekTable{comp: make([]int64, n+1), dec: make([]int64, n+1)}
	for i := range n {
		e := table[seekHeaderLen+i*entryLen:]
		c := int64(binary.LittleEndian.Uint32(e))
		d := int64(binary.LittleEndian.Uint32(e[4:]))
		if c == 0 || d == 0 || d > MaxChunkSize || c > maxStoredFrame {
			return nil, badTable("frame %d: %d bytes stored, %d decoded", i, c, d)
		}
		// No overflow: n <= maxFrames and every size < 2^32.
		t.comp[i+1] = t.comp[i] + c
		t.dec[i+1] = t.dec[i] + d
	}
	if t.comp[n] != storedSize-tableLen {
		return nil, badTable("frames of %d bytes before a table at %d", t.comp[n], storedSize-tableLen)
	}
	return t, nil
}

// tailProbe is how much of the end of a stored blob a reader fetches in one
// go, hoping the seek table is inside (it is for blobs up to 8 GiB in 1 MiB
// chunks): one read instead of two.
const tailProbe = 64 << 10

// readSeekTable reads and parses the seek table of the stored bytes r
// holds (storedSize of them).
func readSeekTable(r io.ReaderAt, storedSize int64) (*seekTable, error) {
	if storedSize < seekOverhead {
		return nil, badTable("%d bytes cannot hold a seek table", storedSize)
	}
	tail := make([]byte, min(storedSize, tailProbe))
	if _, err := r.ReadAt(tail, storedSize-int64(len(tail))); err != nil {
		return nil, readErr(err)
	}
	tableLen, entryLen, err := parseSeekFooter(tail[len(tail)-seekFooterLen:], storedSize)
	if err != nil {
		return nil, err
	}
	var table []byte
	if tableLen <= int64(len(tail)) {
		table = tail[int64(len(tail))-tableLen:]
	} else {
		table = make([]byte, tableLen)
		if _, err := r.ReadAt(table, storedSize-tableLen); err != nil {
			return nil, readErr(err)
		}
	}
	return parseSeekTable(table, entryLen, storedSize)
}

// readErr wraps a read error of stored bytes: one that ends early is a
// truncated object, ErrCorrupt as well.
func readErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: stored bytes end early: %w", ErrCorrupt, err)
	}
	return err
}

// DecodedSize returns the size of the bytes a reader gets from a blob
// stored in encoding ("" or EncodingZstd) whose storedSize stored bytes r
// holds: storedSize itself for "", the total of the seek table for
// EncodingZstd. It is for a Backend that keeps no record of the decoded
// size outside the stored bytes (fsstore reads it from the file). A
// malformed table fails with an error wrapping ErrCorrupt, an unknown
// encoding with one wrapping ErrUnsupported.
func DecodedSize(encoding string, r io.ReaderAt, storedSize int64) (int64, error) {
	switch encoding {
	case "":
		return storedSize, nil
	case EncodingZstd:
		t, err := readSeekTable(r, storedSize)
		if err != nil {
			return 0, err
		}
		return t.size(), nil
	}
	return 0, fmt.Errorf("%w: encoding %q", ErrUnsupported, encoding)
}
