package migrate

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// meterName is the instrumentation scope of the migrate metrics.
const meterName = "github.com/casa-go/casa/migrate"

// Metric names. Every counter of Run carries the attribute dry_run.
const (
	MetricMigrated       = "casa.migrate.records.migrated"     // records committed (or that would be, dry_run=true)
	MetricDeduplicated   = "casa.migrate.records.deduplicated" // migrated records whose bytes were already stored
	MetricFailed         = "casa.migrate.records.failed"       // records that could not be migrated
	MetricConflicts      = "casa.migrate.records.conflicts"    // records another writer changed first (ErrConflict); not failures
	MetricBytes          = "casa.migrate.bytes"                // bytes read from legacy objects of migrated records
	MetricPending        = "casa.migrate.records.pending"      // gauge: records counted at the start and not yet finished
	MetricReverted       = "casa.migrate.records.reverted"     // records Revert restored to their old key
	MetricCleanupDeleted = "casa.migrate.cleanup.deleted"      // legacy objects Cleanup deleted
	MetricCleanupKept    = "casa.migrate.cleanup.kept"         // objects Cleanup scanned and kept
	MetricGCDeleted      = "casa.migrate.gc.deleted"           // objects Collect deleted, by kind (blob, derived)
	MetricGCKept         = "casa.migrate.gc.kept"              // blobs Collect scanned and kept
	MetricGCBytes        = "casa.migrate.gc.bytes"             // bytes of the blobs Collect deleted
)

// metrics are the instruments of one Run, Revert or Cleanup. The API
// never returns nil instruments (on error it returns no-op ones), so the
// errors are ignored.
type metrics struct {
	meter          metric.Meter
	migrated       metric.Int64Counter
	deduplicated   metric.Int64Counter
	failed         metric.Int64Counter
	conflicts      metric.Int64Counter
	bytes          metric.Int64Counter
	reverted       metric.Int64Counter
	cleanupDeleted metric.Int64Counter
	cleanupKept    metric.Int64Counter
	gcDeleted      metric.Int64Counter
	gcKept         metric.Int64Counter
	gcBytes        metric.Int64Counter
}

func newMetrics(mp metric.MeterProvider) metrics {
	if mp == nil {
		mp = noop.NewMeterProvider()
	}
	m := metrics{meter: mp.Meter(meterName)}
	counter := func(name, unit, desc string) metric.Int64Counter {
		c, err := m.meter.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		if err != nil || c == nil {
			c = noop.Int64Counter{}
		}
		return c
	}
	m.migrated = counter(MetricMigrated, "{record}", "Records migrated to their CAS key.")
	m.deduplicated = counter(MetricDeduplicated, "{record}", "Migrated records whose bytes were already stored.")
	m.failed = counter(MetricFailed, "{record}", "Records that could not be migrated.")
	m.conflicts = counter(MetricConflicts, "{record}", "Records another writer changed before their commit (not failures).")
	m.bytes = counter(MetricBytes, "By", "Bytes read from the legacy objects of migrated records.")
	m.reverted = counter(MetricReverted, "{record}", "Records reverted to their legacy key.")
	m.cleanupDeleted = counter(MetricCleanupDeleted, "{object}", "Legacy objects deleted by Cleanup.")
	m.cleanupKept = counter(MetricCleanupKept, "{object}", "Objects Cleanup scanned and kept.")
	m.gcDeleted = counter(MetricGCDeleted, "{object}", "Objects deleted by Collect, by kind (blob or derived).")
	m.gcKept = counter(MetricGCKept, "{object}", "Blobs Collect scanned and kept.")
	m.gcBytes = counter(MetricGCBytes, "By", "Bytes of the blobs deleted by Collect.")
	return m
}

// pendingGauge registers the pending gauge, observing pending(), and
// returns the function that unregisters it.
func (m metrics) pendingGauge(pending func() int64) func() {
	g, err := m.meter.Int64ObservableGauge(MetricPending, metric.WithUnit("{record}"),
		metric.WithDescription("Records counted pending at the start of the run and not yet finished."))
	if err != nil || g == nil {
		return func() {}
	}
	reg, err := m.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(g, pending())
		return nil
	}, g)
	if err != nil || reg == nil {
		return func() {}
	}
	return func() { _ = reg.Unregister() }
}

// dryRunAttr is the attribute set of Run's counters.
func dryRunAttr(dry bool) metric.MeasurementOption {
	return metric.WithAttributeSet(attribute.NewSet(attribute.Bool("dry_run", dry)))
}
