#!/usr/bin/env bash
# Runs every test: Go (vet, unit, fuzz seed corpora, generated assembly
# regenerated and compared, the purego build, every fuzz target for 2 s),
# the frontend (type check, Vitest), the browser end-to-end tests
# (Playwright driving Debian's Chromium against `keyholder serve`), the
# desktop smoke test (Wails build under Xvfb) and the boot test (a prepared
# Debian guest under QEMU gets its root volume's key). Screenshots and
# serial consoles land in artifacts/. Prints one summary line.
set -uo pipefail
cd "$(dirname "$0")/.."
export CI="${CI:-}"
mkdir -p artifacts
pass=0; fail=0; failed=(); faillogs=()
# Each step's output also lands in artifacts/steps/; the end of a failed
# step's output is printed again under the summary, where a reader of only
# the last lines of a long run (a CI page) sees why it failed.
mkdir -p artifacts/steps
step() {
  local name=$1; shift
  echo "=== $name"
  local t0=$SECONDS rc log
  log=artifacts/steps/$(echo "$name" | tr -c 'a-zA-Z0-9\n' '-' | tr -s '-' | sed 's/-$//').log
  "$@" 2>&1 | tee "$log"; rc=${PIPESTATUS[0]}
  if [ "$rc" -eq 0 ]; then pass=$((pass+1)); echo "--- ok   $name ($((SECONDS-t0))s)"
  else fail=$((fail+1)); failed+=("$name"); faillogs+=("$log"); echo "--- FAIL $name ($((SECONDS-t0))s)"; fi
}
gopkgs=$(go list ./... | grep -v /node_modules/)

gofmt_check() { local bad; bad=$(gofmt -l $(git ls-files '*.go') 2>/dev/null); [ -z "$bad" ] || { echo "gofmt wants to change: $bad"; return 1; }; }
step "gofmt" gofmt_check
step "go vet" go vet $gopkgs
step "go test" go test -timeout 20m $gopkgs
# The packages whose tests touch the store run again against a real
# PostgreSQL server (Debian's postgresql package) on loopback, in a
# temporary directory, as an unprivileged user when this runs as root.
pg_server_start() {
  local bin; bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -n "$bin" ] && [ -x "$bin/pg_ctl" ] || { echo "no PostgreSQL server programs: install the postgresql package (make deps)"; return 1; }
  pgdir=$(mktemp -d)
  local as=()
  if [ "$(id -u)" = 0 ]; then chown nobody "$pgdir"; as=(runuser -u nobody --); fi
  "${as[@]}" "$bin/initdb" -D "$pgdir/data" -U postgres --auth=trust --no-locale -E UTF8 --no-sync >"$pgdir/initdb.log" 2>&1 || { cat "$pgdir/initdb.log"; return 1; }
  local port=$((20000 + RANDOM % 20000))
  "${as[@]}" "$bin/pg_ctl" -D "$pgdir/data" -l "$pgdir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" start >/dev/null || { cat "$pgdir/server.log"; return 1; }
  pg_stop=("${as[@]}" "$bin/pg_ctl" -D "$pgdir/data" -m fast -w stop)
  export KEYHOLDER_TEST_POSTGRES="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
}
go_test_postgres() {
  local pkgs rc
  # internal/cli's tests drive commands on a data directory (SQLite); its
  # PostgreSQL tests (--database, the replica kill test) use a server of
  # their own in the first pass already.
  pkgs=$(go list -f '{{.ImportPath}} {{join .Deps " "}} {{join .TestImports " "}} {{join .XTestImports " "}}' $gopkgs | grep -w 'keyholder/backend/store' | cut -d' ' -f1 | grep -vx 'keyholder/internal/cli')
  pg_server_start || return 1
  go test -timeout 20m $pkgs; rc=$?
  "${pg_stop[@]}" >/dev/null; rm -rf "$pgdir"; unset KEYHOLDER_TEST_POSTGRES
  return $rc
}
step "go test (store on PostgreSQL)" go_test_postgres
step "go test (simulated agent build)" go test -tags simulate ./cmd/keyholder-agent
step "generated assembly up to date" ./scripts/check-generated.sh
# With -tags purego no assembly is built and the Go fallbacks pass the
# tests of the packages that have assembly.
purego_check() {
  local asm
  asm=$(go list -tags purego -f '{{if .SFiles}}{{.ImportPath}}: {{join .SFiles " "}}{{end}}' $gopkgs)
  [ -z "$asm" ] || { echo "assembly built with -tags purego: $asm"; return 1; }
  go vet -tags purego $gopkgs &&
    go test -tags purego $(go list -f '{{if .SFiles}}{{.ImportPath}}{{end}}' $gopkgs)
}
step "purego build (no assembly)" purego_check
step "fuzz (every target, 2s each)" ./scripts/fuzz.sh -t 2s
step "frontend type check" bash -c 'cd frontend && npm run --silent typecheck'
step "frontend unit tests (vitest)" bash -c 'cd frontend && npx vitest run --reporter=dot'
step "build web console" go build -o bin/keyholder-web .
step "browser tests (playwright + chromium)" bash -c 'cd frontend && KEYHOLDER_BIN=../bin/keyholder-web ARTIFACTS=../artifacts node --test --test-concurrency=1 e2e/'
step "desktop smoke (wails build + Xvfb)" ./scripts/desktop-smoke.sh
step "boot test (QEMU: a prepared Debian guest gets its key)" ./scripts/boot-test.sh

echo
for i in "${!failed[@]}"; do
  echo "=== the last lines of the failed step \"${failed[$i]}\" (all of it: ${faillogs[$i]})"
  tail -20 "${faillogs[$i]}"
done
[ $fail -eq 0 ] || echo "failed steps: ${failed[*]}"
echo "make test: $pass passed, $fail failed"
[ $fail -eq 0 ]
