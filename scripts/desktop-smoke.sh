#!/usr/bin/env bash
# Desktop smoke test: builds the desktop app with the Wails CLI (WebKitGTK
# 4.1), starts it under Xvfb on a fresh data directory, waits for its window,
# takes a screenshot (artifacts/desktop.png) and checks that the window is
# there, has its size, and shows a rendered page rather than a blank one.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p artifacts
tools/wails/bin/wails build -tags webkit2_41 -s -ldflags "-X main.version=smoke" -o keyholder >artifacts/wails-build.log 2>&1 \
  || { tail -30 artifacts/wails-build.log; exit 1; }
bin=build/bin/keyholder
tmp=$(mktemp -d)
disp=:$((90 + RANDOM % 400))
Xvfb "$disp" -screen 0 1440x900x24 -nolisten tcp >"$tmp/xvfb.log" 2>&1 &
xvfb=$!
trap 'kill $app $xvfb 2>/dev/null; rm -rf "$tmp"' EXIT
app=""
for _ in $(seq 50); do DISPLAY=$disp xdpyinfo >/dev/null 2>&1 && break; sleep 0.1; done
DISPLAY=$disp "$bin" --data "$tmp/data" >"$tmp/app.log" 2>&1 &
app=$!
win=""
for _ in $(seq 300); do
  win=$(DISPLAY=$disp xwininfo -root -tree 2>/dev/null | grep '"Keyholder": ("keyholder"' | head -1 || true)
  [ -n "$win" ] && break
  kill -0 $app 2>/dev/null || { echo "desktop app exited:"; cat "$tmp/app.log"; exit 1; }
  sleep 0.1
done
[ -n "$win" ] || { echo "no Keyholder window appeared"; cat "$tmp/app.log"; exit 1; }
echo "window: $win"
geom=$(echo "$win" | grep -oE '[0-9]+x[0-9]+[+-][0-9]+[+-][0-9]+' | head -1 | grep -oE '^[0-9]+x[0-9]+')
w=${geom%x*}; h=${geom#*x}
[ "$w" -ge 960 ] && [ "$h" -ge 600 ] || { echo "window too small: $geom"; exit 1; }
# Wait until the page has rendered: a blank or half-painted window has few colours.
colors=0
for _ in $(seq 60); do
  DISPLAY=$disp import -window root artifacts/desktop.png 2>/dev/null || true
  colors=$(convert artifacts/desktop.png -format %k info: 2>/dev/null || echo 0)
  [ "$colors" -ge 200 ] && break
  sleep 0.5
done
echo "screenshot: artifacts/desktop.png ($colors colours)"
[ "$colors" -ge 200 ] || { echo "the window looks blank ($colors colours)"; cat "$tmp/app.log"; exit 1; }
# The database the window opened is the one its services read: the app made it.
[ -s "$tmp/data/keyholder.db" ] || { echo "the desktop app did not open its store"; exit 1; }
