#!/usr/bin/env bash
# bench/replicas.sh — one console on SQLite against two replicas on one
# PostgreSQL, in one run, both through the real release API (keyholder
# bench release --wire: HTTP over pinned TLS 1.3, as agents do):
#   1. SQLite, one process: closed loop -> capacity C1 (releases/s)
#   2. SQLite, one process: open loop at 70 % of C1 -> p99
#   3. PostgreSQL, one process: closed loop (what the database costs alone)
#   4. PostgreSQL, 2 replicas: closed loop -> capacity C2
#   5. PostgreSQL, 2 replicas: open loop at 70 % of C2 -> p99
# Goal: C2 >= 50 % of C1, and p99 <= 100 ms at 70 % of capacity.
# Every storm but 3 runs ROUNDS times (3), SQLite and the replicas taking
# turns, and the table shows the median of the rounds: on this shared
# two-core machine one storm's capacity or p99 moves by a fifth from one
# minute to the next, and a single storm says more about that minute than
# about the console. Each round's figures are printed too.
# Every storm starts from an empty database (a new SQLite file, a new
# PostgreSQL database) with a known fleet, and from consoles that have
# served WARMUP releases before it (untimed, through the storm's own
# connections: the steady state of a console serving a fleet, not its first
# requests after a start; the same for every storm). 256 were not enough
# on PostgreSQL: a replica's batches took 27-36 ms on average in the
# storm's first half second and 4-6 ms after it (storms at 70 %, 2
# replicas, batch log), and that half second made the p99 (45-161 ms in
# fifteen storms; 39-53 ms in five after 1,024). A pause after the warm-up did
# not shorten it, nor did generic plans from the start, and no connection
# was opened during it. What warms up is the console process's memory: in
# that half second its heap and goroutine stacks still grow, and memmove
# and memclr on fresh pages (each one faulting, on this VM at the host)
# took 7-9 % of the machine, against 1.6-1.9 % after 1,024 (perf, the
# storm's first 0.6 s). 1,024 are one to two seconds of two replicas at
# 70 % of their capacity.
#
# PostgreSQL: KEYHOLDER_BENCH_POSTGRES (a server URL, e.g.
# postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable: the bench
# creates and drops its own databases there), or else a scratch server
# started here from Debian's postgresql package (initdb in a temporary
# directory, loopback port, durable settings: fsync and synchronous
# commit on, as SQLite's commits are; as user nobody when run as root;
# with PG_MALLOC as the server's GLIBC_TUNABLES, see below; PG_MALLOC=
# leaves glibc's defaults).
#
# Usage: bench/replicas.sh   Environment: GUESTS (3000), CONCURRENCY (64),
# CHIPS (64), WARMUP (1024), ROUNDS (3), PG_MALLOC. Needs go, jq, postgresql.
set -euo pipefail
cd "$(dirname "$0")/.."
GUESTS=${GUESTS:-3000}
CONCURRENCY=${CONCURRENCY:-64}
CHIPS=${CHIPS:-64}
WARMUP=${WARMUP:-1024}
ROUNDS=${ROUNDS:-3}
PG_MALLOC=${PG_MALLOC-glibc.malloc.trim_threshold=16777216:glibc.malloc.mmap_threshold=16777216}
for t in go jq; do
  command -v "$t" >/dev/null || { echo "bench: $t is missing" >&2; exit 1; }
