package testutil_test

import (
	"database/sql"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/casa-go/casa/internal/testutil"
)

// TestServerDBs: NewPostgres and NewMySQL each give a test its own
// schema: unqualified names resolve to it, "<Schema>.<table>" names the
// same table, DSN opens it from another connection pool, and it is
// dropped when the test ends. Without the server the test skips (fails
// under CI=true).
func TestServerDBs(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		open  func(testing.TB) *testutil.DB
		env   string
		count string // counts the schemas named ?
	}{
		"postgres": {testutil.NewPostgres, testutil.PostgresDSNEnv,
			"SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = $1"},
		"mysql": {testutil.NewMySQL, testutil.MySQLDSNEnv,
			"SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = ?"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var schema, driver string
			t.Run("own schema", func(t *testing.T) {
				db := tc.open(t)
				schema, driver = db.Schema, db.Driver
				_, err := db.Exec("CREATE TABLE things (n INT)")
				require.NoError(t, err)
				_, err = db.Exec("INSERT INTO " + db.Schema + ".things VALUES (7)")
				require.NoError(t, err)
				other, err := sql.Open(db.Driver, db.DSN)
				require.NoError(t, err)
				defer other.Close()
				var n int
				require.NoError(t, other.QueryRow("SELECT n FROM things").Scan(&n))
				require.Equal(t, 7, n, "DSN opens the test's schema")
			})
			if schema == "" {
				t.Skip("no server")
			}
			admin, err := sql.Open(driver, os.Getenv(tc.env))
			require.NoError(t, err)
			defer admin.Close()
			var n int
			require.NoError(t, admin.QueryRow(tc.count, schema).Scan(&n))
			require.Zero(t, n, "schema %s dropped when its test ended", schema)
		})
	}
}
