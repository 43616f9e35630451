#!/usr/bin/env bash
# bench/image.sh — image preparation against the usual tools, on the same
# input, in one run, on tmpfs (no disk: what the CPU costs) and on a disk:
#   keyholder image prepare (data mode, raw output, including the final sync)
#   cryptsetup reencrypt --encrypt --type luks2 (offline, one thread, on a copy)
#   qemu-img convert -O luks
#   dd bs=4M oflag=direct (the copy speed of the file system)
# and, on tmpfs, keyholder from qcow2 and VMDK sources and to the gcp and
# azure outputs. Tools run interleaved, REPEAT times (default 2); ranges
# over the repetitions are printed. Per run: wall time, MB/s, CPU seconds
# (user + system, all threads, from GNU time) per GiB, and peak RSS.
# keyholder's "pipeline MB/s" runs from its first progress line to its exit
# (after the officer unlock; with the sync and the registration).
# "net" columns subtract each tool's fixed cost, measured by running it on
# a 64 MiB input in the same place: keyholder's officer unlock (Argon2id,
# 256 MiB, about a second), qemu-img's PBKDF calibration.
#   keyholder's "pipeline RSS" is the peak after the unlock (the process's
# peak counter is reset once the pipeline reports progress), the memory
# the prepare pipeline holds; GNU time's peak includes the unlock's 256 MiB.
#
# Usage: bench/image.sh [SIZE]   (default 2G)
# Environment: REPEAT (2), BENCH_TMPFS (/dev/shm), BENCH_DISK ($TMPDIR or
# /var/tmp: a folder on the disk to measure). Needs go, cryptsetup,
# qemu-img, GNU time, bc. Work files are removed at the end.
set -euo pipefail
SIZE=${1:-2G}
REPEAT=${REPEAT:-2}
cd "$(dirname "$0")/.."
for t in cryptsetup qemu-img /usr/bin/time bc; do
  command -v "$t" >/dev/null || { echo "bench: $t is missing" >&2; exit 1; }
done
bytes=$(numfmt --from=iec "$SIZE")
small=$((64 << 20))
TMPFS=$(mktemp -d "${BENCH_TMPFS:-/dev/shm}/keyholder-bench.XXXXXX")
DISK=$(mktemp -d "${BENCH_DISK:-${TMPDIR:-/var/tmp}}/keyholder-bench.XXXXXX")
trap 'rm -rf "$TMPFS" "$DISK"' EXIT
echo "bench: $SIZE ($bytes bytes) of random data, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "bench: tmpfs $TMPFS ($(stat -f -c %T "$TMPFS")), disk $DISK ($(stat -f -c %T "$DISK"))"

[ -e frontend/dist/index.html ] || { mkdir -p frontend/dist && echo x > frontend/dist/index.html; }
BIN=$DISK/keyholder
go build -o "$BIN" .
printf 'bench passphrase %s\n' "$RANDOM$RANDOM" > "$DISK/pass"
"$BIN" init --data "$DISK/data" --passphrase-file "$DISK/pass" > /dev/null
printf 'bench' > "$DISK/luks.pass"

# One source per place, and a 64 MiB one for the fixed costs.
head -c "$bytes" /dev/urandom > "$DISK/src.raw"
cp "$DISK/src.raw" "$TMPFS/src.raw"
head -c "$small" /dev/urandom > "$TMPFS/small.raw"
cp "$TMPFS/small.raw" "$DISK/small.raw"
qemu-img convert -f raw -O qcow2 "$TMPFS/src.raw" "$TMPFS/src.qcow2"
qemu-img convert -f raw -O vmdk "$TMPFS/src.raw" "$TMPFS/src.vmdk"
sync

