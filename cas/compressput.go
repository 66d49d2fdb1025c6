package cas

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"runtime"
	"sync"
)

// putCompressible is Put under a compression policy: it reads a sample,
// decides, and stores the blob compressed or as it is. Either way each
// byte is hashed once, by the path that stores it.
func (s *Store) putCompressible(ctx context.Context, src io.Reader, want *Hash, cfg putConfig) (PutResult, error) {
	if cfg.contentType != "" && refusedType(cfg.contentType) {
		return s.putRaw(ctx, src, want, cfg)
	}
	sample := make([]byte, SampleSize)
	n, err := io.ReadFull(src, sample)
	sample = sample[:n]
	final := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
	if err != nil && !final {
		return PutResult{}, fmt.Errorf("cas: put: %w", err)
	}
	rest := io.Reader(bytes.NewReader(sample))
	if !final {
		rest = io.MultiReader(rest, src)
	}
	if compressedFormat(sample) {
		return s.putRaw(ctx, rest, want, cfg)
	}
	enc, err := s.encoder()
	if err != nil {
		return PutResult{}, fmt.Errorf("cas: put: %w", err)
	}
	if !worthCompressing(enc, sample, final, s.compression.MinSaving) {
		return s.putRaw(ctx, rest, want, cfg)
	}
	return s.putCompressed(ctx, enc, rest, want, cfg)
}

// putCompressed compresses src in independent frames of the policy's
// chunk size, hashing the uncompressed bytes as they pass, and stores the
// frames and their seek table marked EncodingZstd: streamed into a Staged
// of the Backend when it can commit encoded bytes (EncodedCommitter),
// else spooled and uploaded.
func (s *Store) putCompressed(ctx context.Context, enc FrameEncoder, src io.Reader, want *Hash, cfg putConfig) (PutResult, error) {
	obj, err := s.c.stageEncoded(ctx)
	if err != nil {
		return PutResult{}, fmt.Errorf("cas: stage: %w", err)
	}
	if obj != nil {
		return s.putCompressedStaged(ctx, enc, src, want, cfg, obj)
	}
	sp := &spool{dir: s.tempDir, threshold: s.spool}
	defer sp.close()
	d := s.newHash()
	n, comp, dec, err := compressFrames(enc, s.compression.ChunkSize, src, d, sp, &s.frameBufs)
	if err != nil {
		return PutResult{}, fmt.Errorf("cas: put: %w", err)
	}
	if _, err := sp.Write(appendSeekTable(nil, comp, dec)); err != nil {
		return PutResult{}, fmt.Errorf("cas: spool: %w", err)
	}
	h, err := s.check(ctx, d, n, want)
	if err != nil {
		return PutResult{}, err
	}
	body, err := sp.reader()
	if err != nil {
		return PutResult{}, fmt.Errorf("cas: spool: %w", err)
	}
	// No SHA256: the Store has hashed the uncompressed bytes, which the
	// key names; nobody hashes the stored form.
	return s.upload(ctx, PutResult{Hash: h, Size: n}, body, sp.n, PutOptions{
		IfAbsent: true, ContentType: cfg.contentType, Encoding: EncodingZstd, DecodedSize: n,
	})
}

// putCompressedStaged is putCompressed into obj: the frames are written as
// they are made, and obj is committed encoded under the hash as
// commitStaged decides (deduplicated, create-only, or replacing a corrupt
// stored form).
func (s *Store) putCompressedStaged(ctx context.Context, enc FrameEncoder, src io.Reader, want *Hash, cfg putConfig, obj *checkedStaged) (res PutResult, err error) {
	finished := false
	defer func() {
		if !finished {
			_ = obj.Abort()
		}
	}()
	d := s.newHash()
	n, comp, dec, err := compressFrames(enc, s.compression.ChunkSize, src, d, obj, &s.frameBufs)
	if err != nil {
		return res, fmt.Errorf("cas: put: %w", err)
	}
	if _, err := obj.Write(appendSeekTable(nil, comp, dec)); err != nil {
		return res, fmt.Errorf("cas: put: %w", err)
	}
	h, err := s.check(ctx, d, n, want)
	if err != nil {
		return res, err
	}
	finished = true
	// The options of the spooled route's upload: the content type
	// too, for a Backend that keeps one.
	opts := PutOptions{ContentType: cfg.contentType, Encoding: EncodingZstd, DecodedSize: n}
	return s.commitStaged(ctx, PutResult{Hash: h, Size: n}, obj,
		func() error { opts.IfAbsent = true; return obj.commitEncoded(ctx, h.Key(), opts) },
		func() error { opts.IfAbsent = false; return obj.commitEncoded(ctx, h.Key(), opts) })
}

// frameJob is one chunk on its way through compressFrames.
type frameJob struct {
	in, out []byte
	done    chan struct{} // closed when out holds the frame
}

