package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestGCTracePeak(t *testing.T) {
	t.Parallel()
	trace := strings.Join([]string{
		"gc 1 @0.010s 2%: 0.011+0.52+0.003 ms clock, 0.022+0.1/0.4/0.2+0.006 ms cpu, 4->4->1 MB, 4 MB goal, 0 MB stacks, 0 MB globals, 2 P",
		"listening on 127.0.0.1:8080",
		"gc 2 @0.050s 2%: 0.011+0.52+0.003 ms clock, 0.022+0.1/0.4/0.2+0.006 ms cpu, 17->18->3 MB, 9 MB goal, 0 MB stacks, 0 MB globals, 2 P",
		"gc 3 @0.090s 2%: 0.011+0.52+0.003 ms clock, 0.022+0.1/0.4/0.2+0.006 ms cpu, 6->6->2 MB, 7 MB goal, 0 MB stacks, 0 MB globals, 2 P",
	}, "\n") + "\n"
	g := newGCTrace(strings.NewReader(trace))
	require.Eventually(t, func() bool { return g.peak() == "17 MiB" }, time.Second, time.Millisecond)
	require.Contains(t, g.tail(), "listening on", "non-GC lines are kept for error reports")
	g.resetPeak()
	require.Equal(t, "no GC during the run", g.peak())
}

func TestPairedPropagatesErrors(t *testing.T) {
	t.Parallel()
	ok := func(int) (time.Duration, error) { return time.Millisecond, nil }
	boom := errors.New("boom")
	bad := func(i int) (time.Duration, error) {
		if i == 1 {
			return 0, boom
		}
		return time.Millisecond, nil
	}
	ra, rb, err := paired(3*time.Millisecond, ok, ok)
	require.NoError(t, err)
	require.InDelta(t, 1000, ra, 1, "1 ms of counted time per op is 1000 op/s")
	require.InDelta(t, 1000, rb, 1)
	_, _, err = paired(3*time.Millisecond, ok, bad)
	require.ErrorIs(t, err, boom)
}

func TestReportMarksFailures(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	report(&buf, &config{quick: true}, []row{
		{Section: "S", Name: "fast", Figure: "2", Peer: "1", Ratio: 2, Target: ">= 1", Pass: true},
		{Section: "S", Name: "slow", Figure: "0.5", Peer: "1", Ratio: 0.5, Target: ">= 1", Pass: false},
		{Section: "T", Name: "plain", Figure: "7"},
	}, map[string]string{"T": "How to read T."}, time.Second)
	out := buf.String()
	require.Contains(t, out, "| fast | 2 | 1 | 2.00 | >= 1 | pass |")
	require.Contains(t, out, "| slow | 0.5 | 1 | 0.50 | >= 1 | FAIL |")
	require.Contains(t, out, "| plain | 7 |  |  |  | info |")
	require.Equal(t, 1, strings.Count(out, "## S"), "one heading per section")
	require.Contains(t, out, "quick (-quick)")
	require.Contains(t, out, "## T\n\nHow to read T.\n\n| measurement", "a section's note sits between its title and its table")
	require.NotContains(t, out, "## S\n\n\n", "a section without a note has none")
}

func TestInterleavedRunsEveryOpEveryRound(t *testing.T) {
	t.Parallel()
	var calls [3]int
	count := func(k int) op {
		return func(int) (time.Duration, error) { calls[k]++; return time.Millisecond, nil }
	}
	r, err := interleaved(3*time.Millisecond, count(0), count(1), count(2))
	require.NoError(t, err)
	require.Len(t, r, 3)
	for k, n := range calls {
		require.GreaterOrEqual(t, n, 2*rounds, "op %d ran at least twice in each of the %d rounds", k, rounds)
		require.InDelta(t, 1000, r[k], 1, "op %d: 1 ms of counted time per op is 1000 op/s", k)
	}
}

func TestLinkNextMatchesTheAppsHeader(t *testing.T) {
	t.Parallel()
	m := linkNext.FindStringSubmatch(`</api/parts?after=MjAyNi0x&limit=25>; rel="next"`)
	require.Equal(t, []string{`</api/parts?after=MjAyNi0x&limit=25>; rel="next"`, "/api/parts?after=MjAyNi0x&limit=25"}, m)
	require.Nil(t, linkNext.FindStringSubmatch(`</api/parts?after=x>; rel="prev"`), "only rel=next is followed")
}

func TestCopyTreeCopiesFilesAndDirectories(t *testing.T) {
	t.Parallel()
	src, dst := t.TempDir(), filepath.Join(t.TempDir(), "copy")
	require.NoError(t, os.MkdirAll(filepath.Join(src, "blobs", "legacy"), 0o750))
	require.NoError(t, os.WriteFile(filepath.Join(src, "inventory.db"), []byte("db"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(src, "blobs", "legacy", "k"), []byte("blob"), 0o600))
	require.NoError(t, copyTree(src, dst))
	b, err := os.ReadFile(filepath.Join(dst, "blobs", "legacy", "k"))
	require.NoError(t, err)
	require.Equal(t, "blob", string(b))
	b, err = os.ReadFile(filepath.Join(dst, "inventory.db"))
	require.NoError(t, err)
	require.Equal(t, "db", string(b))
}

func TestLoadResultPercentiles(t *testing.T) {
	t.Parallel()
	r := &loadResult{}
	require.Zero(t, r.pct(0.99), "no requests: no latency")
	for i := 1; i <= 100; i++ {
		r.lats = append(r.lats, time.Duration(i)*time.Millisecond)
	}
	require.Equal(t, 51*time.Millisecond, r.pct(0.50))
	require.Equal(t, 100*time.Millisecond, r.pct(0.99))
	r.fail(errors.New("GET /x: status 503"))
	r.null("download_url of attachment 7")
	require.Equal(t, "1 (first: GET /x: status 503)", r.errText())
	require.Equal(t, "1 (first: download_url of attachment 7)", r.nullText())
}

func TestLimitOpsWriteAFreshFileAndLeaveNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	data := bytes.Repeat([]byte("casa"), putChunk/2+3) // two chunks and a short one
	hash, write := limitOps(dir, data)
	for i := range 2 {
		d, err := write(i)
		require.NoError(t, err)
		require.Positive(t, d)
		d, err = hash(i)
		require.NoError(t, err)
		require.Positive(t, d)
	}
	left, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Empty(t, left, "the written files are removed")
	_, err = write(2)
	require.NoError(t, err)
	require.NoError(t, os.Remove(dir))
	_, err = write(3)
	require.Error(t, err, "a write into a missing directory fails")
}
