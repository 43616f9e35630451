package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"keyholder/backend/store"
	"keyholder/backend/store/storetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	storetest.Stop()
	os.Exit(code)
}

// column is what the comparison looks at: name, type family, NOT NULL,
// part of the primary key.
type column struct {
	Name    string
	Type    string
	NotNull bool
	PK      bool
}

// index is an index's columns, uniqueness and partial predicate presence.
type index struct {
	Columns string
	Unique  bool
	Partial bool
}

type schema struct {
	Tables  map[string][]column
	Indexes map[string]index
}

func typeFamily(t string) string {
	t = strings.ToLower(t)
	switch {
	case t == "integer" || t == "bigint":
		return "integer"
	case t == "text":
		return "text"
	case t == "blob" || t == "bytea":
		return "blob"
	}
	return t
}

func sqliteSchema(t *testing.T, db *store.DB) schema {
	ctx := context.Background()
	s := schema{Tables: map[string][]column{}, Indexes: map[string]index{}}
	rows, err := db.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		tables = append(tables, n)
	}
	rows.Close()
	for _, tb := range tables {
		rows, err := db.QueryContext(ctx, `SELECT name, type, "notnull", pk FROM pragma_table_info(?) ORDER BY name`, tb)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var c column
			var pk int
			if err := rows.Scan(&c.Name, &c.Type, &c.NotNull, &pk); err != nil {
				t.Fatal(err)
			}
			c.Type, c.PK = typeFamily(c.Type), pk > 0
			// SQLite lets a primary key column hold NULL unless declared
			// NOT NULL; INTEGER PRIMARY KEY and PostgreSQL's keys cannot.
			if c.PK {
				c.NotNull = true
			}
			s.Tables[tb] = append(s.Tables[tb], c)
		}
		rows.Close()
		irows, err := db.QueryContext(ctx, `SELECT name, "unique", partial, origin FROM pragma_index_list(?)`, tb)
		if err != nil {
			t.Fatal(err)
		}
		type il struct {
			name    string
			unique  bool
			partial bool
			origin  string
		}
		var ils []il
		for irows.Next() {
			var x il
			irows.Scan(&x.name, &x.unique, &x.partial, &x.origin)
			ils = append(ils, x)
		}
		irows.Close()
		for _, x := range ils {
			if x.origin == "pk" {
				continue // compared through the columns' PK flag
			}
			var cols []string
			crows, err := db.QueryContext(ctx, `SELECT name FROM pragma_index_info(?) ORDER BY seqno`, x.name)
			if err != nil {
				t.Fatal(err)
			}
			for crows.Next() {
				var n string
				crows.Scan(&n)
				cols = append(cols, n)
			}
			crows.Close()
			name := x.name
			if x.origin == "u" { // a UNIQUE column constraint
				name = tb + "." + strings.Join(cols, ",") + ".unique"
			}
			s.Indexes[name] = index{Columns: tb + "(" + strings.Join(cols, ",") + ")", Unique: x.unique, Partial: x.partial}
		}
	}
	return s
}

