package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/memstore"
	"github.com/casa-go/casa/cas/s3store"
	"github.com/casa-go/casa/internal/testutil"
	"github.com/casa-go/casa/internal/testutil/imagetest"
)

// process is the built app running as a child process.
type process struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	out  *syncBuffer // stderr and stdout: the app's log
	data string      // its -data directory
	base string      // http://127.0.0.1:port, once serving
	done chan struct{}
}

// servingRE finds the app's "serving" log line.
var servingRE = regexp.MustCompile(`msg=serving url=(http://127\.0\.0\.1:\d+)/`)

// launchBinary starts bin on a free port (-addr 127.0.0.1:0) with a fresh
// -data directory and args, and returns at once; wait for it with
// waitServing. env is added to the test's environment. The process is
// interrupted (as Ctrl-C would) when the test ends, killed if it does not
// exit within 10 s.
func launchBinary(t *testing.T, bin, name string, env []string, args ...string) *process {
	t.Helper()
	p := &process{t: t, name: name, out: &syncBuffer{}, data: t.TempDir(), done: make(chan struct{})}
	p.cmd = exec.Command(bin, append([]string{"-addr", "127.0.0.1:0", "-data", p.data}, args...)...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	require.NoError(t, p.cmd.Start())
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(p.stop)
	return p
}

// startBinary is launchBinary, then waitServing.
func startBinary(t *testing.T, bin, name string, env []string, args ...string) *process {
	t.Helper()
	p := launchBinary(t, bin, name, env, args...)
	p.waitServing()
	return p
}

// waitServing waits up to a minute for the app's "serving" line and
// records its URL; an exit before it fails the test with the log.
func (p *process) waitServing() {
	p.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if m := servingRE.FindStringSubmatch(p.out.String()); m != nil {
			p.base = m[1]
			return
		}
		select {
		case <-p.done:
			p.t.Fatalf("%s exited before serving: %v\n%s", p.name, p.cmd.ProcessState, p.out)
		case <-time.After(10 * time.Millisecond):
		}
	}
	p.t.Fatalf("%s is not serving after a minute:\n%s", p.name, p.out)
}

// stop interrupts the process and waits for it to exit (killing it after
// 10 s). Calling it again does nothing.
func (p *process) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// get fetches path from the process and returns status, headers and body.
func (p *process) get(path string) (int, http.Header, []byte) {
	p.t.Helper()
	client := &http.Client{Timeout: time.Minute}
	resp, err := client.Get(p.base + path)
	require.NoError(p.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(p.t, err)
	return resp.StatusCode, resp.Header, b
}

// getJSON fetches path, requires 200 and decodes the body into out.
func (p *process) getJSON(path string, out any) {
	p.t.Helper()
	status, _, b := p.get(path)
	require.Equal(p.t, http.StatusOK, status, "%s GET %s: %s", p.name, path, b)
	require.NoError(p.t, json.Unmarshal(b, out), "%s GET %s: %s", p.name, path, b)
}

// post sends body to path and requires wantStatus; it decodes the answer
// into out when out is not nil.
func (p *process) post(path, contentType string, body io.Reader, wantStatus int, out any) {
	p.t.Helper()
	resp, err := http.Post(p.base+path, contentType, body)
	require.NoError(p.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(p.t, err)
	require.Equal(p.t, wantStatus, resp.StatusCode, "%s POST %s: %s", p.name, path, b)
	if out != nil {
		require.NoError(p.t, json.Unmarshal(b, out), "%s POST %s: %s", p.name, path, b)
	}
}

// scaleOut is one PostgreSQL schema and one fresh S3 bucket on the real
// servers of .ci/start-servers.sh, for replicas of the app to share.
type scaleOut struct {
	db      *testutil.DB
	s3      *testutil.RealS3
	bucket  string
	backend cas.Backend // the bucket, as the app sees it
}

// newScaleOut creates a fresh schema and bucket, or skips the test (fails
// it under CI=true) when the servers are not there.
func newScaleOut(t *testing.T) *scaleOut {
	t.Helper()
	db := testutil.NewPostgres(t)
	rs := testutil.NewRealS3(t)
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	bucket := "inventory-" + hex.EncodeToString(rnd[:])
	_, err := rs.Client.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String(bucket)})
	require.NoError(t, err)
	return &scaleOut{db: db, s3: rs, bucket: bucket, backend: s3store.New(rs.Client, bucket)}
}

