package main_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/internal/testutil"
	"github.com/casa-go/casa/internal/testutil/s3test"
)

// putJSON is one entry of `casa put -json`.
type putJSON struct {
	File         string `json:"file"`
	Hash         string `json:"hash"`
	Key          string `json:"key"`
	Size         int64  `json:"size"`
	Deduplicated bool   `json:"deduplicated"`
}

// verifyJSON is `casa verify -json`.
type verifyJSON struct {
	Checked int   `json:"checked"`
	OK      int   `json:"ok"`
	Bytes   int64 `json:"bytes"`
	Corrupt []struct {
		Hash, Error string
	} `json:"corrupt"`
	Missing []struct{ Hash string } `json:"missing"`
	Errors  []struct {
		Hash, Error string
	} `json:"errors"`
}

// roundTrip puts files through c (whose environment or store flags name
// the store), gets them back, stats, lists and verifies them, and returns
// the blobs' hashes.
func roundTrip(t *testing.T, c *cli, store ...string) []cas.Hash {
	t.Helper()
	small := testutil.Bytes(1, 1000)
	large := testutil.Bytes(2, 3<<20+17) // several of the SDK's and fsstore's buffers
	a := writeFile(t, c.dir, "a.pdf", small)
	b := writeFile(t, c.dir, "b.bin", large)
	dup := writeFile(t, c.dir, "copy-of-a.pdf", small)

	// Text output: "HASH KEY FILE" per file.
	r := c.ok(append([]string{"put"}, append(store, a)...)...)
	ha := cas.SumBytes(small)
	require.Equal(t, ha.String()+" "+ha.Key()+" "+a+"\n", r.stdout)

	// JSON output, flags after the files, a duplicate deduplicated.
	r = c.ok(append([]string{"put", b, dup, "-json"}, store...)...)
	var puts []putJSON
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &puts), r.stdout)
	require.Len(t, puts, 2)
	hb := cas.SumBytes(large)
	require.Equal(t, putJSON{File: b, Hash: hb.String(), Key: hb.Key(), Size: int64(len(large))}, puts[0])
	require.Equal(t, putJSON{File: dup, Hash: ha.String(), Key: ha.Key(), Size: 1000, Deduplicated: true}, puts[1])

	// get to standard output and to a file.
	r = c.ok(append([]string{"get", hb.String()}, store...)...)
	require.True(t, bytes.Equal(large, []byte(r.stdout)), "get to stdout returns the bytes put")
	out := filepath.Join(c.dir, "out", "a-again.pdf")
	require.NoError(t, os.MkdirAll(filepath.Dir(out), 0o755))
	r = c.ok(append([]string{"get", ha.Key(), "-o", out, "-json"}, store...)...)
	got, err := os.ReadFile(out)
	require.NoError(t, err)
	require.Equal(t, small, got)
	var gj struct {
		Hash string
		Size int64
		File string
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &gj), r.stdout)
	require.Equal(t, ha.String(), gj.Hash)
	require.EqualValues(t, 1000, gj.Size)

	// stat.
	r = c.ok(append([]string{"stat", "-json", hb.String()}, store...)...)
	var st struct {
		Key, Hash string
		Size      int64
		Modified  string
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &st), r.stdout)
	require.Equal(t, hb.Key(), st.Key)
	require.Equal(t, int64(len(large)), st.Size)
	require.NotEmpty(t, st.Modified)

	// ls: text and JSON Lines, in key order.
	r = c.ok(append([]string{"ls"}, store...)...)
	want := []string{ha.String() + " 1000", hb.String() + " " + strconv.Itoa(len(large))}
	if hb.String() < ha.String() {
		want[0], want[1] = want[1], want[0]
	}
	require.Equal(t, want, lines(r.stdout))
	require.Contains(t, r.stderr, "2 objects")
	r = c.ok(append([]string{"ls", "-json"}, store...)...)
	ls := lines(r.stdout)
	require.Len(t, ls, 2)
	for _, l := range ls {
		var o struct {
			Key, Hash string
			Size      int64
		}
		require.NoError(t, json.Unmarshal([]byte(l), &o), l)
		require.Equal(t, cas.KeyPrefix+o.Hash, o.Key)
	}

	// verify: everything, then the named blobs; progress lines on stderr.
	r = c.ok(append([]string{"verify"}, store...)...)
	require.Empty(t, r.stdout, "no problems to report")
	require.Contains(t, r.stderr, "casa verify: 2 blobs")
	require.Contains(t, r.stderr, "2 ok")
	r = c.ok(append([]string{"verify", "-json", ha.String(), hb.String()}, store...)...)
	var vj verifyJSON
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &vj), r.stdout)
	require.Equal(t, 2, vj.Checked)
	require.Equal(t, 2, vj.OK)
	require.Equal(t, int64(len(small)+len(large)), vj.Bytes)
	require.Empty(t, vj.Corrupt)
	return []cas.Hash{ha, hb}
}

