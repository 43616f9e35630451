#!/usr/bin/env bash
# Desktop smoke test: builds the desktop app with the Wails CLI (WebKitGTK
# 4.1) and checks it under Xvfb three times:
#  1. on a fresh data directory: the window appears with its size and asks
#     which console it is (artifacts/desktop-choice.png); "This computer is
#     the console" (keyboard) opens the store and renders the first-run
#     setup (artifacts/desktop-setup.png), not a blank page;
#  2. as `keyholder demo`: an officer logs in by typing into the window
#     (xdotool), and the fleet screen fills with SIMULATED guests
#     (artifacts/desktop.png);
#  3. as a client of a shared console: `keyholder demo --web` serves over TLS;
#     the desktop connects to it by typing its URL and certificate pin into
#     the choice screen (remembered in the desktop's config file, without a
#     secret), the officer logs in against it, and the fleet screen fills with
#     the remote console's SIMULATED guests (artifacts/desktop-remote.png);
#     when the console goes away a red banner says so
#     (artifacts/desktop-remote-down.png), and it goes once the console is
#     back.
# The desktop's config directory is a temporary one (XDG_CONFIG_HOME).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p artifacts
tools/wails/bin/wails build -tags webkit2_41 -s -ldflags "-X main.version=smoke" -o keyholder >artifacts/wails-build.log 2>&1 \
  || { tail -30 artifacts/wails-build.log; echo "desktop smoke FAILED: wails build"; exit 1; }
bin=build/bin/keyholder
tmp=$(mktemp -d)
disp=:$((90 + RANDOM % 400))
screen_w=1440 screen_h=900 # the screen; the window fills most of it, its middle included
Xvfb "$disp" -screen 0 ${screen_w}x${screen_h}x24 -nolisten tcp >"$tmp/xvfb.log" 2>&1 &
xvfb=$!
app=""
console=""
trap 'kill $app $console $xvfb 2>/dev/null; rm -rf "$tmp"' EXIT
export DISPLAY=$disp
export XDG_CONFIG_HOME=$tmp/config
choice=$XDG_CONFIG_HOME/keyholder/desktop.json
for _ in $(seq 50); do xdpyinfo >/dev/null 2>&1 && break; sleep 0.1; done

# fail REASON [LOG] prints the end of the app's log (or LOG), then the
# reason, last, where a reader of the run's last lines sees it.
fail() {
  local log=${2:-$tmp/app.log}
  [ -s "$log" ] && { echo "--- the last lines of $(basename "$log")"; tail -30 "$log"; }
  echo "desktop smoke FAILED: $1"
  exit 1
}