// env is the child processes' AWS environment: SeaweedFS without
// -s3.config takes any static credentials.
var s3Env = []string{
	"AWS_ACCESS_KEY_ID=AKIDCASATEST", "AWS_SECRET_ACCESS_KEY=SECRETCASATEST",
	"AWS_CONFIG_FILE=/nonexistent", "AWS_SHARED_CREDENTIALS_FILE=/nonexistent",
}

// replicaSignKey is the -sign-key every replica shares.
const replicaSignKey = "replicas-share-this-key"

// args are the flags of a replica over the scale-out's database and bucket.
func (so *scaleOut) args(extra ...string) []string {
	return append([]string{"-db", so.db.DSN, "-s3-bucket", so.bucket, "-s3-endpoint", so.s3.Endpoint,
		"-s3-region", "us-east-1", "-s3-path-style", "-sign-key", replicaSignKey}, extra...)
}

// launch starts n replicas at once and waits until all serve.
func (so *scaleOut) launch(t *testing.T, bin string, names []string, extra ...string) []*process {
	t.Helper()
	ps := make([]*process, len(names))
	for i, name := range names {
		ps[i] = launchBinary(t, bin, name, s3Env, so.args(extra...)...)
	}
	for _, p := range ps {
		p.waitServing()
	}
	return ps
}

// TestReplicas builds the app once and runs it as replicas over the real
// PostgreSQL and S3 servers of .ci/start-servers.sh (each subtest with its
// own schema and bucket). Without the servers it skips (fails under
// CI=true).
func TestReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the app")
	}
	if os.Getenv(testutil.PostgresDSNEnv) == "" || os.Getenv(testutil.S3EndpointEnv) == "" {
		testutil.SkipMissing(t, "replicas need PostgreSQL and an S3 server: set %s and %s (eval \"$(.ci/start-servers.sh start)\" starts them)",
			testutil.PostgresDSNEnv, testutil.S3EndpointEnv)
	}
	start := time.Now()
	bin := buildApp(t, t.TempDir())
	t.Logf("build: %s", time.Since(start).Round(time.Millisecond))
	t.Run("share uploads and thumbnails", func(t *testing.T) { testReplicasShare(t, bin) })
	t.Run("migrate together", func(t *testing.T) { testReplicasMigrate(t, bin) })
}

