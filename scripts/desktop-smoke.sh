#!/usr/bin/env bash
# Desktop smoke test: builds the desktop app with the Wails CLI (WebKitGTK
# 4.1) and checks it under Xvfb twice:
#  1. on a fresh data directory: the window appears with its size and renders
#     the first-run setup (artifacts/desktop-setup.png), not a blank page;
#  2. as `keyholder demo`: an officer logs in by typing into the window
#     (xdotool), and the fleet screen fills with SIMULATED guests
#     (artifacts/desktop.png).
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
app=""
trap 'kill $app $xvfb 2>/dev/null; rm -rf "$tmp"' EXIT
export DISPLAY=$disp
for _ in $(seq 50); do xdpyinfo >/dev/null 2>&1 && break; sleep 0.1; done

# wait_window waits for the Keyholder window and checks its size.
wait_window() {
  local win=""
  for _ in $(seq 300); do
    win=$(xwininfo -root -tree 2>/dev/null | grep '"Keyholder": ("keyholder"' | head -1 || true)
    [ -n "$win" ] && break
    kill -0 $app 2>/dev/null || { echo "desktop app exited:"; cat "$tmp/app.log"; return 1; }
    sleep 0.1
  done
  [ -n "$win" ] || { echo "no Keyholder window appeared"; cat "$tmp/app.log"; return 1; }
  echo "window: $win"
  local geom w h
  geom=$(echo "$win" | grep -oE '[0-9]+x[0-9]+[+-][0-9]+[+-][0-9]+' | head -1 | grep -oE '^[0-9]+x[0-9]+')
  w=${geom%x*}; h=${geom#*x}
  [ "$w" -ge 960 ] && [ "$h" -ge 600 ] || { echo "window too small: $geom"; return 1; }
}

# shot FILE MIN_COLOURS waits until the screen has rendered (a blank or
# half-painted window has few colours) and saves it.
shot() {
  local colors=0
  for _ in $(seq 60); do
    import -window root "$1" 2>/dev/null || true
    colors=$(convert "$1" -format %k info: 2>/dev/null || echo 0)
    [ "$colors" -ge "$2" ] && break
    sleep 0.5
  done
  echo "screenshot: $1 ($colors colours)"
  [ "$colors" -ge "$2" ] || { echo "the window looks blank ($colors colours)"; cat "$tmp/app.log"; return 1; }
}

# per mille of the screen in the SIMULATED badge colour (the light theme's
# grape filled, darkened for contrast in global.css): the
# header badge alone is about 1.3, each guest row adds about 1.3
simulated_share() { convert "$1" -fuzz 6% -fill black +opaque '#862e9c' -fill white -opaque '#862e9c' -colorspace gray -format '%[fx:mean*1000]' info: | cut -d. -f1; }

# 1. A fresh console: the setup screen.
"$bin" --data "$tmp/data" >"$tmp/app.log" 2>&1 &
app=$!
wait_window
shot artifacts/desktop-setup.png 200
[ -s "$tmp/data/keyholder.db" ] || { echo "the desktop app did not open its store"; exit 1; }
kill $app; wait $app 2>/dev/null || true

# 2. The demo: log in through the window, then the fleet fills.
"$bin" demo >"$tmp/app.log" 2>&1 &
app=$!
wait_window
shot artifacts/desktop-login.png 200
pass=$(grep -oE 'passphrase "[^"]+"' "$tmp/app.log" | head -1 | cut -d'"' -f2)
[ -n "$pass" ] || { echo "demo printed no passphrase"; cat "$tmp/app.log"; exit 1; }
xdotool key Tab
xdotool type --delay 15 demo
xdotool key Tab
xdotool type --delay 15 "$pass"
xdotool key Return
share=0
for _ in $(seq 60); do
  sleep 1
  import -window root artifacts/desktop.png 2>/dev/null || continue
  share=$(simulated_share artifacts/desktop.png)
  [ "${share:-0}" -ge 3 ] && break
done
echo "fleet screen: SIMULATED badges cover ${share} per mille of the screen"
[ "${share:-0}" -ge 3 ] || { echo "the fleet screen with SIMULATED guests did not appear (see artifacts/desktop.png)"; cat "$tmp/app.log"; exit 1; }