# wait_window waits for the Keyholder window and checks its size.
wait_window() {
  local win=""
  for _ in $(seq 300); do
    win=$(xwininfo -root -tree 2>/dev/null | grep '"Keyholder": ("keyholder"' | head -1 || true)
    [ -n "$win" ] && break
    kill -0 $app 2>/dev/null || fail "the desktop app exited"
    sleep 0.1
  done
  [ -n "$win" ] || fail "no Keyholder window appeared"
  echo "window: $win"
  winid=$(echo "$win" | awk '{print $1}')
  local geom w h
  geom=$(echo "$win" | grep -oE '[0-9]+x[0-9]+[+-][0-9]+[+-][0-9]+' | head -1 | grep -oE '^[0-9]+x[0-9]+')
  w=${geom%x*}; h=${geom#*x}
  [ "$w" -ge 960 ] && [ "$h" -ge 600 ] || fail "window too small: $geom"
}

# settle FILE MIN_COLOURS [REPLACED] waits until the window is ready for
# keys and saves the screen to FILE: it has rendered (a blank or half-painted
# window, or a spinner, has few colours), it is no longer the screen in the
# screenshot REPLACED (more than 2 % of the pixels differ), and it has stayed
# the same for half a second (a spinner or a screen still being drawn moves;
# a text cursor's blink, 100 pixels at most, does not count).
# A fixed sleep instead sent the officer's keys to a screen still loading
# when the machine was busy.
settle() {
  local file=$1 min=$2 replaced=${3:-} prev=$tmp/settle.png colors=0 why="it never rendered"
  rm -f "$prev"
  for _ in $(seq 90); do
    if import -window root "$file" 2>/dev/null; then
      colors=$(convert "$file" -format %k info: 2>/dev/null || echo 0)
      if [ "$colors" -lt "$min" ]; then why="it looks blank ($colors colours)"
      elif [ -n "$replaced" ] && [ "$(differ "$file" "$replaced")" -le $((screen_w * screen_h / 50)) ]; then why="it still shows $(basename "$replaced")"
      elif [ ! -e "$prev" ] || [ "$(differ "$file" "$prev")" -gt 100 ]; then why="it kept changing"
      else echo "screenshot: $file ($colors colours)"; return 0
      fi
      cp "$file" "$prev"
    fi
    sleep 0.5
  done
  fail "the window was not ready after 45 s: $why (see $file)"
}
# send_keys REPLACED COMMAND...: gives the window the keyboard, runs the
# xdotool COMMAND, and checks that the screen no longer looks like the
# screenshot REPLACED; when no key arrived it tries again (three times).
# Without a window manager the keyboard follows the pointer, and a window
# mapped under a resting pointer on a busy machine may never learn that it
# has it: every key then went nowhere (a login screen that stayed empty).
send_keys() {
  local replaced=$1 shot=artifacts/desktop-keys.png try; shift
  for try in 1 2 3; do
    xdotool mousemove $((screen_w - 1)) $((screen_h - 1)) mousemove $((screen_w / 2)) $((screen_h / 2))
    timeout 5 xdotool windowfocus --sync "$winid" || true
    "$@"
    for _ in $(seq 8); do
      sleep 0.5
      import -window root "$shot" 2>/dev/null || continue
      [ "$(differ "$shot" "$replaced")" -gt 100 ] && return 0
    done
    echo "the window did not take the keys (attempt $try of 3)"
  done
  fail "the window never took the keys (see $shot)"
}
# log_in LOGIN FLEET WHAT logs in as the demo officer ($pass) on the login
# screen (its screenshot LOGIN) and waits for the fleet with its SIMULATED
# guests (saved to FLEET). Once in CI the typed form was shown, Return
# pressed, and the login screen then stood empty for a minute, no error and
# no login: the form had been drawn anew, with the keys' work lost. If the
# empty login screen stays 5 s after Return, the script says so, keeps the
# screen (artifacts/desktop-login-again-N.png) and types again, up to three
# times.
log_in() {
  local login=$1 fleet=$2 what=$3 attempt i share=0
  for attempt in 1 2 3; do
    send_keys "$login" login demo "$pass"
    xdotool key Return
    for i in $(seq 60); do
      sleep 1
      import -window root "$fleet" 2>/dev/null || continue
      share=$(simulated_share "$fleet")
      if [ "${share:-0}" -ge 3 ]; then
        echo "$what: SIMULATED badges cover ${share} per mille of the screen"
        return 0
      fi
      [ "$i" -ge 5 ] && [ "$(differ "$fleet" "$login")" -le 100 ] && break
    done
    cp "$fleet" "artifacts/desktop-login-again-$attempt.png"
    echo "$what: no login after Return (attempt $attempt of 3; artifacts/desktop-login-again-$attempt.png)"
    xdotool mousemove 100 $((screen_h / 2)) click 1 # an empty part of the page: no field keeps the focus
  done
  fail "the $what with SIMULATED guests did not appear (see $fleet)"
}
# login NAME PASSPHRASE types into the login form's two fields.
login() {
  xdotool key Tab ctrl+a
  xdotool type --delay 15 "$1"
  xdotool key Tab ctrl+a
  xdotool type --delay 15 "$2"
}
# connect URL PIN types into the choice screen's URL and pin fields.
connect() {
  xdotool key Tab Tab ctrl+a
  xdotool type --delay 15 "$1"
  xdotool key Tab
  xdotool type --delay 5 "$2"
}
# differ A B: how many pixels of the two screenshots differ visibly
differ() { compare -metric AE -fuzz 5% "$1" "$2" null: 2>&1 | cut -d' ' -f1 | cut -d. -f1; }

# per mille of the screen in the SIMULATED badge colour (the light theme's
# grape filled, darkened for contrast in global.css): the
# header badge alone is about 1.3, each guest row adds about 1.3
simulated_share() { convert "$1" -fuzz 6% -fill black +opaque '#862e9c' -fill white -opaque '#862e9c' -colorspace gray -format '%[fx:mean*1000]' info: | cut -d. -f1; }

# 1. A fresh start: the choice, then this computer's console and its setup.
"$bin" --data "$tmp/data" >"$tmp/app.log" 2>&1 &
app=$!
wait_window
settle artifacts/desktop-choice.png 200
[ ! -e "$tmp/data/keyholder.db" ] || fail "the desktop app opened a store before the officer chose"
send_keys artifacts/desktop-choice.png xdotool key Tab # to "Use this computer", the first control
xdotool key Return
for _ in $(seq 100); do [ -s "$tmp/data/keyholder.db" ] && break; sleep 0.2; done
[ -s "$tmp/data/keyholder.db" ] || fail "the desktop app did not open its store after the choice"
grep -q '"mode": "local"' "$choice" || fail "the choice was not remembered (its config file is above)" "$choice"
settle artifacts/desktop-setup.png 200 artifacts/desktop-choice.png
kill $app; wait $app 2>/dev/null || true
rm -f "$choice"

# 2. The demo: log in through the window, then the fleet fills.
"$bin" demo >"$tmp/app.log" 2>&1 &
app=$!
wait_window
settle artifacts/desktop-login.png 200
pass=$(grep -oE 'passphrase "[^"]+"' "$tmp/app.log" | head -1 | cut -d'"' -f2)
[ -n "$pass" ] || fail "demo printed no passphrase"
log_in artifacts/desktop-login.png artifacts/desktop.png "fleet screen"
kill $app; wait $app 2>/dev/null || true

# 3. A shared console over TLS; the desktop connects to it by its pin.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=keyholder-smoke \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$tmp/console.key" -out "$tmp/console.crt" 2>/dev/null
port=$((20000 + RANDOM % 20000))
start_console() {
  "$bin" demo --web --listen "127.0.0.1:$port" --tls-cert "$tmp/console.crt" --tls-key "$tmp/console.key" >"$tmp/console.log" 2>&1 &
  console=$!
  for _ in $(seq 300); do grep -q 'Console certificate (SPKI pin' "$tmp/console.log" && break; sleep 0.1; done
  grep -q 'Console certificate (SPKI pin' "$tmp/console.log" || fail "the shared console did not start" "$tmp/console.log"
}
start_console
url=$(grep -oE 'Keyholder console: https://\S+' "$tmp/console.log" | cut -d' ' -f3 | sed 's#/$##' || true)
pin=$(grep -oE 'Console certificate \(SPKI pin, SHA-256\): [0-9a-f]{64}' "$tmp/console.log" | grep -oE '[0-9a-f]{64}$' || true)
pass=$(grep -oE 'passphrase "[^"]+"' "$tmp/console.log" | head -1 | cut -d'"' -f2 || true)
[ -n "$url" ] && [ -n "$pin" ] && [ -n "$pass" ] || fail "the shared console printed no URL, pin or passphrase" "$tmp/console.log"
"$bin" --data "$tmp/remote-data" >"$tmp/app.log" 2>&1 &
app=$!
wait_window
settle artifacts/desktop-remote-choice.png 200
send_keys artifacts/desktop-remote-choice.png connect "$url" "$pin"
xdotool key Return
for _ in $(seq 100); do [ -s "$choice" ] && break; sleep 0.2; done
[ -s "$choice" ] || { import -window root artifacts/desktop-remote-choice.png; fail "the desktop did not connect to $url (see artifacts/desktop-remote-choice.png)"; }
grep -q '"mode": "remote"' "$choice" && grep -q "$pin" "$choice" || fail "the connection was not remembered (its config file is above)" "$choice"
! grep -qiE 'token|passphrase|session' "$choice" || fail "the desktop's config file (above) holds a secret" "$choice"
[ ! -e "$tmp/remote-data/keyholder.db" ] || fail "a client of a shared console opened a store of its own"
settle artifacts/desktop-remote-login.png 200 artifacts/desktop-remote-choice.png
log_in artifacts/desktop-remote-login.png artifacts/desktop-remote.png "remote fleet screen"

# per mille of the screen in the down banner's red (Mantine's filled red, darkened for contrast)
red_share() { convert "$1" -fuzz 4% -fill black +opaque '#c92a2a' -fill white -opaque '#c92a2a' -colorspace gray -format '%[fx:mean*1000]' info: | cut -d. -f1; }
base=$(red_share artifacts/desktop-remote.png)
kill $console; wait $console 2>/dev/null || true
red=0
for _ in $(seq 60); do
  sleep 0.5
  import -window root artifacts/desktop-remote-down.png 2>/dev/null || continue
  red=$(red_share artifacts/desktop-remote-down.png)
  [ "${red:-0}" -ge $((base + 20)) ] && break
done
echo "console down: the banner's red covers ${red} per mille of the screen (${base} before)"
[ "${red:-0}" -ge $((base + 20)) ] || fail "no banner said the console is down (see artifacts/desktop-remote-down.png)"
start_console
for _ in $(seq 120); do
  sleep 0.5
  import -window root artifacts/desktop-remote-back.png 2>/dev/null || continue
  red=$(red_share artifacts/desktop-remote-back.png)
  [ "${red:-0}" -le $((base + 5)) ] && break
done
echo "console back: red covers ${red} per mille"
[ "${red:-0}" -le $((base + 5)) ] || fail "the down banner stayed after the console came back (see artifacts/desktop-remote-back.png)"
echo "desktop smoke: local, demo and remote modes pass"
