#!/usr/bin/env bash
# UI load benchmark: `keyholder demo` (25 live SIMULATED guests that boot,
# heartbeat, migrate and fail) plus fleetseed's extra guests, so the fleet
# table holds about GUESTS rows, measured in Chromium (frontend/bench/fleet-load.mjs).
# Goals (issue 15, at 100000 guests): first rows <= 1.5 s after navigation, a
# heartbeat visible in the table <= 1 s after the console received it, JS heap
# <= 150 MB.
# Usage: bench/ui.sh [GUESTS] [SECONDS]   (defaults 10000 and 45)
set -euo pipefail
cd "$(dirname "$0")/.."
total=${1:-10000}
secs=${2:-45}
make -s web >/dev/null
go build -o bin/fleetseed ./bench/fleetseed
out=$(mktemp)
./bin/keyholder-web demo --web --keep --listen 127.0.0.1:0 >"$out" 2>/dev/null &
pid=$!
trap 'kill $pid 2>/dev/null; rm -f "$out"; [ -n "${dir:-}" ] && rm -rf "$dir"' EXIT
for _ in $(seq 600); do grep -q 'Keyholder console:' "$out" && break; sleep 0.1; done
url=$(grep -oE 'Keyholder console: http\S+' "$out" | cut -d' ' -f3 | sed 's#/$##')
dir=$(grep -oE 'Demo data directory: \S+' "$out" | cut -d' ' -f4)
officer=$(grep -oE 'officer "[^"]+"' "$out" | cut -d'"' -f2)
pass=$(grep -oE 'passphrase "[^"]+"' "$out" | cut -d'"' -f2)
./bin/fleetseed --data "$dir" --guests $((total - 25))
sleep 20 # let the live guests boot
(cd frontend && node bench/fleet-load.mjs "$url" "$officer" "$pass" "$secs")
