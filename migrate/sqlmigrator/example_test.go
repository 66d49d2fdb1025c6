package sqlmigrator_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	_ "modernc.org/sqlite"

	"github.com/casa-go/casa/cas"
	"github.com/casa-go/casa/cas/memstore"
	"github.com/casa-go/casa/migrate"
	"github.com/casa-go/casa/migrate/sqlmigrator"
)

// Migrating a SQLite table whose rows point at UUID-named objects. With
// PostgreSQL, pass sqlmigrator.WithDollarPlaceholders().
func Example() {
	ctx := context.Background()
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	db.SetMaxOpenConns(1) // one connection: one in-memory database

	backend := memstore.New()
	_, _ = db.Exec(`CREATE TABLE parts (id INTEGER PRIMARY KEY, name TEXT, datasheet_key TEXT)`)
	for i, body := range []string{"resistor datasheet", "capacitor datasheet", "resistor datasheet"} {
		key := fmt.Sprintf("uploads/00000000-0000-4000-8000-%012d", i)
		_ = backend.Put(ctx, key, strings.NewReader(body), int64(len(body)), cas.PutOptions{})
		_, _ = db.Exec(`INSERT INTO parts (id, name, datasheet_key) VALUES (?, ?, ?)`, i+1, fmt.Sprint("part ", i+1), key)
	}

	m, err := sqlmigrator.New(db, sqlmigrator.Table{Name: "parts", IDColumn: "id", KeyColumn: "datasheet_key"})
	if err != nil {
		fmt.Println(err)
		return
	}
	store := cas.New(backend)
	rep, err := migrate.Run(ctx, store, m, migrate.Options{})
	if err == nil {
		err = rep.Err()
	}
	if err != nil {
		fmt.Println("migration incomplete:", err)
		return
	}
	fmt.Printf("migrated %d rows, %d deduplicated\n", rep.Migrated, rep.Deduplicated)

	rows, _ := db.Query(`SELECT id, datasheet_key FROM parts ORDER BY id`)
	defer rows.Close()
	for rows.Next() {
		var (
			id  int
			key string
		)
		_ = rows.Scan(&id, &key)
		fmt.Println(id, key[:12]+"...", cas.IsKey(key))
	}

	// Every commit is in the journal (parts_casa_journal): until the
	// operator declares the migration final, Revert can undo it and
	// Cleanup keeps the legacy objects.
	clean, err := migrate.Cleanup(ctx, store, m, migrate.CleanupOptions{Prefix: "uploads/"})
	fmt.Println("before Finalize:", clean.Deleted, "deleted,", clean.Revertible, "kept for Revert", err)
	if err := migrate.Finalize(ctx, m); err != nil {
		fmt.Println("finalize:", err)
		return
	}
	clean, err = migrate.Cleanup(ctx, store, m, migrate.CleanupOptions{Prefix: "uploads/"})
	fmt.Println("legacy objects deleted:", clean.Deleted, err)
	// Output:
	// migrated 3 rows, 1 deduplicated
	// 1 cas/e4d8a8e5... true
	// 2 cas/a366792b... true
	// 3 cas/e4d8a8e5... true
	// before Finalize: 0 deleted, 3 kept for Revert <nil>
	// legacy objects deleted: 3 <nil>
}

// Collecting the blobs no row references any more. Every Store that writes
// blobs touches them through the Migrator's guard, so that a collection in
// another process never deletes a blob an upload is relying on.
func Example_collect() {
	ctx := context.Background()
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	db.SetMaxOpenConns(1) // one connection: one in-memory database
	_, _ = db.Exec(`CREATE TABLE files (id INTEGER PRIMARY KEY, storage_key TEXT)`)
	m, err := sqlmigrator.New(db, sqlmigrator.Table{Name: "files", IDColumn: "id", KeyColumn: "storage_key"})
	if err != nil {
		fmt.Println(err)
		return
	}
	store := cas.New(memstore.New(), cas.WithPutHook(migrate.PutHook(m)))

	for i, body := range []string{"kept", "deleted later"} {
		res, err := store.Put(ctx, strings.NewReader(body))
		if err != nil {
			fmt.Println(err)
			return
		}
		_, _ = db.Exec(`INSERT INTO files (id, storage_key) VALUES (?, ?)`, i+1, res.Hash.Key())
	}
	_, _ = db.Exec(`DELETE FROM files WHERE id = 2`)

	// MinAge is a day by default; a nanosecond here, for the example.
	rep, err := migrate.Collect(ctx, store, m, migrate.CollectOptions{MinAge: time.Nanosecond})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("scanned %d blobs: %d deleted, %d referenced\n", rep.Scanned, rep.Deleted, rep.Referenced)
	// Output: scanned 2 blobs: 1 deleted, 1 referenced
}
