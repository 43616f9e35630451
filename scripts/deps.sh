#!/usr/bin/env bash
# Installs what building and testing Keyholder needs and is missing: the
# Debian packages in .ci/apt-packages.txt, the frontend's npm packages (from
# package-lock.json) and the Wails CLI (built from tools/wails). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

want=$(grep -v '^\s*#' .ci/apt-packages.txt | grep -v '^\s*$' | tr '\n' ' ')
missing=""
for p in $want; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "deps: installing Debian packages:$missing"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

if [ ! -d frontend/node_modules ] || [ frontend/package-lock.json -nt frontend/node_modules/.package-lock.json ]; then
  echo "deps: installing npm packages"
  (cd frontend && npm ci --no-audit --no-fund --loglevel=error)
fi

if [ "${1:-}" = "--wails" ] && [ ! -x tools/wails/bin/wails ]; then
  echo "deps: building the Wails CLI"
  (cd tools/wails && go build -o bin/wails github.com/wailsapp/wails/v2/cmd/wails)
fi
go mod download