# timed KEY CMD... : runs CMD under GNU time; appends "wall user sys rssKiB"
# to $RES/KEY.
RES=$(mktemp -d)
trap 'rm -rf "$TMPFS" "$DISK" "$RES"' EXIT
timed() {
  local key=$1; shift
  /usr/bin/time -f "%e %U %S %M" -o "$RES/t" "$@" > "$RES/out" 2>&1 || { cat "$RES/out" >&2; exit 1; }
  cat "$RES/t" >> "$RES/$key"
}
n=0
# keyholder KEY DIR SRC [prepare flags]: one prepare, also sampling the
# pipeline's own peak RSS (after the unlock) into $RES/KEY.rss.
keyholder() {
  local key=$1 dir=$2 src=$3; shift 3
  n=$((n + 1))
  local out="$dir/out$n.img"
  /usr/bin/time -f "%e %U %S %M" -o "$RES/t" "$BIN" image prepare --data "$DISK/data" --passphrase-file "$DISK/pass" \
    --in "$src" --out "$out" --name "run$n" --force --json "$@" > "$RES/out" 2>&1 &
  local tpid=$! kpid="" hwm=0 pre=0 t0=0 t1=0 done0=""
  until [ -n "$kpid" ] || ! kill -0 "$tpid" 2>/dev/null; do kpid=$(pgrep -P "$tpid" || true); [ -n "$kpid" ] || sleep 0.01; done
  if [ -n "$kpid" ]; then
    until grep -q '"progress"' "$RES/out" 2>/dev/null || ! kill -0 "$kpid" 2>/dev/null; do sleep 0.01; done
    t0=$(date +%s.%N)
    done0=$(grep -m1 '"progress"' "$RES/out" 2>/dev/null | sed -n 's/.*"done":\([0-9]*\).*/\1/p')
    # Resetting the peak also resets what GNU time reports: keep the peak
    # so far (the unlock's) for the whole process's figure.
    pre=$(awk '/^VmHWM:/ {print $2}' "/proc/$kpid/status" 2>/dev/null || echo 0)
    if echo 5 2>/dev/null > "/proc/$kpid/clear_refs"; then
      while kill -0 "$kpid" 2>/dev/null; do
        while read -r k v _; do
          if [ "$k" = VmHWM: ] && [ "$v" -gt "$hwm" ]; then hwm=$v; fi
        done < "/proc/$kpid/status" 2>/dev/null || true
        sleep 0.02
      done
    fi
    t1=$(date +%s.%N)
  fi
  wait "$tpid" || { cat "$RES/out" >&2; exit 1; }
  awk -v pre="${pre:-0}" '{print $1, $2, $3, ($4 > pre ? $4 : pre)}' "$RES/t" >> "$RES/$key"
  echo "$hwm" >> "$RES/$key.rss"
  # The pipeline's own rate: from its first progress line (bytes done then)
  # to the process's exit, so after the unlock and including the sync and
  # the registration.
  [ -n "$done0" ] && echo "$t0 $t1 $done0" | awk -v b="$(stat -c %s "$src")" '{print (b - $3) / 1000000 / ($2 - $1)}' >> "$RES/$key.pipe"
  rm -f "$out" "$out.manifest.json"
}
cryptsetup_run() {
  local key=$1 src=$2
  cp "$src" "$src.copy"; sync
  timed "$key" sh -c "cryptsetup reencrypt -q --encrypt --type luks2 --reduce-device-size 32M --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file '$DISK/luks.pass' '$src.copy' && sync"
  rm -f "$src.copy"
}
# qemu-img's PBKDF calibration sometimes fails on a busy machine ("Unable
# to get accurate CPU usage") before any data is written; it is retried.
qemu_run() {
  local key=$1 src=$2 out=$2.luks
  timed "$key" sh -c "for i in 1 2 3 4 5; do rm -f '$out'; qemu-img convert -f raw -O luks --object secret,id=sec0,data=bench -o key-secret=sec0,iter-time=250 '$src' '$out' && sync && exit 0; done; exit 1"
  rm -f "$out"
}
dd_run() {
  local key=$1 src=$2 out=$2.dd
  timed "$key" sh -c "dd if='$src' of='$out' bs=4M oflag=direct status=none && sync"
  rm -f "$out"
}