// testReplicasShare starts two replicas of the built
// app, A and B, at once over one fresh PostgreSQL schema and one fresh
// SeeweedFS bucket (the schema is created by both at the same moment). An
// upload through A is listed by B with the same URLs and served by B with
// the same bytes. A thumbnail generated by A lands in the bucket, and B
// answers from there without generating: the test replaces the cached
// object with a marker JPEG, and B serves the marker. A third replica with
// -thumb-cache local generates its own, the control that shows the marker
// check can fail.
func testReplicasShare(t *testing.T, bin string) {
	start := time.Now()
	so := newScaleOut(t)
	r := so.launch(t, bin, []string{"A", "B"})
	a, b := r[0], r[1]

	// Upload through A.
	var part partJSON
	a.post("/api/parts", "application/json", strings.NewReader(`{"description":"shared by replicas"}`), http.StatusCreated, &part)
	photo := imagetest.JPEG(640, 480)
	body, ct := multipartBody(t, "photo", "photo.jpg", "image/jpeg", photo)
	var up attachmentJSON
	a.post("/api/parts/"+part.Key+"/attachments", ct, body, http.StatusCreated, &up)
	require.NotNil(t, up.DownloadURL)
	require.NotNil(t, up.ThumbnailURL)
	require.Contains(t, *up.DownloadURL, "sig=", "the replicas sign their URLs")

	// B lists it, with the same URLs, and serves the same bytes.
	var parts []partJSON
	b.getJSON("/api/parts", &parts)
	require.Len(t, parts, 1)
	require.Equal(t, part.Key, parts[0].Key)
	var atts []attachmentJSON
	b.getJSON("/api/parts/"+part.Key+"/attachments", &atts)
	require.Len(t, atts, 1)
	require.Equal(t, up.ID, atts[0].ID)
	require.Equal(t, *up.DownloadURL, *atts[0].DownloadURL)
	require.Equal(t, *up.ThumbnailURL, *atts[0].ThumbnailURL)
	status, _, got := b.get(*up.DownloadURL)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, photo, got)

	// A generates the thumbnail; it is now in the bucket, byte for byte.
	status, _, thumbA := a.get(*up.ThumbnailURL)
	require.Equal(t, http.StatusOK, status, "%s", thumbA)
	thumbKeys := keys(t, so.backend, cas.ThumbnailPrefix)
	require.Len(t, thumbKeys, 1, "A cached its thumbnail in the bucket")
	require.Equal(t, thumbA, readObject(t, so.backend, thumbKeys[0]))
	require.Empty(t, dirFiles(t, filepath.Join(b.data, "thumbnails")), "B has generated nothing yet")

	// Swap the cached object for a marker: a replica that reads the
	// bucket's cache serves the marker, one that generates serves a
	// thumbnail of the photo.
	marker := imagetest.JPEG(16, 12)
	require.NotEqual(t, thumbA, marker)
	_, err := so.s3.Client.PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String(so.bucket),
		Key: aws.String(thumbKeys[0]), Body: bytes.NewReader(marker), ContentType: aws.String("image/jpeg")})
	require.NoError(t, err)

	status, _, thumbB := b.get(*up.ThumbnailURL)
	require.Equal(t, http.StatusOK, status, "%s", thumbB)
	require.Equal(t, marker, thumbB, "B generated the thumbnail instead of reading A's from the bucket")
	require.Len(t, dirFiles(t, filepath.Join(b.data, "thumbnails")), 1, "B's hit in the bucket fills its local cache")
	// A answers from its own local cache, before the bucket.
	_, _, again := a.get(*up.ThumbnailURL)
	require.Equal(t, thumbA, again)

	// The control: a replica that does not share the cache generates.
	c := startBinary(t, bin, "C", s3Env, so.args("-thumb-cache", "local")...)
	status, _, thumbC := c.get(*up.ThumbnailURL)
	require.Equal(t, http.StatusOK, status, "%s", thumbC)
	require.NotEqual(t, marker, thumbC)
	require.Equal(t, thumbA, thumbC, "generation is deterministic")

	for _, p := range []*process{a, b, c} {
		p.stop()
		require.NotContains(t, p.out.String(), "level=ERROR", "%s's log", p.name)
	}
	t.Logf("replicas A, B and C over PostgreSQL + SeaweedFS: %s", time.Since(start).Round(time.Millisecond))
}

// dirFiles lists the regular files under dir (none if dir is missing).
func dirFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if os.IsNotExist(err) {
			return nil
		}
		if err == nil && d.Type().IsRegular() {
			files = append(files, path)
		}
		return err
	})
	require.NoError(t, err)
	return files
}

// migrationDoneRE is the app's log line at the end of its background
// migration.
var migrationDoneRE = regexp.MustCompile(`msg="background migration complete" migrated=(\d+) deduplicated=(\d+) conflicts=(\d+)`)