func postgresSchema(t *testing.T, db *store.DB) schema {
	ctx := context.Background()
	s := schema{Tables: map[string][]column{}, Indexes: map[string]index{}}
	rows, err := db.QueryContext(ctx, `SELECT c.table_name, c.column_name, c.data_type, c.is_nullable = 'NO',
		EXISTS (SELECT 1 FROM information_schema.table_constraints tc
			JOIN information_schema.key_column_usage k ON k.constraint_name = tc.constraint_name AND k.table_name = tc.table_name
			WHERE tc.table_name = c.table_name AND tc.constraint_type = 'PRIMARY KEY' AND k.column_name = c.column_name)
		FROM information_schema.columns c WHERE c.table_schema = current_schema() ORDER BY c.table_name, c.column_name`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var tb string
		var c column
		if err := rows.Scan(&tb, &c.Name, &c.Type, &c.NotNull, &c.PK); err != nil {
			t.Fatal(err)
		}
		c.Type = typeFamily(c.Type)
		s.Tables[tb] = append(s.Tables[tb], c)
	}
	rows.Close()
	irows, err := db.QueryContext(ctx, `SELECT t.relname, i.relname, ix.indisunique, ix.indpred IS NOT NULL, ix.indisprimary,
		(SELECT string_agg(a.attname, ',' ORDER BY k.ord) FROM unnest(ix.indkey) WITH ORDINALITY k(attnum, ord)
			JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum),
		EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = i.oid AND con.contype = 'u')
		FROM pg_index ix JOIN pg_class i ON i.oid = ix.indexrelid JOIN pg_class t ON t.oid = ix.indrelid
		JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = current_schema()`)
	if err != nil {
		t.Fatal(err)
	}
	for irows.Next() {
		var tb, name, cols string
		var unique, partial, primary, constraint bool
		if err := irows.Scan(&tb, &name, &unique, &partial, &primary, &cols, &constraint); err != nil {
			t.Fatal(err)
		}
		if primary {
			continue
		}
		if constraint {
			name = tb + "." + cols + ".unique"
		}
		s.Indexes[name] = index{Columns: tb + "(" + cols + ")", Unique: unique, Partial: partial}
	}
	irows.Close()
	return s
}

