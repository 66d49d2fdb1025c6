package dbsource

import (
	"net/url"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/require"
)

func TestMySQL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, dsn, shown string }{
		{"mysql://u:p@db.example:3307/app", "u:p@tcp(db.example:3307)/app", "mysql://u:xxxxx@db.example:3307/app"},
		{"mysql://u:p@db.example/app", "u:p@tcp(db.example:3306)/app", "mysql://u:xxxxx@db.example/app"},
		{"mysql://u:p%40ss@[::1]/app?parseTime=true&tls=skip-verify", "u:p@ss@tcp([::1]:3306)/app?parseTime=true&tls=skip-verify", "mysql://u:xxxxx@[::1]/app?parseTime=true&tls=skip-verify"},
		{"mariadb://u@db.example/app", "u@tcp(db.example:3306)/app", "mariadb://u@db.example/app"},
		{"MySQL://u:p@db.example/app", "u:p@tcp(db.example:3306)/app", "mysql://u:xxxxx@db.example/app"},
	} {
		dsn, shown, err := MySQL(tc.in)
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.dsn, dsn, tc.in)
		require.Equal(t, tc.shown, shown, tc.in)
		cfg, err := mysql.ParseDSN(dsn)
		require.NoError(t, err, "go-sql-driver parses the translation")
		require.Equal(t, "tcp", cfg.Net)
	}
}

// TestMySQLHostile: URLs that cannot work fail with a message that names
// the problem and never holds the password.
func TestMySQLHostile(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"mysql://u:pw@h", MySQLForm},
		{"mysql://u:pw@/db", MySQLForm},
		{"mysql://u:pw@h/a/b", MySQLForm},
		{"mysql://u:pw@h/", MySQLForm},
		{"mysql://u:pw@h/db?tls=nonsense-config", "nonsense-config"},
		{"mysql://u:pw@h/db?parseTime=perhaps", "perhaps"},
		{"mysql://u:pw@h:port/db", "malformed MySQL URL"},
		{"mysql://u:pw@h/db?timeout=later", "invalid duration"},
		{"mysql://u:pw@h/db?loc=Nowhere%2FCity", "Nowhere"},
		{"mysql://u:p w@h/db\x00", "malformed MySQL URL"},
	} {
		_, shown, err := MySQL(tc.in)
		require.Error(t, err, tc.in)
		require.Contains(t, err.Error(), tc.want, tc.in)
		require.NotContains(t, err.Error(), "pw", tc.in)
		require.NotContains(t, shown, "pw", tc.in)
		require.NotContains(t, err.Error(), "\n", tc.in)
	}
}

func TestSchemes(t *testing.T) {
	t.Parallel()
	for s, want := range map[string][2]bool{
		"mysql://h/db": {true, false}, "MARIADB://h/db": {true, false}, "postgres://h/db": {false, true},
		"PostgreSQL://h/db": {false, true}, "inventory.db": {}, "mysql:/h/db": {}, "sqlite://x": {}, "": {},
	} {
		require.Equal(t, want[0], IsMySQL(s), s)
		require.Equal(t, want[1], IsPostgres(s), s)
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()
	require.Equal(t, "postgres://u:xxxxx@h/db", Redact("postgres://u:s3cret@h/db"))
	require.Equal(t, "/var/lib/inventory.db", Redact("/var/lib/inventory.db"))
	require.Equal(t, "(unparsable URL)", Redact("mysql://u:s3cret@h:port/db"))
	require.Equal(t, "postgres://h/db", Redact("postgres://h/db"))
}

// FuzzMySQL: the translation of any host, database and query never
// panics, what it accepts go-sql-driver parses, and neither the message
// nor the shown URL repeats the password.
func FuzzMySQL(f *testing.F) {
	for _, c := range [][3]string{{"h", "db", ""}, {"h:1", "db", "tls=x"}, {"[::1]", "db", "a=b&c"},
		{"h:port", "db", ""}, {"", "", ""}, {"h", "a/b", "%zz"}, {"h\x00", "d", "parseTime=perhaps"}} {
		f.Add(c[0], c[1], c[2])
	}
	const pw = "Zq9-s3cret-Pw7"
	f.Fuzz(func(t *testing.T, host, db, query string) {
		if strings.Contains(host+db+query, "s3cret") {
			return
		}
		s := "mysql://u:" + pw + "@" + host + "/" + db
		if query != "" {
			s += "?" + query
		}
		dsn, shown, err := MySQL(s)
		require.NotContains(t, shown, "s3cret")
		if err != nil {
			require.NotContains(t, err.Error(), "s3cret")
			return
		}
		cfg, err := mysql.ParseDSN(dsn)
		require.NoError(t, err, "%q: translation %q", s, dsn)
		u, err := url.Parse(s)
		require.NoError(t, err)
		want, _ := u.User.Password() // host "@x" makes the password "...@"
		require.Equal(t, want, cfg.Passwd)
		require.Equal(t, u.User.Username(), cfg.User)
	})
}