// compressFrames reads src in chunks of chunk bytes, hashes each into d
// and compresses it into one zstd frame, up to GOMAXPROCS chunks at once,
// and writes the frames to w in order. It returns the bytes read and the
// stored and decoded size of every frame. Memory is bounded by a few
// chunks, whatever the blob's size; the chunks' buffers are taken from
// pool (made as needed) and go back to it at the end, so the Puts of a
// Store share them.
func compressFrames(enc FrameEncoder, chunk int, src io.Reader, d hash.Hash, w io.Writer, pool *sync.Pool) (n int64, comp, dec []uint32, err error) {
	depth := runtime.GOMAXPROCS(0) + 1
	var (
		free   = make(chan *frameJob, depth)
		order  = make(chan *frameJob, depth)
		failed = make(chan struct{}) // closed when a Write fails
		done   = make(chan struct{})
		werr   error
		made   int
	)
	go func() {
		defer close(done)
		for j := range order {
			<-j.done
			if werr == nil {
				if werr = checkFrame(j.out); werr == nil {
					_, werr = w.Write(j.out)
				}
				if werr != nil {
					close(failed)
				}
				comp = append(comp, uint32(len(j.out)))
				dec = append(dec, uint32(len(j.in)))
			}
			free <- j
		}
	}()
	var rerr error
loop:
	for frames := 0; ; frames++ {
		if frames >= maxFrames {
			rerr = fmt.Errorf("%w: more than %d chunks of %d bytes", ErrTooLarge, maxFrames, chunk)
			break
		}
		var j *frameJob
		select {
		case j = <-free:
		case <-failed:
			break loop
		default:
			if made < depth {
				made++
				j, _ = pool.Get().(*frameJob)
				if j == nil || cap(j.in) != chunk {
					j = &frameJob{in: make([]byte, chunk)}
				}
				j.in = j.in[:chunk]
				break
			}
			select {
			case j = <-free:
			case <-failed:
				break loop
			}
		}
		m, err := io.ReadFull(src, j.in[:chunk])
		if m > 0 {
			j.in = j.in[:m]
			n += int64(m)
			j.done = make(chan struct{})
			order <- j
			go func() {
				j.out = enc.EncodeAll(j.in, j.out[:0])
				close(j.done)
			}()
			d.Write(j.in) // concurrent with the encoder: both only read j.in
		} else {
			free <- j
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			rerr = err
			break
		}
	}
	close(order)
	<-done
	// Every job made is back in free: the writer returns each it takes.
	for len(free) > 0 {
		pool.Put(<-free)
	}
	if rerr != nil {
		return n, nil, nil, rerr
	}
	return n, comp, dec, werr
}

// spool holds bytes in memory up to threshold, and in a temporary file in
// dir beyond it.
type spool struct {
	dir       string
	threshold int64
	mem       bytes.Buffer
	f         *os.File
	n         int64
}

func (s *spool) Write(p []byte) (int, error) {
	if s.f == nil && int64(s.mem.Len()+len(p)) > s.threshold {
		f, err := os.CreateTemp(s.dir, "casa-spool-*")
		if err != nil {
			return 0, err
		}
		s.f = f
		if _, err := f.Write(s.mem.Bytes()); err != nil {
			return 0, err
		}
		s.mem = bytes.Buffer{}
	}
	var (
		m   int
		err error
	)
	if s.f != nil {
		m, err = s.f.Write(p)
	} else {
		m, err = s.mem.Write(p)
	}
	s.n += int64(m)
	return m, err
}

// reader returns the spooled bytes from the start.
func (s *spool) reader() (io.ReadSeeker, error) {
	if s.f == nil {
		return bytes.NewReader(s.mem.Bytes()), nil
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return s.f, nil
}

// close removes the temporary file, if any.
func (s *spool) close() {
	if s.f != nil {
		_ = s.f.Close()
		_ = os.Remove(s.f.Name())
	}
}

// zstdMagic begins every zstd frame (RFC 8878 3.1.1), little-endian.
const zstdMagic = 0xFD2FB528

// checkFrame makes sure that frame, from a Compression.Encoder, is one
// zstd frame with its content checksum, which reads check: without it a
// damaged frame could decode to other bytes unnoticed.
func checkFrame(frame []byte) error {
	const checksumFlag = 1 << 2 // Frame_Header_Descriptor, RFC 8878 3.1.1.1.1
	switch {
	case len(frame) < 5 || binary.LittleEndian.Uint32(frame) != zstdMagic:
		return fmt.Errorf("%w: the compression encoder wrote no zstd frame", ErrUnsupported)
	case frame[4]&checksumFlag == 0:
		return fmt.Errorf("%w: the compression encoder wrote a zstd frame without its content checksum", ErrUnsupported)
	}
	return nil
}
