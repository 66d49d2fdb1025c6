package migrate_test

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/casa-go/casa/migrate"
)

// meter is an SDK MeterProvider with a manual reader.
type meter struct {
	reader *sdkmetric.ManualReader
	mp     *sdkmetric.MeterProvider
}

func newMeter(t *testing.T) meter {
	t.Helper()
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	return meter{reader: r, mp: mp}
}

// values collects every int64 sum and gauge: name -> the sum over its
// data points (only points whose attributes include want, when set).
func (m meter) values(t *testing.T, want ...attribute.KeyValue) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, m.reader.Collect(context.Background(), &rm))
	out := map[string]int64{}
	match := func(set attribute.Set) bool {
		for _, kv := range want {
			v, ok := set.Value(kv.Key)
			if !ok || v != kv.Value {
				return false
			}
		}
		return true
	}
	for _, sm := range rm.ScopeMetrics {
		for _, md := range sm.Metrics {
			switch d := md.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					if match(p.Attributes) {
						out[md.Name] += p.Value
					}
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					out[md.Name] += p.Value
				}
			}
		}
	}
	return out
}

func TestRunMetrics(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, e := memEnv()
	m, want := seed(t, e, 10)
	j := newJournalMigrator(m)
	// Two records share bytes; one legacy object is gone.
	put(t, e.source, legacyKey(1), want["r0000"])
	want["r0001"] = want["r0000"]
	require.NoError(t, e.source.Delete(ctx, legacyKey(9)))
	var bytes int64
	for id, b := range want {
		if id != "r0009" {
			bytes += int64(len(b))
		}
	}

	mt := newMeter(t)
	var (
		mu      sync.Mutex
		pending []int64
	)
	rep, err := migrate.Run(ctx, e.store, j, e.with(migrate.Options{
		MeterProvider: mt.mp,
		Concurrency:   1,
		Progress: func(migrate.Progress) {
			// The gauge falls as records finish.
			mu.Lock()
			pending = append(pending, mt.values(t)[migrate.MetricPending])
			mu.Unlock()
		},
	}))
	require.NoError(t, err)
	require.Equal(t, 9, rep.Migrated)
	got := mt.values(t, attribute.Bool("dry_run", false))
	require.Equal(t, int64(9), got[migrate.MetricMigrated])
	require.Equal(t, int64(1), got[migrate.MetricDeduplicated])
	require.Equal(t, int64(1), got[migrate.MetricFailed])
	require.Equal(t, bytes, got[migrate.MetricBytes])
	require.Equal(t, []int64{9, 8, 7, 6, 5, 4, 3, 2, 1, 0}, pending)
	_, observed := mt.values(t)[migrate.MetricPending]
	require.False(t, observed, "the gauge is unregistered when the run ends")

	// Revert and Cleanup count too.
	rrep, err := migrate.Revert(ctx, e.store, j, migrate.RevertOptions{Source: e.source, MeterProvider: mt.mp, IDs: []string{"r0002", "r0003"}})
	require.NoError(t, err)
	require.Equal(t, 2, rrep.Reverted)
	require.Equal(t, int64(2), mt.values(t)[migrate.MetricReverted])

	j.set("r0009", "")
	_, err = migrate.Run(ctx, e.store, j, e.with(migrate.Options{}))
	require.NoError(t, err)
	require.NoError(t, migrate.Finalize(ctx, j))
	crep, err := migrate.Cleanup(ctx, e.store, j, migrate.CleanupOptions{Source: e.source, Prefix: "uploads/", MeterProvider: mt.mp})
	require.NoError(t, err)
	got = mt.values(t)
	require.Equal(t, int64(crep.Deleted), got[migrate.MetricCleanupDeleted])
	require.Equal(t, int64(9), got[migrate.MetricCleanupDeleted])
	require.Equal(t, int64(crep.Kept), got[migrate.MetricCleanupKept])
}

func TestDryRunMetricsAreLabelled(t *testing.T) {
	t.Parallel()
	_, e := memEnv()
	m, _ := seed(t, e, 3)
	mt := newMeter(t)
	_, err := migrate.Run(context.Background(), e.store, m, e.with(migrate.Options{DryRun: true, MeterProvider: mt.mp}))
	require.NoError(t, err)
	require.Equal(t, int64(3), mt.values(t, attribute.Bool("dry_run", true))[migrate.MetricMigrated])
	require.Zero(t, mt.values(t, attribute.Bool("dry_run", false))[migrate.MetricMigrated])
}
