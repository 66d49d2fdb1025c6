package sqlmigrator_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	"modernc.org/sqlite"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/migrate/sqlmigrator"
)

// flakyProbe is SQLite whose first `SELECT sqlite_version()` fails, as a
// lost connection or a busy database may make it.
type flakyProbe struct {
	sqlite.Driver
	failed atomic.Bool
}

func (d *flakyProbe) Open(name string) (driver.Conn, error) {
	c, err := d.Driver.Open(name)
	if err != nil {
		return nil, err
	}
	return &flakyConn{Conn: c, d: d}, nil
}

// flakyConn offers only driver.Conn, so database/sql prepares every
// query through it.
type flakyConn struct {
	driver.Conn
	d *flakyProbe
}

func (c *flakyConn) Prepare(query string) (driver.Stmt, error) {
	if strings.Contains(query, "sqlite_version()") && c.d.failed.CompareAndSwap(false, true) {
		return nil, errors.New("flaky: connection lost")
	}
	return c.Conn.Prepare(query)
}

// TestProbeFailureIsNotMySQL: a SQLite database whose first engine probe
// fails is not taken for MySQL for the Migrator's life: the failed call
// returns an error, and the next one probes again and works (before, the
// failure was cached as MySQL and every touch and journal write sent MySQL
// SQL to SQLite).
func TestProbeFailureIsNotMySQL(t *testing.T) {
	d := &flakyProbe{}
	connector, err := sqliteConnector(d, "file:"+filepath.Join(t.TempDir(), "probe.db")+"?_pragma=busy_timeout(10000)")
	require.NoError(t, err)
	db := sql.OpenDB(connector)
	t.Cleanup(func() { _ = db.Close() })
	_, err = db.ExecContext(t.Context(), `CREATE TABLE parts (id INTEGER PRIMARY KEY, k TEXT)`)
	require.NoError(t, err)
	m, err := sqlmigrator.New(db, sqlmigrator.Table{Name: "parts", IDColumn: "id", KeyColumn: "k"})
	require.NoError(t, err)
	key := cas.SumBytes([]byte("probe")).Key()
	err = m.Touch(t.Context(), key)
	require.ErrorContains(t, err, "connection lost")
	require.True(t, d.failed.Load(), "the probe failed once")
	require.NoError(t, m.Touch(t.Context(), key), "the next touch probes again and finds SQLite")
	var n int
	require.NoError(t, db.QueryRowContext(t.Context(), "SELECT COUNT(*) FROM "+m.GCTable()).Scan(&n))
	require.Equal(t, 1, n, "the touch is recorded in %s", m.GCTable())
}

// sqliteConnector is a driver.Connector for d and name.
func sqliteConnector(d driver.Driver, name string) (driver.Connector, error) {
	return dsnConnector{d: d, name: name}, nil
}

type dsnConnector struct {
	d    driver.Driver
	name string
}

func (c dsnConnector) Connect(_ context.Context) (driver.Conn, error) { return c.d.Open(c.name) }
func (c dsnConnector) Driver() driver.Driver                          { return c.d }