// requireCorruptionFound checks verify and get on a blob whose stored
// bytes were replaced.
func requireCorruptionFound(t *testing.T, c *cli, bad, good cas.Hash, store ...string) {
	t.Helper()
	r := c.run(append([]string{"verify"}, store...)...)
	require.Equal(t, 3, r.code, "exit code 3: corruption; stdout: %s; stderr: %s", r.stdout, r.stderr)
	require.Equal(t, []string{"CORRUPT " + bad.String() + ": " + firstLineAfter(r.stdout, bad.String()+": ")}, lines(r.stdout))
	require.Contains(t, r.stdout, "digest mismatch")
	require.NotContains(t, r.stdout, good.String())

	r = c.run(append([]string{"verify", "-json"}, store...)...)
	require.Equal(t, 3, r.code)
	var vj verifyJSON
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &vj), r.stdout)
	require.Equal(t, 2, vj.Checked)
	require.Equal(t, 1, vj.OK)
	require.Len(t, vj.Corrupt, 1)
	require.Equal(t, bad.String(), vj.Corrupt[0].Hash)

	// The good one alone verifies.
	c.ok(append([]string{"verify", good.String()}, store...)...)

	// get refuses the corrupt bytes and leaves no file behind.
	out := filepath.Join(c.dir, "corrupt-out")
	r = c.run(append([]string{"get", bad.String(), "-o", out}, store...)...)
	requireOneLineError(t, r, 3, bad.String())
	_, err := os.Stat(out)
	require.ErrorIs(t, err, os.ErrNotExist)
	entries, err := os.ReadDir(c.dir)
	require.NoError(t, err)
	for _, e := range entries {
		require.NotContains(t, e.Name(), "corrupt-out", "no temporary file left")
	}
}

func firstLineAfter(s, marker string) string {
	_, rest, _ := strings.Cut(s, marker)
	l, _, _ := strings.Cut(rest, "\n")
	return l
}

func TestRoundTripFS(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	dir := filepath.Join(t.TempDir(), "store") // does not exist yet: created
	hashes := roundTrip(t, c, "-dir", dir)

	// The environment names the store as well as the flag does.
	r := c.with("CASA_DIR=" + dir).ok("ls")
	require.Len(t, lines(r.stdout), 2)

	// Bit rot: overwrite one blob's file (fsstore makes them read-only).
	bad, good := hashes[1], hashes[0]
	p := filepath.Join(dir, "cas", bad.String()[:2], bad.String())
	require.NoError(t, os.Chmod(p, 0o644))
	require.NoError(t, os.WriteFile(p, testutil.Bytes(99, 3<<20+17), 0o644))
	requireCorruptionFound(t, c, bad, good, "-dir", dir)

	// put - reads standard input.
	in := testutil.Bytes(7, 100000)
	withStdin := *c
	withStdin.stdin = bytes.NewReader(in)
	r = withStdin.ok("put", "-dir", dir, "-")
	h := cas.SumBytes(in)
	require.Equal(t, h.String()+" "+h.Key()+" -\n", r.stdout)
	c.ok("verify", "-dir", dir, h.String())

	// A named blob that is not stored: exit code 4.
	missing := cas.SumBytes([]byte("never stored"))
	r = c.run("verify", "-dir", dir, missing.String())
	require.Equal(t, 4, r.code, r.stderr)
	require.Equal(t, []string{"MISSING " + missing.String()}, lines(r.stdout))
	r = c.run("stat", "-dir", dir, missing.String())
	requireOneLineError(t, r, 4, missing.String(), "not found")
}

