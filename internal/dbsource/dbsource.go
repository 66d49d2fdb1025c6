// Package dbsource translates the database URLs that casa's commands take
// (cmd/casa's -db and the inventory example's -db) into what the
// database/sql drivers want, and hides passwords in what they print. One
// syntax, parsed in one place:
//
//	mysql://USER:PASSWORD@HOST[:PORT]/DATABASE[?PARAMS]   (or mariadb://)
//
// becomes go-sql-driver/mysql's DSN USER:PASSWORD@tcp(HOST:PORT)/DATABASE?PARAMS.
// Importing the package registers go-sql-driver's "mysql" database/sql
// driver.
package dbsource

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/go-sql-driver/mysql"
)

// MySQLForm is the shape of a MySQL URL, for messages.
const MySQLForm = "mysql://USER:PASSWORD@HOST[:PORT]/DATABASE"

// IsMySQL reports whether s is a mysql:// or mariadb:// URL (scheme in
// any case).
func IsMySQL(s string) bool {
	scheme, _, ok := strings.Cut(s, "://")
	return ok && (strings.EqualFold(scheme, "mysql") || strings.EqualFold(scheme, "mariadb"))
}

// IsPostgres reports whether s is a postgres:// or postgresql:// URL
// (scheme in any case).
func IsPostgres(s string) bool {
	scheme, _, ok := strings.Cut(s, "://")
	return ok && (strings.EqualFold(scheme, "postgres") || strings.EqualFold(scheme, "postgresql"))
}

// MySQL translates a mysql:// (or mariadb://) URL into go-sql-driver's DSN
// (port 3306 by default; the query is go-sql-driver's parameters, checked
// by its parser). shown is the URL without its password, for messages; it
// is empty when the URL does not parse at all. The error never contains
// the password.
func MySQL(s string) (dsn, shown string, err error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", "", fmt.Errorf("malformed MySQL URL: %w", RedactURLError(err))
	}
	shown = u.Redacted()
	db := strings.TrimPrefix(u.Path, "/")
	if u.Host == "" || db == "" || strings.Contains(db, "/") {
		return "", shown, fmt.Errorf("want %s", MySQLForm)
	}
	cfg := mysql.NewConfig()
	cfg.Net = "tcp"
	cfg.Addr = u.Host
	if u.Port() == "" {
		cfg.Addr = net.JoinHostPort(u.Hostname(), "3306")
	}
	cfg.DBName = db
	if u.User != nil {
		cfg.User = u.User.Username()
		cfg.Passwd, _ = u.User.Password()
	}
	dsn = cfg.FormatDSN()
	if u.RawQuery != "" {
		if strings.Contains(dsn, "?") {
			dsn += "&" + u.RawQuery
		} else {
			dsn += "?" + u.RawQuery
		}
	}
	if _, err := mysql.ParseDSN(dsn); err != nil {
		return "", shown, errors.New(RedactPassword(err.Error(), u))
	}
	return dsn, shown, nil
}

// Redact is s without its password, if s parses as a URL with one. A
// string that does not parse but has an @ (so may hold a password) is
// "(unparsable URL)".
func Redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		if strings.Contains(s, "@") {
			return "(unparsable URL)"
		}
		return s
	}
	if u.User == nil {
		return s
	}
	return u.Redacted()
}

// RedactURLError drops the URL (which may hold a password) from a
// url.Parse error.
func RedactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// RedactPassword replaces u's password in msg with xxxxx.
func RedactPassword(msg string, u *url.URL) string {
	if u.User == nil {
		return msg
	}
	if p, ok := u.User.Password(); ok && p != "" {
		msg = strings.ReplaceAll(msg, p, "xxxxx")
	}
	return msg
}
