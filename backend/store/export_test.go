package store

// RewriteForPostgres exposes the dialect translation to the tests.
var RewriteForPostgres = rewriteForPostgres
