package testutil

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
)

// Environment variables that locate the real database servers. .ci/run
// (through .ci/start-servers.sh) starts the servers and sets them; run
// `eval "$(.ci/start-servers.sh start)"` to do the same locally.
const (
	// PostgresDSNEnv holds a PostgreSQL URL for the pgx driver, e.g.
	// postgres://casa@127.0.0.1:5432/casa_test?sslmode=disable. The role
	// must be allowed to create schemas in the database.
	PostgresDSNEnv = "CASA_TEST_POSTGRES_DSN"
	// MySQLDSNEnv holds a go-sql-driver/mysql DSN for MySQL or MariaDB,
	// e.g. casa:casa@tcp(127.0.0.1:3306)/casa_test. The user must be
	// allowed to create databases.
	MySQLDSNEnv = "CASA_TEST_MYSQL_DSN"
)

// DB is a database on a real server that belongs to one test: a fresh
// PostgreSQL schema (on the connection's search_path) or a fresh MySQL
// database, dropped when the test ends.
type DB struct {
	*sql.DB
	// Driver is the database/sql driver name: "pgx" or "mysql".
	Driver string
	// Schema is the test's own schema (PostgreSQL) or database (MySQL):
	// unqualified table names resolve to it, and "<Schema>.<table>"
	// qualifies them.
	Schema string
	// DSN opens the same schema (PostgreSQL: search_path set to it) or
	// database (MySQL), for another process such as a built binary.
	DSN string
}

// NewPostgres returns a fresh schema on the PostgreSQL server named by
// CASA_TEST_POSTGRES_DSN, or skips t (fails it under CI=true) when the
// variable is unset.
func NewPostgres(t testing.TB) *DB {
	t.Helper()
	return newServerDB(t, dbServer{
		name: "PostgreSQL", env: PostgresDSNEnv, driver: "pgx",
		what: "schema", create: "CREATE SCHEMA %s", drop: "DROP SCHEMA %s CASCADE",
		schemaDSN: postgresSchemaDSN,
	})
}

// NewMySQL returns a fresh database on the MySQL or MariaDB server named by
// CASA_TEST_MYSQL_DSN, or skips t (fails it under CI=true) when the
// variable is unset.
func NewMySQL(t testing.TB) *DB {
	t.Helper()
	return newServerDB(t, dbServer{
		name: "MySQL/MariaDB", env: MySQLDSNEnv, driver: "mysql",
		what: "database", create: "CREATE DATABASE %s CHARACTER SET utf8mb4", drop: "DROP DATABASE %s",
		schemaDSN: mysqlSchemaDSN,
	})
}

// dbServer is what differs between the servers NewPostgres and NewMySQL
// make a test's schema on.
type dbServer struct {
	name   string // for the skip message
	env    string // the variable holding the server's DSN
	driver string
	// what a schema is called there, and the statements that create and
	// drop one (%s: its name).
	what, create, drop string
	// schemaDSN returns the DSN that opens schema on the server at dsn.
	schemaDSN func(dsn, schema string) (string, error)
}

// newServerDB makes a fresh schema for t on srv, dropped when t ends,
// and opens it; see NewPostgres.
func newServerDB(t testing.TB, srv dbServer) *DB {
	t.Helper()
	dsn := os.Getenv(srv.env)
	if dsn == "" {
		SkipMissing(t, "no %s server: set %s (eval \"$(.ci/start-servers.sh start)\" starts one)", srv.name, srv.env)
	}
	schema := schemaName(t)
	dbDSN, err := srv.schemaDSN(dsn, schema)
	if err != nil {
		t.Fatalf("testutil: %s: %v", srv.env, err)
	}
	admin := open(t, srv.driver, dsn)
	admin.SetMaxOpenConns(1) // creates and drops the schema only
	if _, err := admin.Exec(fmt.Sprintf(srv.create, schema)); err != nil {
		t.Fatalf("testutil: create %s %s: %v", srv.what, schema, err)
	}
	db := open(t, srv.driver, dbDSN)
	t.Cleanup(func() {
		db.Close()
		if _, err := admin.Exec(fmt.Sprintf(srv.drop, schema)); err != nil {
			t.Errorf("testutil: drop %s %s: %v", srv.what, schema, err)
		}
	})
	return &DB{DB: db, Driver: srv.driver, Schema: schema, DSN: dbDSN}
}

// postgresSchemaDSN sets the search_path of the pgx URL dsn to schema.
func postgresSchemaDSN(dsn, schema string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Set("search_path", schema) // pgx sends unknown parameters as run-time settings
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// mysqlSchemaDSN sets the database of the go-sql-driver/mysql DSN dsn to
// schema.
func mysqlSchemaDSN(dsn, schema string) (string, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "", err
	}
	cfg.DBName = schema
	return cfg.FormatDSN(), nil
}

// URL is the database as casa's -db flags take it (cmd/casa, the
// inventory example; see internal/dbsource): the PostgreSQL URL (DSN), or
// for MySQL a mysql://USER:PASSWORD@HOST:PORT/DATABASE URL carrying the
// DSN's parameters as its query.
func (db *DB) URL() string {
	if db.Driver != "mysql" {
		return db.DSN
	}
	cfg, err := mysql.ParseDSN(db.DSN)
	if err != nil { // NewMySQL formatted it
		return "mysql://invalid-test-dsn"
	}
	u := url.URL{Scheme: "mysql", User: url.UserPassword(cfg.User, cfg.Passwd), Host: cfg.Addr, Path: "/" + cfg.DBName}
	if _, q, ok := strings.Cut(db.DSN, "?"); ok {
		u.RawQuery = q
	}
	return u.String()
}

// open opens and pings a database, closed when t ends.
func open(t testing.TB, driver, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatalf("testutil: open %s: %v", driver, err)
	}
	t.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(8)
	db.SetConnMaxIdleTime(time.Minute)
	if err := db.PingContext(t.Context()); err != nil {
		t.Fatalf("testutil: %s server did not answer: %v", driver, err)
	}
	return db
}

// schemaName returns a unique, valid, unquoted identifier for t's schema:
// t_<test name, sanitised and shortened>_<random>.
func schemaName(t testing.TB) string {
	var b strings.Builder
	for _, r := range strings.ToLower(t.Name()) {
		if b.Len() >= 36 {
			break
		}
		if 'a' <= r && r <= 'z' || '0' <= r && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	return "t_" + b.String() + "_" + hex.EncodeToString(rnd[:])
}
