package migrate_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/migrate"
)

func TestRunRecordsPerSecond(t *testing.T) {
	t.Parallel()
	_, e := memEnv()
	m, _ := seed(t, e, 11)
	start := time.Now()
	rep, err := migrate.Run(context.Background(), e.store, m, e.with(migrate.Options{Concurrency: 8, RecordsPerSecond: 50}))
	require.NoError(t, err)
	require.NoError(t, rep.Err())
	// A burst of 1, then 10 more records at 50/s: at least 200 ms.
	require.GreaterOrEqual(t, time.Since(start), 190*time.Millisecond)
}

func TestRunBytesPerSecond(t *testing.T) {
	t.Parallel()
	_, e := memEnv()
	m, want := seed(t, e, 10)
	var total int64
	for _, d := range want {
		total += int64(len(d))
	}
	const rate = 4000
	start := time.Now()
	rep, err := migrate.Run(context.Background(), e.store, m, e.with(migrate.Options{Concurrency: 8, BytesPerSecond: rate}))
	require.NoError(t, err)
	require.NoError(t, rep.Err())
	require.Equal(t, total, rep.Bytes)
	burst := time.Duration(float64(rate/10) / rate * float64(time.Second))
	min := time.Duration(float64(total)/rate*float64(time.Second)) - burst
	require.GreaterOrEqual(t, time.Since(start), min-10*time.Millisecond, "%d bytes at %d B/s", total, rate)
}

func TestRunRateLimitStopsOnCancel(t *testing.T) {
	t.Parallel()
	_, e := memEnv()
	m, _ := seed(t, e, 50)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	start := time.Now()
	rep, err := migrate.Run(ctx, e.store, m, e.with(migrate.Options{RecordsPerSecond: 10}))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), 2*time.Second, "a waiting run stops on cancel, not after 5 s")
	require.Less(t, rep.Migrated, 50)
	require.ErrorIs(t, rep.Err(), migrate.ErrIncomplete)
}

func TestRunRejectsNegativeRates(t *testing.T) {
	t.Parallel()
	_, e := memEnv()
	m, _ := seed(t, e, 1)
	_, err := migrate.Run(context.Background(), e.store, m, e.with(migrate.Options{RecordsPerSecond: -1}))
	require.ErrorContains(t, err, "negative rate")
	_, err = migrate.Run(context.Background(), e.store, m, e.with(migrate.Options{BytesPerSecond: -1}))
	require.ErrorContains(t, err, "negative rate")
	require.Equal(t, 1, m.pendingCount(), "nothing migrated")
}

func TestStatus(t *testing.T) {
	t.Parallel()
	_, e := memEnv()
	m, _ := seed(t, e, 6)
	m.set("zz-missing", "uploads/missing") // sorts last: fails after the gate
	var st migrate.Status
	require.False(t, st.Started())

	// Read the Status from another goroutine while the run goes on.
	gate := make(chan struct{})
	m.beforeCommit = func(migrate.Record) error { <-gate; return nil }
	done := make(chan struct{})
	var (
		rep migrate.Report
		err error
	)
	go func() {
		defer close(done)
		rep, err = migrate.Run(context.Background(), e.store, m, e.with(migrate.Options{Concurrency: 1, Status: &st}))
	}()
	require.Eventually(t, st.Started, 5*time.Second, time.Millisecond)
	p := st.Progress()
	require.Equal(t, 7, p.Total, "the count is known before any record finishes")
	require.Zero(t, p.Done)
	require.Equal(t, 7, p.Remaining())
	finished, _ := st.Finished()
	require.False(t, finished)
	close(gate)
	<-done
	require.NoError(t, err)

	finished, ferr := st.Finished()
	require.True(t, finished)
	require.ErrorIs(t, ferr, migrate.ErrIncomplete, "the missing object failed")
	p = st.Progress()
	require.Equal(t, migrate.Progress{Done: 7, Migrated: 6, Failed: 1, Total: 7, Bytes: rep.Bytes, Elapsed: p.Elapsed}, p)
	require.Zero(t, p.ETA())
}

func TestProgressETA(t *testing.T) {
	t.Parallel()
	p := migrate.Progress{Done: 100, Total: 400, Elapsed: 10 * time.Second}
	require.Equal(t, 300, p.Remaining())
	require.Equal(t, 30*time.Second, p.ETA(), "300 left at 10/s")
	require.Zero(t, migrate.Progress{Total: 5}.ETA(), "no rate yet")
	require.Zero(t, migrate.Progress{Done: 7, Total: 5, Elapsed: time.Second}.Remaining())
}