for place in tmpfs disk; do
  dir=$TMPFS; [ $place = disk ] && dir=$DISK
  echo "bench: $place, fixed costs (64 MiB runs)"
  keyholder "$place.keyholder.fixed" "$dir" "$dir/small.raw"
  cryptsetup_run "$place.cryptsetup.fixed" "$dir/small.raw"
  qemu_run "$place.qemu-img.fixed" "$dir/small.raw"
  dd_run "$place.dd.fixed" "$dir/small.raw"
  for r in $(seq "$REPEAT"); do
    echo "bench: $place, round $r of $REPEAT"
    keyholder "$place.keyholder" "$dir" "$dir/src.raw"
    cryptsetup_run "$place.cryptsetup" "$dir/src.raw"
    dd_run "$place.dd" "$dir/src.raw"
    qemu_run "$place.qemu-img" "$dir/src.raw"
    if [ $place = tmpfs ]; then
      keyholder "$place.keyholder-qcow2" "$dir" "$dir/src.qcow2"
      keyholder "$place.keyholder-vmdk" "$dir" "$dir/src.vmdk"
      keyholder "$place.keyholder-gcp" "$dir" "$dir/src.raw" --output gcp
      keyholder "$place.keyholder-azure" "$dir" "$dir/src.raw" --output azure
    fi
  done
done

# report KEY FIXEDKEY: min-max over the rounds of MB/s and CPU-s/GiB, end to
# end and net of the fixed cost, and peak RSS.
# (a run faster than the fixed-cost run, which happens on a loaded machine,
# has no net rate: "-")
range() { sort -g | awk -v f="%.${P}f" 'NR == 1 {lo = $1} {hi = $1} END {if (NR == 0) {print "-"; exit} lo = sprintf(f, lo); hi = sprintf(f, hi); if (lo == hi) print lo; else print lo "-" hi}'; }
report() {
  local key=$1 fixed=$2
  read -r fw fu fs _ < "$RES/$fixed"
  local gib mb
  gib=$(echo "$bytes / 1073741824" | bc -l)
  mb=$(echo "$bytes / 1000000" | bc -l)
  local rate net cpu netcpu rss prss="-" pipe="-"
  rate=$(awk -v mb="$mb" '{print mb / $1}' "$RES/$key" | P=0 range)
  net=$(awk -v mb="$mb" -v s="$(echo "$small / 1000000" | bc -l)" -v f="$fw" '$1 > f {print (mb - s) / ($1 - f)}' "$RES/$key" | P=0 range)
  cpu=$(awk -v g="$gib" '{print ($2 + $3) / g}' "$RES/$key" | P=2 range)
  netcpu=$(awk -v g="$gib" -v s="$(echo "$small / 1073741824" | bc -l)" -v f="$(echo "$fu + $fs" | bc -l)" '{print ($2 + $3 - f) / (g - s)}' "$RES/$key" | P=2 range)
  rss=$(awk '{print $4 / 1024}' "$RES/$key" | P=0 range)
  [ -e "$RES/$key.rss" ] && prss=$(awk '{print $1 / 1024}' "$RES/$key.rss" | P=0 range)
  [ -s "$RES/$key.pipe" ] && pipe=$(P=0 range < "$RES/$key.pipe")
  printf "| %-16s | %9s | %9s | %9s | %9s | %9s | %7s | %7s |\n" "${key#*.}" "$rate" "$net" "$pipe" "$cpu" "$netcpu" "$rss" "$prss"
}
for place in tmpfs disk; do
  echo
  echo "$place ($SIZE, $REPEAT rounds; ranges min-max):"
  echo
  echo "| tool | MB/s | net MB/s | pipeline MB/s | CPU-s/GiB | net CPU-s/GiB | peak RSS MiB | pipeline RSS MiB |"
  echo "|---|---|---|---|---|---|---|---|"
  report "$place.keyholder" "$place.keyholder.fixed"
  report "$place.cryptsetup" "$place.cryptsetup.fixed"
  report "$place.qemu-img" "$place.qemu-img.fixed"
  report "$place.dd" "$place.dd.fixed"
  if [ $place = tmpfs ]; then
    for v in qcow2 vmdk gcp azure; do report "$place.keyholder-$v" "$place.keyholder.fixed"; done
  fi
done
echo
echo "keyholder's fixed cost (64 MiB run, subtracted in the net columns): $(cat "$RES/tmpfs.keyholder.fixed" | awk '{printf "%.2f s wall, %.2f CPU-s, peak RSS %d MiB", $1, $2 + $3, $4 / 1024}')"
