#!/usr/bin/env bash
# bench/image.sh — image preparation throughput against the usual tools, on
# one input, in one run:
#   keyholder image prepare (data mode, raw output, including the final sync)
#   cryptsetup reencrypt --encrypt --type luks2 --reduce-device-size 32M (offline, on a copy)
#   qemu-img convert -O luks
#   openssl speed -evp aes-256-xts -multi NCPU (the cipher's ceiling)
#   go test -bench for the XTS kernel
# Usage: bench/image.sh [SIZE]   (default 4G; e.g. bench/image.sh 1G)
# Needs: go, cryptsetup, qemu-img, openssl, GNU time. Work files go under
# $BENCH_DIR (default: a fresh directory in $TMPDIR) and are removed.
set -euo pipefail
SIZE=${1:-4G}
cd "$(dirname "$0")/.."
NCPU=$(nproc)
WORK=${BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/keyholder-bench.XXXXXX")}
mkdir -p "$WORK"
trap 'rm -rf "$WORK"' EXIT
for t in cryptsetup qemu-img openssl /usr/bin/time; do
  command -v "$t" >/dev/null || { echo "bench: $t is missing" >&2; exit 1; }
done
bytes=$(numfmt --from=iec "$SIZE")
echo "bench: input $SIZE ($bytes bytes) of random data, $NCPU CPUs, work dir $WORK"

[ -e frontend/dist/index.html ] || { mkdir -p frontend/dist && echo x > frontend/dist/index.html; }
go build -o "$WORK/keyholder" .
head -c "$bytes" /dev/urandom > "$WORK/src.raw"
sync

# seconds NAME CMD... : runs CMD under GNU time, prints and records seconds and peak RSS
declare -A SEC RSS
seconds() {
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$WORK/time.$name" "$@" > "$WORK/out.$name" 2>&1 || { cat "$WORK/out.$name" >&2; exit 1; }
  read -r SEC[$name] RSS[$name] < "$WORK/time.$name"
  printf "  %-12s %7.2f s  %8.0f MB/s  peak RSS %5d MiB\n" "$name" "${SEC[$name]}" "$(echo "$bytes / ${SEC[$name]} / 1000000" | bc -l)" "$((RSS[$name] / 1024))"
}

echo "timings:"
# keyholder: a console with custody's default officer KDF (Argon2id, 256 MiB);
# its unlock counts in keyholder's time and whole-process peak RSS.
printf 'bench passphrase %s\n' "$RANDOM$RANDOM" > "$WORK/pass"
"$WORK/keyholder" init --data "$WORK/data" --passphrase-file "$WORK/pass" > /dev/null
seconds keyholder "$WORK/keyholder" image prepare --data "$WORK/data" --passphrase-file "$WORK/pass" \
  --in "$WORK/src.raw" --out "$WORK/out.img" --json
# The encrypt stage's own rate (after the officer unlock): its last progress line.
PIPE=$(grep '"stage":"encrypt"' "$WORK/out.keyholder" | tail -1 | sed 's/.*"rate":\([0-9.]*\).*/\1/')
printf "  %-12s %19.0f MB/s  (the prepare pipeline alone, from its progress)\n" pipeline "$(echo "$PIPE / 1000000" | bc -l)"
rm -f "$WORK/out.img" "$WORK/out.img.manifest.json"

# Peak RSS of the prepare pipeline alone. GNU time's peak above includes the
# officer unlock's Argon2id (custody's default costs 256 MiB), which ends
# before the pipeline starts. A second run: once the first progress line
# shows the pipeline running, reset the process's peak (clear_refs 5) and
# sample VmHWM until it exits (every 50 ms; a peak in the last 50 ms would
# be missed).
"$WORK/keyholder" image prepare --data "$WORK/data" --passphrase-file "$WORK/pass" \
  --in "$WORK/src.raw" --out "$WORK/out.img" --name rss --json > "$WORK/out.rss" 2>&1 &
kpid=$!
until grep -q '"progress"' "$WORK/out.rss" 2>/dev/null || ! kill -0 "$kpid" 2>/dev/null; do sleep 0.01; done
PIPE_RSS=0
if echo 5 2>/dev/null > "/proc/$kpid/clear_refs"; then
  while kill -0 "$kpid" 2>/dev/null; do
    while read -r k v _; do
      if [ "$k" = VmHWM: ] && [ "$v" -gt "$PIPE_RSS" ]; then PIPE_RSS=$v; fi
    done < "/proc/$kpid/status" 2>/dev/null || true
    sleep 0.05
  done
fi
wait "$kpid" || { cat "$WORK/out.rss" >&2; exit 1; }
rm -f "$WORK/out.img" "$WORK/out.img.manifest.json"
printf "  %-12s %34s peak RSS %5d MiB (pipeline only, after the unlock)\n" pipeline "" "$((PIPE_RSS / 1024))"

cp "$WORK/src.raw" "$WORK/copy.raw"; sync
printf 'bench' > "$WORK/luks.pass"
seconds cryptsetup sh -c "cryptsetup reencrypt -q --encrypt --type luks2 --reduce-device-size 32M --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file '$WORK/luks.pass' '$WORK/copy.raw' && sync"
rm -f "$WORK/copy.raw"

# qemu-img's PBKDF calibration sometimes fails on a busy machine ("Unable to
# get accurate CPU usage") before any data is written; it is retried.
seconds qemu-img sh -c "for i in 1 2 3 4 5; do rm -f '$WORK/out.luks'; qemu-img convert -f raw -O luks --object secret,id=sec0,data=bench -o key-secret=sec0,iter-time=250 '$WORK/src.raw' '$WORK/out.luks' && sync && exit 0; done; exit 1"
rm -f "$WORK/out.luks"

openssl speed -evp aes-256-xts -multi "$NCPU" -seconds 3 2>/dev/null > "$WORK/openssl" || true
# the best column of the aes-256-xts line (in 1000s of bytes/s)
OSSL=$(awk 'tolower($1) ~ /^aes-256-xts/ {for (i = 2; i <= NF; i++) {v = $i; sub("k", "", v); if (v + 0 > m) m = v + 0}} END {printf "%.0f", m * 1000}' "$WORK/openssl")
printf "  %-12s %8.0f MB/s (aes-256-xts, %d processes, best block size)\n" openssl "$(echo "$OSSL / 1000000" | bc -l)" "$NCPU"

XTS=$(go test -run XXX -bench 'Encrypt4096$' -benchtime 2s ./backend/luks2/internal/xts | awk '/MB\/s/ {print $(NF-1)}')
XTS512=$(go test -run XXX -bench 'Encrypt512$' -benchtime 2s ./backend/luks2/internal/xts | awk '/MB\/s/ {print $(NF-1)}')
printf "  %-12s %8.0f MB/s per core, 4096-byte sectors (%.0f MB/s with 512-byte sectors)\n" xts-kernel "$XTS" "$XTS512"

kh=$(echo "$bytes / ${SEC[keyholder]}" | bc -l)
cs=$(echo "$bytes / ${SEC[cryptsetup]}" | bc -l)
qi=$(echo "$bytes / ${SEC[qemu-img]}" | bc -l)
echo "ratios:"
printf "  keyholder / cryptsetup reencrypt: %.2fx (goal >= 1.5)\n" "$(echo "$kh / $cs" | bc -l)"
printf "  keyholder / qemu-img convert:     %.2fx (goal >= 4)\n" "$(echo "$kh / $qi" | bc -l)"
printf "  XTS kernel x %d cores / openssl:   %.0f%% (goal >= 50%%)\n" "$NCPU" "$(echo "$XTS * 1000000 * $NCPU / $OSSL * 100" | bc -l)"
printf "  keyholder peak RSS: %d MiB whole process, %d MiB pipeline after the unlock (goal <= 256)\n" "$((RSS[keyholder] / 1024))" "$((PIPE_RSS / 1024))"