// TestSchemasInLockStep: SQLite's and PostgreSQL's migration histories have
// the same versions and names and end in the same tables, columns (type
// family, NOT NULL, primary key) and indexes. A migration added to one
// history without its twin fails here.
func TestSchemasInLockStep(t *testing.T) {
	lite, err := store.MigrationsFor(store.SQLite)
	if err != nil {
		t.Fatal(err)
	}
	pg, err := store.MigrationsFor(store.Postgres)
	if err != nil {
		t.Fatal(err)
	}
	if len(lite) != len(pg) {
		t.Fatalf("SQLite has %d migrations, PostgreSQL %d: every migration needs its twin in migrations_pg", len(lite), len(pg))
	}
	for i := range lite {
		if lite[i].Version != pg[i].Version || lite[i].Name != pg[i].Name {
			t.Fatalf("migration %d: SQLite %04d_%s, PostgreSQL %04d_%s", i, lite[i].Version, lite[i].Name, pg[i].Version, pg[i].Name)
		}
	}
	ctx := context.Background()
	sdb, err := store.Open(ctx, filepath.Join(t.TempDir(), "k.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sdb.Close()
	pdb, err := store.Open(ctx, storetest.NewDatabase(t, storetest.Server(t)), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pdb.Close()
	a, b := sqliteSchema(t, sdb), postgresSchema(t, pdb)
	if len(a.Tables) < 10 {
		t.Fatalf("SQLite schema has only %d tables: the comparison reads nothing", len(a.Tables))
	}
	for name, cols := range a.Tables {
		if !reflect.DeepEqual(cols, b.Tables[name]) {
			t.Errorf("table %s:\n SQLite     %+v\n PostgreSQL %+v", name, cols, b.Tables[name])
		}
	}
	for name := range b.Tables {
		if _, ok := a.Tables[name]; !ok {
			t.Errorf("table %s only in PostgreSQL", name)
		}
	}
	if !reflect.DeepEqual(a.Indexes, b.Indexes) {
		t.Errorf("indexes differ:\n SQLite     %v\n PostgreSQL %v", a.Indexes, b.Indexes)
	}
	for _, db := range []*store.DB{sdb, pdb} {
		v, err := db.SchemaVersion(ctx)
		if err != nil || v != store.LatestVersion() {
			t.Errorf("%s schema version %d, %v; want %d", db.Dialect(), v, err, store.LatestVersion())
		}
	}
}

// TestDialect runs the statements whose spelling differs through the
// dialect of the run (scripts/test.sh runs it on both): placeholders
// numbered and bare, bools both ways, json_extract, upserts, the
// conflict error, and the config version trigger.
func TestDialect(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t, store.Options{})
	if err := db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO images(id, name, created_at) VALUES (?, ?, ?)`, "img_1", "one", "t"); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO vms(id, name, simulated, tcb, created_at) VALUES (?1, ?2, ?3, '{"chip_id":"ab?"}', ?4)`, "vm_1", "it's ?", true, "t")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var name string
	var sim int
	var simb, exists bool
	var chip string
	err := db.QueryRowContext(ctx, `SELECT name, simulated, simulated != 0, EXISTS (SELECT 1 FROM images WHERE id = ?2), json_extract(tcb, '$.chip_id')
		FROM vms WHERE id = ?1 AND name = 'it''s ?'`, "vm_1", "img_1").Scan(&name, &sim, &simb, &exists, &chip)
	if err != nil {
		t.Fatal(err)
	}
	if name != "it's ?" || sim != 1 || !simb || !exists || chip != "ab?" {
		t.Fatalf("got %q %d %v %v %q", name, sim, simb, exists, chip)
	}
	_, err = db.ExecContext(ctx, `INSERT INTO images(id, name, created_at) VALUES (?, ?, ?)`, "img_2", "one", "t")
	if !errors.Is(store.Classify(err), store.ErrConflict) {
		t.Fatalf("duplicate name: %v, want ErrConflict", err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO images(id, name, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, "img_1", "x", "t"); err != nil {
		t.Fatalf("ON CONFLICT DO NOTHING: %v", err)
	}
	var before, after int64
	db.QueryRowContext(ctx, store.ConfigVersionSQL[1:len(store.ConfigVersionSQL)-1]).Scan(&before)
	if _, err := db.ExecContext(ctx, `INSERT INTO settings(key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`, "k", "1", "t"); err != nil {
		t.Fatal(err)
	}
	db.QueryRowContext(ctx, store.ConfigVersionSQL[1:len(store.ConfigVersionSQL)-1]).Scan(&after)
	if after != before+1 {
		t.Fatalf("config version %d -> %d, want one more", before, after)
	}
}

// TestWriteTransactionsSerialised: concurrent read-modify-write
// transactions (the pattern of the audit head and generation numbers)
// never lose an update, on either dialect.
func TestWriteTransactionsSerialised(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t, store.Options{})
	if _, err := db.ExecContext(ctx, `INSERT INTO settings(key, value, updated_at) VALUES ('n', '0', '')`); err != nil {
		t.Fatal(err)
	}
	const workers, each = 4, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				err := db.Tx(ctx, func(tx *sql.Tx) error {
					var v string
					if err := tx.QueryRowContext(ctx, `SELECT value FROM settings WHERE key = 'n'`).Scan(&v); err != nil {
						return err
					}
					var n int
					fmt.Sscan(v, &n)
					_, err := tx.ExecContext(ctx, `UPDATE settings SET value = ? WHERE key = 'n'`, fmt.Sprint(n+1))
					return err
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var v string
	db.QueryRowContext(ctx, `SELECT value FROM settings WHERE key = 'n'`).Scan(&v)
	if v != fmt.Sprint(workers*each) {
		t.Fatalf("counter %s after %d increments: an update was lost", v, workers*each)
	}
}

func TestRewritePlaceholders(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`SELECT ?, ?`, `SELECT $1, $2`},
		{`SELECT ?2, ?1, ?`, `SELECT $2, $1, $3`},
		{`SELECT '?', "a?" -- why?` + "\n" + `, ? /* ? */`, `SELECT '?', "a?" -- why?` + "\n" + `, $1 /* ? */`},
		{`SELECT 'it''s ?', ?`, `SELECT 'it''s ?', $1`},
		{`SELECT json_extract(claims, '$.chip_id') = ?`, `SELECT (claims::jsonb ->> 'chip_id') = $1`},
	} {
		if got := store.RewriteForPostgres(c.in); got != c.want {
			t.Errorf("%s:\n got  %s\n want %s", c.in, got, c.want)
		}
	}
}
