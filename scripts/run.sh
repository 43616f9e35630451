#!/usr/bin/env bash
# Opens Keyholder: the desktop window when a display exists, otherwise the
# web console on loopback (it prints the URL). The data directory defaults to
# the per-user config directory; set KEYHOLDER_DATA to use another.
set -euo pipefail
cd "$(dirname "$0")/.."
args=()
[ -n "${KEYHOLDER_DATA:-}" ] && args+=(--data "$KEYHOLDER_DATA")
if ./bin/keyholder help 2>/dev/null | grep -q '^  demo '; then
  # With nothing else configured, the demo gives a fresh SQLite store and a simulated fleet.
  if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then exec ./bin/keyholder demo "${args[@]}"; fi
  exec ./bin/keyholder demo --web "${args[@]}"
fi
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then exec ./bin/keyholder "${args[@]}"; fi
exec ./bin/keyholder serve "${args[@]}"