done
WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/keyholder-replicas.XXXXXX")
PGPID=""
cleanup() {
  if [ -n "$PGPID" ]; then kill -QUIT "$PGPID" 2>/dev/null || true; wait "$PGPID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
echo "bench: $GUESTS guests ($WARMUP more to warm up), $CONCURRENCY in flight, $CHIPS chips, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"

[ -e frontend/dist/index.html ] || { mkdir -p frontend/dist && echo x > frontend/dist/index.html; }
go build -o "$WORK/keyholder" .

PSQL=psql
if [ -z "${KEYHOLDER_BENCH_POSTGRES:-}" ]; then
  BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
  [ -n "$BIN" ] && [ -x "$BIN/initdb" ] || { echo "bench: PostgreSQL server programs missing (Debian package postgresql)" >&2; exit 1; }
  PSQL="$BIN/psql"
  as=()
  if [ "$(id -u)" = 0 ]; then
    chown nobody "$WORK"
    as=(setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups)
  fi
  "${as[@]}" "$BIN/initdb" -D "$WORK/pg" -U postgres --auth=trust --no-locale -E UTF8 >/dev/null
  PORT=$(shuf -i 20000-60000 -n 1)
  # glibc gives a backend's freed heap back to the kernel as soon as 128 KiB
  # lie free at its top, here over a hundred times a second in a storm;
  # each time, the kernel flushes the TLB of every processor the server
  # ran on, an interrupt to each, which on this VM cost the server about a
  # tenth of its CPU (perf: brk -> flush_tlb_mm_range). Keeping up to 16 MiB
  # freed per backend ends that (README, "For a team": the same setting for
  # a production server).
  GLIBC_TUNABLES=$PG_MALLOC "${as[@]}" "$BIN/postgres" -D "$WORK/pg" -c listen_addresses=127.0.0.1 -p "$PORT" -c unix_socket_directories= \
    -c max_connections=200 >"$WORK/pg.log" 2>&1 &
  PGPID=$!
  KEYHOLDER_BENCH_POSTGRES="postgres://postgres@127.0.0.1:$PORT/postgres?sslmode=disable"
  for _ in $(seq 100); do
    "$PSQL" "$KEYHOLDER_BENCH_POSTGRES" -qc 'SELECT 1' >/dev/null 2>&1 && break
    sleep 0.2
  done
  "$PSQL" "$KEYHOLDER_BENCH_POSTGRES" -qc 'SELECT 1' >/dev/null || { cat "$WORK/pg.log" >&2; exit 1; }
  echo "bench: scratch PostgreSQL $("$PSQL" "$KEYHOLDER_BENCH_POSTGRES" -Atc 'SHOW server_version') on 127.0.0.1:$PORT (fsync $("$PSQL" "$KEYHOLDER_BENCH_POSTGRES" -Atc 'SHOW fsync'), synchronous_commit $("$PSQL" "$KEYHOLDER_BENCH_POSTGRES" -Atc 'SHOW synchronous_commit'), GLIBC_TUNABLES ${PG_MALLOC:-unset})"
fi

# pgdb prints the URL of a new, empty PostgreSQL database.
pgdb() {
  local name="keyholder_bench_$$_$(date +%s%N)"
  "$PSQL" "$KEYHOLDER_BENCH_POSTGRES" -qc "CREATE DATABASE $name" >/dev/null
  echo "$KEYHOLDER_BENCH_POSTGRES" | sed -E "s#(//[^/]*)/[^?]*#\1/$name#"
}
# storm LABEL ARGS... runs one storm and prints its JSON to $WORK/LABEL.json.
storm() {
  local label=$1; shift
  "$WORK/keyholder" bench release --guests "$GUESTS" --concurrency "$CONCURRENCY" --chips "$CHIPS" --warm-up "$WARMUP" --wire --json "$@" \
    >"$WORK/$label.json" 2>"$WORK/$label.log" || { cat "$WORK/$label.log" >&2; exit 1; }
  jq -r --arg l "$label" '"bench: \($l): \(.releases_per_second | floor) releases/s, p50 \(.p50_ms) ms, p99 \(.p99_ms) ms, \(.ok) ok, \(.errors) errors"' "$WORK/$label.json"
  pgdrop
}
field() { jq -r ".$2" "$WORK/$1.json"; }
# pgdrop drops the databases this run made. A storm's database goes once
# the storm is over: left behind, finished databases are autovacuum's to
# visit on the two cores the next storms need, and every storm should meet
# the same server.
pgdrop() {
  local db
  for db in $("$PSQL" "$KEYHOLDER_BENCH_POSTGRES" -Atc "SELECT datname FROM pg_database WHERE datname LIKE 'keyholder_bench\_$$\_%'"); do
    "$PSQL" "$KEYHOLDER_BENCH_POSTGRES" -qc "DROP DATABASE $db WITH (FORCE)" >/dev/null
  done
}

# median LABEL FIELD: the median of FIELD over LABEL's rounds (the upper
# of the two middle ones for an even count); rounds LABEL FIELD [SCALE]:
# each round's, rounded to 1/SCALE.
median() { jq -s "map(.$2) | sort | .[length / 2 | floor]" "$WORK/$1".r*.json; }
rounds() { jq -s -r "map(.$2 | . * ${3:-1} | round / ${3:-1}) | join(\", \")" "$WORK/$1".r*.json; }

for r in $(seq "$ROUNDS"); do
  storm sqlite-closed.r$r --database "$WORK/closed$r.db"
  storm pg2-closed.r$r --database "$(pgdb)" --replicas 2
done
storm pg1-closed --database "$(pgdb)"
C1=$(median sqlite-closed releases_per_second)
C2=$(median pg2-closed releases_per_second)
for r in $(seq "$ROUNDS"); do
  storm sqlite-70.r$r --database "$WORK/open$r.db" --rate "$(jq -n "$C1 * 0.7")"
  storm pg2-70.r$r --database "$(pgdb)" --replicas 2 --rate "$(jq -n "$C2 * 0.7")"
done
P1=$(median sqlite-70 p99_ms)
P2=$(median pg2-70 p99_ms)

echo
echo "| console (--wire), median of $ROUNDS | capacity (releases/s) | at 70 %: offered | p50 ms | p99 ms |"
echo "|-----------------------------|----------------------:|-----------------:|-------:|-------:|"
printf "| SQLite, 1 process           | %21.0f | %16.0f | %6.1f | %6.1f |\n" "$C1" "$(median sqlite-70 offered_rate)" "$(median sqlite-70 p50_ms)" "$P1"
printf "| PostgreSQL, 1 process (once) | %20.0f | %16s | %6s | %6s |\n" "$(field pg1-closed releases_per_second)" "-" "-" "-"
printf "| PostgreSQL, 2 replicas      | %21.0f | %16.0f | %6.1f | %6.1f |\n" "$C2" "$(median pg2-70 offered_rate)" "$(median pg2-70 p50_ms)" "$P2"
echo
echo "rounds: capacity SQLite $(rounds sqlite-closed releases_per_second), 2 replicas $(rounds pg2-closed releases_per_second);"
echo "        p99 at 70 % SQLite $(rounds sqlite-70 p99_ms 10) ms, 2 replicas $(rounds pg2-70 p99_ms 10) ms"
share=$(jq -n "100 * $C2 / $C1 | floor")
echo
echo "replicas keep $share % of the single-process throughput (goal >= 50 %); p99 at 70 %: $P1 ms and $P2 ms (goal <= 100 ms)"
jq -n --argjson s "$share" --argjson a "$P1" --argjson b "$P2" \
  'if $s >= 50 and $a <= 100 and $b <= 100 then empty else error("goal not met") end'