// testReplicasMigrate seeds legacy rows, then starts two replicas at the
// same moment, both migrating online (the default) the same rows at 50
// rows/s each, so that they overlap (without the limit, on a loaded
// machine, one replica may be done before the other has read a row). The
// migration must converge: every row committed exactly once (one standing
// journal entry per row, and the replicas' migrated counts add up to the
// rows), conflicts allowed, no failure; afterwards both replicas serve
// every row with its original bytes.
func testReplicasMigrate(t *testing.T, bin string) {
	start := time.Now()
	so := newScaleOut(t)

	// Seed 30 legacy parts: 60 file rows on UUID keys in the bucket.
	const parts = 30
	db, err := openDB(t.Context(), so.db.DSN)
	require.NoError(t, err)
	require.NoError(t, SeedLegacy(t.Context(), db, so.backend, parts))
	original := map[int64][]byte{} // row id -> its file's bytes
	rows, err := db.QueryContext(t.Context(), `SELECT id, storage_key FROM attachments WHERE storage_key IS NOT NULL`)
	require.NoError(t, err)
	for rows.Next() {
		var (
			id  int64
			key string
		)
		require.NoError(t, rows.Scan(&id, &key))
		require.False(t, cas.IsKey(key), key)
		original[id] = readObject(t, so.backend, key)
	}
	require.NoError(t, rows.Err())
	require.NoError(t, rows.Close())
	require.NoError(t, db.Close())
	require.Len(t, original, 2*parts)

	seeded := time.Now()
	r := so.launch(t, bin, []string{"A", "B"}, "-migrate-rate", "50")
	for _, p := range r {
		require.Eventually(t, func() bool { return migrationDoneRE.MatchString(p.out.String()) }, 2*time.Minute, 20*time.Millisecond,
			"%s did not complete its migration:\n%s", p.name, p.out)
	}
	converged := time.Since(seeded)

	// Each row migrated once: the replicas' commits add up to the rows...
	migrated, conflicts, both := 0, 0, true
	for _, p := range r {
		var st migrationJSON
		p.getJSON("/api/migration", &st)
		require.Equal(t, "complete", st.State, p.name)
		require.Zero(t, st.Pending, p.name)
		m := migrationDoneRE.FindStringSubmatch(p.out.String())
		n, _ := strconv.Atoi(m[1])
		c, _ := strconv.Atoi(m[3])
		migrated += n
		conflicts += c
		both = both && n > 0
		t.Logf("%s: migrated %d, conflicts %d", p.name, n, c)
	}
	require.Equal(t, len(original), migrated, "commits across replicas")
	require.True(t, both || conflicts > 0, "the replicas did not overlap: the test proved nothing")

	// ... and the journal holds one standing commit per row, no other.
	standing := map[int64]int{}
	jrows, err := so.db.QueryContext(t.Context(), `SELECT record_id, COUNT(*) FROM attachments_casa_journal
		WHERE kind = 'commit' AND reverted_ns IS NULL GROUP BY record_id`)
	require.NoError(t, err)
	for jrows.Next() {
		var (
			id string
			n  int
		)
		require.NoError(t, jrows.Scan(&id, &n))
		i, err := strconv.ParseInt(id, 10, 64)
		require.NoError(t, err)
		standing[i] = n
	}
	require.NoError(t, jrows.Err())
	require.NoError(t, jrows.Close())
	require.Len(t, standing, len(original))
	for id := range original {
		require.Equal(t, 1, standing[id], "journal entries of row %d", id)
	}

	// Both replicas serve every row, with its original bytes.
	served := 0
	for _, p := range r {
		var list []partJSON
		p.getJSON("/api/parts?limit=1000", &list)
		require.Len(t, list, parts)
		for _, pt := range list {
			var atts []attachmentJSON
			p.getJSON("/api/parts/"+pt.Key+"/attachments", &atts)
			for _, at := range atts {
				if at.DownloadURL == nil {
					continue // the URL attachment
				}
				require.Contains(t, *at.DownloadURL, "/api/cas/", "row %d is migrated", at.ID)
				status, _, body := p.get(*at.DownloadURL)
				require.Equal(t, http.StatusOK, status, "%s row %d", p.name, at.ID)
				require.Equal(t, original[at.ID], body, "%s row %d", p.name, at.ID)
				sum := sha256.Sum256(body)
				require.Contains(t, *at.DownloadURL, hex.EncodeToString(sum[:]))
				served++
			}
		}
	}
	require.Equal(t, 2*len(original), served)

	for _, p := range r {
		p.stop()
		log := p.out.String()
		require.NotContains(t, log, "attachment not migrated", p.name)
		require.NotContains(t, log, "background migration stopped", p.name)
		require.NotContains(t, log, "level=ERROR", p.name)
	}
	t.Logf("migration of %d rows by two replicas at once: converged in %s, %d migrated, %d conflicts, 0 failures; subtest %s",
		len(original), converged.Round(time.Millisecond), migrated, conflicts, time.Since(start).Round(time.Millisecond))
}

// TestConcurrentSchemaAndSeed opens the app's database on PostgreSQL from
// several goroutines at once, each creating the schema and then seeding,
// as replicas starting together do. Without the advisory lock PostgreSQL
// fails one of the concurrent CREATE TABLE IF NOT EXISTS (duplicate key
// in pg_type); with the lock but without the look before the DDL, an
// opener's CREATE INDEX IF NOT EXISTS deadlocks with another's seeding.
func TestConcurrentSchemaAndSeed(t *testing.T) {
	pg := testutil.NewPostgres(t)
	const n = 6
	b := memstore.New()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			db, err := openDB(t.Context(), pg.DSN)
			if err == nil {
				err = SeedLegacy(t.Context(), db, b, 1)
				_ = db.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "opener %d", i)
	}
	require.Equal(t, n, countRows(t, pg.DB, "parts"))
	require.Equal(t, 3*n, countRows(t, pg.DB, "attachments"))
}
