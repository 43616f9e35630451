package store

import (
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// Dialect is the SQL engine behind a DB.
//
// Domain packages write one SQL text, in the common subset of SQLite and
// PostgreSQL: ON CONFLICT instead of INSERT OR IGNORE/REPLACE, CASE WHEN
// instead of boolean arithmetic, IS DISTINCT FROM instead of IS NOT,
// integer flags compared with != 0. What differs only in spelling is
// translated here, once, for PostgreSQL (rewrite): SQLite's placeholders
// (?, ?NNN) become $n and json_extract(col, '$.key') becomes
// (col::jsonb ->> 'key'). Values cross the same way: a Go bool argument is
// stored as the integer 0 or 1 (flags are INTEGER columns in both), and a
// boolean result comes back as 0 or 1, so a caller scans into an int or a
// bool alike.
type Dialect int

const (
	// SQLite is the embedded default: one file in the data directory.
	SQLite Dialect = iota
	// Postgres is a PostgreSQL server shared by several console replicas.
	Postgres
)

func (d Dialect) String() string {
	if d == Postgres {
		return "postgres"
	}
	return "sqlite"
}

// IsPostgresURL reports whether location names a PostgreSQL database
// (postgres:// or postgresql://) rather than a SQLite file.
func IsPostgresURL(location string) bool {
	return strings.HasPrefix(location, "postgres://") || strings.HasPrefix(location, "postgresql://")
}

// rewriteCache keeps each query's PostgreSQL form: the hot paths run the
// same few hundred strings.
var rewriteCache sync.Map // string -> string

const maxRewriteCache = 4096

var rewriteCacheLen int64
var rewriteCacheMu sync.Mutex

// jsonExtract matches SQLite's json_extract(column, '$.key').
var jsonExtract = regexp.MustCompile(`json_extract\(\s*([A-Za-z_][A-Za-z0-9_.]*)\s*,\s*'\$\.([A-Za-z_][A-Za-z0-9_]*)'\s*\)`)

// rewriteForPostgres translates a query written for SQLite into
// PostgreSQL's spelling (see Dialect).
func rewriteForPostgres(q string) string {
	if v, ok := rewriteCache.Load(q); ok {
		return v.(string)
	}
	out := rewritePlaceholders(q)
	if strings.Contains(out, "json_extract") {
		out = jsonExtract.ReplaceAllString(out, "($1::jsonb ->> '$2')")
	}
	if len(q) <= maxCachedQuery {
		rewriteCacheMu.Lock()
		if rewriteCacheLen < maxRewriteCache {
			rewriteCacheLen++
			rewriteCache.Store(q, out)
		}
		rewriteCacheMu.Unlock()
	}
	return out
}

// rewritePlaceholders turns SQLite's ? and ?NNN into $n, outside string
// literals, quoted identifiers and comments. A bare ? takes the number
// after the largest used so far, as SQLite numbers it.
func rewritePlaceholders(q string) string {
	if !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	max := 0
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case c == '\'' || c == '"':
			j := i + 1
			for j < len(q) {
				if q[j] == c {
					if j+1 < len(q) && q[j+1] == c { // doubled quote
						j += 2
						continue
					}
					break
				}
				j++
			}
			if j >= len(q) {
				j = len(q) - 1
			}
			b.WriteString(q[i : j+1])
			i = j
		case c == '-' && i+1 < len(q) && q[i+1] == '-':
			j := strings.IndexByte(q[i:], '\n')
			if j < 0 {
				j = len(q) - i - 1
			}
			b.WriteString(q[i : i+j+1])
			i += j
		case c == '/' && i+1 < len(q) && q[i+1] == '*':
			j := strings.Index(q[i+2:], "*/")
			end := len(q)
			if j >= 0 {
				end = i + 2 + j + 2
			}
			b.WriteString(q[i:end])
			i = end - 1
		case c == '?':
			j := i + 1
			for j < len(q) && q[j] >= '0' && q[j] <= '9' {
				j++
			}
			n := max + 1
			if j > i+1 {
				n, _ = strconv.Atoi(q[i+1 : j])
			}
			if n > max {
				max = n
			}
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			i = j - 1
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
