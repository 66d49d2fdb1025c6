package cli

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	_ "modernc.org/sqlite"             // registers the "sqlite" database/sql driver

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/internal/dbsource"
	"github.com/casa-go/casa/migrate/sqlmigrator"
)

// dbFlags name the database table that points at the store's objects.
type dbFlags struct {
	db        string
	table     string
	idColumn  string
	keyColumn string
}

// addDBFlags registers the database flags on fs.
func (e *env) addDBFlags(fs *flag.FlagSet) {
	d := &dbFlags{}
	e.db = d
	fs.StringVar(&d.db, "db", "", "the `database`: a SQLite file path, sqlite://PATH, postgres://... or mysql://USER:PASS@HOST:PORT/DB; env "+EnvDB)
	fs.StringVar(&d.table, "table", "", "the `table` whose rows point at objects (schema.table allowed)")
	fs.StringVar(&d.idColumn, "id-column", "id", "the table's unique, non-NULL ID `column`")
	fs.StringVar(&d.keyColumn, "key-column", "", "the `column` holding each row's storage key")
	e.bindEnv("db", EnvDB)
}

// dataSource is a database URL from the command line, translated for a
// database/sql driver.
type dataSource struct {
	driver string // "sqlite", "pgx" or "mysql"
	dsn    string
	dollar bool   // PostgreSQL: $1 placeholders (sqlmigrator.WithDollarPlaceholders)
	shown  string // for messages: the URL without its password
}

// parseDataSource translates -db into a driver and its DSN:
//
//   - a path without a scheme, or sqlite://PATH (sqlite:///abs/path,
//     sqlite://rel/path; a query such as ?_pragma=... is passed on): the
//     modernc.org/sqlite driver; the file must exist;
//   - postgres://... or postgresql://...: pgx's database/sql driver, with
//     the URL as it is (checked by pgx.ParseConfig);
//   - mysql://USER:PASSWORD@HOST[:PORT]/DATABASE[?PARAMS]: go-sql-driver's
//     DSN form USER:PASSWORD@tcp(HOST:PORT)/DATABASE?PARAMS (port 3306 by
//     default; parameters are go-sql-driver's).
//
// Errors are usage errors that never repeat the password.
func parseDataSource(s string) (dataSource, error) {
	if s == "" {
		return dataSource{}, usagef("no database: give -db (or set %s)", EnvDB)
	}
	scheme, rest, hasScheme := strings.Cut(s, "://")
	if !hasScheme {
		return sqliteSource(s, "")
	}
	switch strings.ToLower(scheme) {
	case "sqlite", "sqlite3", "file":
		path, query, _ := strings.Cut(rest, "?")
		if path == "" {
			return dataSource{}, usagef("-db %s: no file path (sqlite:///abs/path or sqlite://rel/path)", s)
		}
		return sqliteSource(path, query)
	case "postgres", "postgresql":
		u, err := url.Parse(s)
		if err != nil {
			return dataSource{}, usagef("-db: malformed PostgreSQL URL: %v", dbsource.RedactURLError(err))
		}
		shown := u.Redacted()
		if _, err := pgx.ParseConfig(s); err != nil {
			return dataSource{}, usagef("-db %s: %s", shown, dbsource.RedactPassword(err.Error(), u))
		}
		return dataSource{driver: "pgx", dsn: s, dollar: true, shown: shown}, nil
	case "mysql", "mariadb":
		return mysqlSource(s)
	}
	return dataSource{}, usagef("-db: unsupported database scheme %q: want a SQLite path, sqlite://, postgres:// or mysql://", scheme)
}

func sqliteSource(path, query string) (dataSource, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return dataSource{}, usagef("-db %s: no such SQLite database file", path)
	case err != nil:
		return dataSource{}, usagef("-db %s: %v", path, err)
	case fi.IsDir():
		return dataSource{}, usagef("-db %s is a directory, not a SQLite database file", path)
	}
	q := "_pragma=busy_timeout(5000)"
	if query != "" {
		q = query + "&" + q
	}
	return dataSource{driver: "sqlite", dsn: "file:" + path + "?" + q, shown: path}, nil
}

func mysqlSource(s string) (dataSource, error) {
	dsn, shown, err := dbsource.MySQL(s)
	switch {
	case err != nil && shown == "":
		return dataSource{}, usagef("-db: %v", err)
	case err != nil:
		return dataSource{}, usagef("-db %s: %v", shown, err)
	}
	return dataSource{driver: "mysql", dsn: dsn, shown: shown}, nil
}

// openMigratorAndStore opens the -db flags' Migrator and the existing
// store (cleanup, gc); on an error nothing stays open, otherwise the
// caller closes db.
func (e *env) openMigratorAndStore(ctx context.Context) (*sqlmigrator.Migrator, *sql.DB, *cas.Store, error) {
	m, db, err := e.openMigrator(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	store, err := e.openStore(ctx)
	if err != nil {
		_ = db.Close()
		return nil, nil, nil, err
	}
	return m, db, store, nil
}

// openMigrator opens the database and the sqlmigrator.Migrator over the
// table the flags name. The caller closes the database.
func (e *env) openMigrator(ctx context.Context) (*sqlmigrator.Migrator, *sql.DB, error) {
	d := e.db
	src, err := parseDataSource(d.db)
	if err != nil {
		return nil, nil, err
	}
	if d.table == "" || d.keyColumn == "" {
		return nil, nil, usagef("give -table and -key-column: the table whose rows point at objects, and its key column")
	}
	db, err := sql.Open(src.driver, src.dsn)
	if err != nil {
		return nil, nil, usagef("-db %s: %v", src.shown, err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("database %s: %w", src.shown, err)
	}
	var opts []sqlmigrator.Option
	if src.dollar {
		opts = append(opts, sqlmigrator.WithDollarPlaceholders())
	}
	m, err := sqlmigrator.New(db, sqlmigrator.Table{Name: d.table, IDColumn: d.idColumn, KeyColumn: d.keyColumn}, opts...)
	if err != nil {
		db.Close()
		return nil, nil, usageError{err}
	}
	return m, db, nil
}