func TestRoundTripS3(t *testing.T) {
	t.Parallel()
	srv := s3test.New(t)
	// The store from the environment, as a deployment would set it.
	c := newCLI(t, "CASA_S3_BUCKET="+srv.Bucket, "CASA_S3_ENDPOINT="+srv.URL, "CASA_S3_PATH_STYLE=true")
	hashes := roundTrip(t, c)
	require.ElementsMatch(t, []string{hashes[0].Key(), hashes[1].Key()}, srv.ObjectKeys(t), "the blobs are in the bucket")

	bad, good := hashes[0], hashes[1]
	srv.Seed(t, bad.Key(), []byte("rotten bytes"))
	requireCorruptionFound(t, c, bad, good)
}

func TestRoundTripRealS3(t *testing.T) {
	t.Parallel()
	s := testutil.NewRealS3(t)
	c := newCLI(t)
	store := []string{"-s3-bucket", s.Bucket, "-s3-endpoint", s.Endpoint, "-s3-path-style", "-s3-prefix", s.Prefix}
	hashes := roundTrip(t, c, store...)
	t.Cleanup(func() {
		for _, h := range hashes {
			_, _ = s.Client.DeleteObject(t.Context(), &s3.DeleteObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String(s.Prefix + h.Key())})
		}
	})
	// Bit rot on the server: a plain PUT over one blob.
	bad, good := hashes[1], hashes[0]
	_, err := s.Client.PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String(s.Prefix + bad.Key()), Body: bytes.NewReader([]byte("rotten bytes"))})
	require.NoError(t, err)
	requireCorruptionFound(t, c, bad, good, store...)
}

// objectInfoJSON is `casa stat -json` and a line of `casa ls -json`.
type objectInfoJSON struct {
	Hash     string `json:"hash"`
	Size     int64  `json:"size"`
	Encoding string `json:"encoding"`
	Stored   int64  `json:"stored_size"`
}

// TestPutCompress: put -compress stores a text file zstd-compressed (stat
// and ls -json show the encoding and the smaller stored size, stat's text
// a "stored:" line), get returns its bytes and verify passes; a JPEG is
// stored as it is; a plain put of the text deduplicates.
func TestPutCompress(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	dir := filepath.Join(t.TempDir(), "store")
	text := testutil.Text(3, 500<<10)
	jpeg := append([]byte{0xFF, 0xD8, 0xFF, 0xE0}, testutil.Bytes(4, 100<<10)...)
	tf := writeFile(t, c.dir, "bom.csv", text)
	jf := writeFile(t, c.dir, "photo.jpg", jpeg)
	c.ok("put", "-compress", "-dir", dir, tf, jf)
	ht, hj := cas.SumBytes(text), cas.SumBytes(jpeg)

	var info objectInfoJSON
	require.NoError(t, json.Unmarshal([]byte(c.ok("stat", "-json", "-dir", dir, ht.String()).stdout), &info))
	require.Equal(t, objectInfoJSON{Hash: ht.String(), Size: int64(len(text)), Encoding: "zstd", Stored: info.Stored}, info)
	require.Positive(t, info.Stored)
	require.Less(t, info.Stored, int64(len(text))/2)
	require.Contains(t, c.ok("stat", "-dir", dir, ht.String()).stdout, "stored:   "+strconv.FormatInt(info.Stored, 10)+" bytes, zstd\n")
	var jinfo objectInfoJSON
	require.NoError(t, json.Unmarshal([]byte(c.ok("stat", "-json", "-dir", dir, hj.String()).stdout), &jinfo))
	require.Equal(t, objectInfoJSON{Hash: hj.String(), Size: int64(len(jpeg))}, jinfo, "a JPEG is stored as it is")

	got := filepath.Join(c.dir, "got.csv")
	c.ok("get", "-dir", dir, "-o", got, ht.String())
	b, err := os.ReadFile(got)
	require.NoError(t, err)
	require.True(t, bytes.Equal(text, b), "get returns the bytes")
	c.ok("verify", "-dir", dir)

	encodings := map[string]string{}
	for _, l := range lines(c.ok("ls", "-json", "-dir", dir).stdout) {
		var o objectInfoJSON
		require.NoError(t, json.Unmarshal([]byte(l), &o))
		encodings[o.Hash] = o.Encoding
	}
	require.Equal(t, map[string]string{ht.String(): "zstd", hj.String(): ""}, encodings)

	var res []putJSON
	require.NoError(t, json.Unmarshal([]byte(c.ok("put", "-json", "-dir", dir, tf).stdout), &res))
	require.Len(t, res, 1)
	require.True(t, res[0].Deduplicated, "a plain put of the compressed blob")
}
