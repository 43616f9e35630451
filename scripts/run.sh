#!/usr/bin/env bash
# Opens Keyholder: the desktop window when a display exists, otherwise the
# web console on loopback (it prints the URL). With nothing configured yet
# (no console in the data directory) it starts `keyholder demo`: a fresh
# SQLite store with a SIMULATED fleet. Set KEYHOLDER_DATA to use another data
# directory than the per-user config directory.
set -euo pipefail
cd "$(dirname "$0")/.."
data="${KEYHOLDER_DATA:-${XDG_CONFIG_HOME:-$HOME/.config}/Keyholder}"
display=""
[ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] && display=1
if [ ! -s "$data/keyholder.db" ]; then
  echo "No console in $data yet: starting the SIMULATED demo (run 'bin/keyholder init --data $data' for a real one)."
  if [ -n "$display" ]; then exec ./bin/keyholder demo; fi
  exec ./bin/keyholder demo --web
fi
if [ -n "$display" ]; then exec ./bin/keyholder --data "$data"; fi
exec ./bin/keyholder serve --data "$data"
