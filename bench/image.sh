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
# a 64 MiB input in the same place right before each of its big runs (one
# pair per round: the unlock's time varies with the machine's load as much
# as the data part does, so one fixed run for all rounds skewed every
# round it was not measured next to): keyholder's officer unlock
# (Argon2id, 256 MiB, about a second), qemu-img's PBKDF calibration.
#   keyholder's "pipeline RSS" is the peak after the unlock (the process's
# peak counter is reset once the pipeline reports progress), the memory
# the prepare pipeline holds; GNU time's peak includes the unlock's 256 MiB.
#
# Usage: bench/image.sh [SIZE]   (default 2G)
# Environment: REPEAT (2), PLACES ("tmpfs disk"), BENCH_TMPFS (/dev/shm), BENCH_DISK ($TMPDIR or
# /var/tmp: a folder on the disk to measure). Needs go, cryptsetup,
# qemu-img, GNU time, bc. Work files are removed at the end.
set -euo pipefail
SIZE=${1:-2G}
REPEAT=${REPEAT:-2}
PLACES=${PLACES:-tmpfs disk}
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
  sync # what earlier runs left (their outputs' removal) is not this run's to pay
  /usr/bin/time -f "%e %U %S %M" -o "$RES/t" "$@" > "$RES/out" 2>&1 || { cat "$RES/out" >&2; exit 1; }
  cat "$RES/t" >> "$RES/$key"
}
n=0
# The watcher below runs beside a CPU-bound pipeline on few cores, so it
# must not fork in its loops (a sleep and a grep 50-100 times a second
# took 5-10 % of the pipeline's rate): nap waits on a pipe nobody writes,
# and lines and /proc are read with builtins.
exec {napfd}<> <(:)
nap() { read -rt "$1" -u "$napfd" _ || true; }
# first_line FILE PATTERN sets line to FILE's first line matching the
# glob PATTERN, if it has one (a variable, not output: a command
# substitution forks).
first_line() {
  local l
  while IFS= read -r l; do
    if [[ $l == $2 ]]; then line=$l; return 0; fi
  done < "$1" 2>/dev/null
  return 1
}
# keyholder KEY DIR SRC [prepare flags]: one prepare, also sampling the
# pipeline's own peak RSS (after the unlock) into $RES/KEY.rss.
keyholder() {
  local key=$1 dir=$2 src=$3; shift 3
  n=$((n + 1))
  local out="$dir/out$n.img"
  sync
  /usr/bin/time -f "%e %U %S %M" -o "$RES/t" "$BIN" image prepare --data "$DISK/data" --passphrase-file "$DISK/pass" \
    --in "$src" --out "$out" --name "run$n" --force --json "$@" > "$RES/out" 2>&1 &
  local tpid=$! kpid="" hwm=0 pre=0 t0=0 t1=0 ts="" done0="" line=""
  until [ -n "$kpid" ] || ! kill -0 "$tpid" 2>/dev/null; do kpid=$(pgrep -P "$tpid" || true); [ -n "$kpid" ] || nap 0.01; done
  if [ -n "$kpid" ]; then
    until first_line "$RES/out" '*"progress"*' || ! kill -0 "$kpid" 2>/dev/null; do nap 0.01; done
    t0=$EPOCHREALTIME
    [[ $line =~ \"done\":([0-9]+) ]] && done0=${BASH_REMATCH[1]}
    # Resetting the peak also resets what GNU time reports: keep the peak
    # so far (the unlock's) for the whole process's figure.
    pre=$(awk '/^VmHWM:/ {print $2}' "/proc/$kpid/status" 2>/dev/null || echo 0)
    if echo 5 2>/dev/null > "/proc/$kpid/clear_refs"; then
      while kill -0 "$kpid" 2>/dev/null; do
        while read -r k v _; do
          if [ "$k" = VmHWM: ] && [ "$v" -gt "$hwm" ]; then hwm=$v; fi
        done < "/proc/$kpid/status" 2>/dev/null || true
        # The "sync" stage: every byte written, the disk makes it durable.
        [ -z "$ts" ] && first_line "$RES/out" '*"stage":"sync"*' && ts=$EPOCHREALTIME
        nap 0.02
      done
    fi
    t1=$EPOCHREALTIME
  fi
  wait "$tpid" || { cat "$RES/out" >&2; exit 1; }
  awk -v pre="${pre:-0}" '{print $1, $2, $3, ($4 > pre ? $4 : pre)}' "$RES/t" >> "$RES/$key"
  echo "$hwm" >> "$RES/$key.rss"
  # The pipeline's own rate: from its first progress line (bytes done then)
  # to the process's exit, so after the unlock and including the sync and
  # the registration.
  # (Nothing when the first progress line came at the end: a run shorter
  # than the progress interval has no rate to measure after it.)
  local b; b=$(stat -c %s "$src")
  [ -n "$done0" ] && [ "$done0" -lt "$b" ] || done0=""
  [ -n "$done0" ] && echo "$t0 $t1 $done0" | awk -v b="$b" '{print (b - $3) / 1000000 / ($2 - $1)}' >> "$RES/$key.pipe"
  # Its two phases: writing (first progress line to the sync stage, in
  # MB/s) and the final sync (sync stage to exit, in s/GiB).
  [ -n "$done0" ] && [ -n "$ts" ] && echo "$t0 $ts $t1 $done0" | awk -v b="$b" \
    '{print (b - $4) / 1000000 / ($2 - $1), ($3 - $2) / (b / 1073741824)}' >> "$RES/$key.phases"
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
# When all five attempts fail, qemu-img's row says so and the run goes on
# (it is a reference, not one of the goals' peers).
qemu_run() {
  local key=$1 src=$2 out=$2.luks
  sync
  if ! /usr/bin/time -f "%e %U %S %M" -o "$RES/t" sh -c "for i in 1 2 3 4 5; do rm -f '$out'; qemu-img convert -f raw -O luks --object secret,id=sec0,data=bench -o key-secret=sec0,iter-time=250 '$src' '$out' && sync && exit 0; done; exit 1" > "$RES/out" 2>&1; then
    echo "bench: qemu-img failed five times ($(tail -1 "$RES/out")); its row is left empty" >&2
    touch "$RES/$key.failed"
  else
    cat "$RES/t" >> "$RES/$key"
  fi
  rm -f "$out"
}
dd_run() {
  local key=$1 src=$2 out=$2.dd
  # The end of dd's writing goes to KEY.mid, to split it from the sync.
  timed "$key" sh -c "dd if='$src' of='$out' bs=4M oflag=direct status=none && date +%s.%N > '$RES/mid' && sync"
  local t1=$EPOCHREALTIME wall b
  wall=$(tail -n1 "$RES/$key" | cut -d' ' -f1)
  b=$(stat -c %s "$src")
  # The phases as keyholder's: dd's write rate and its sync in s/GiB (the
  # write phase timed from the wall time's start).
  awk -v t1="$t1" -v w="$wall" -v b="$b" '{s = t1 - $1; print b / 1000000 / (w - s), s / (b / 1073741824)}' "$RES/mid" >> "$RES/$key.phases"
  rm -f "$out"
}

for place in $PLACES; do
  dir=$TMPFS; [ $place = disk ] && dir=$DISK
  for r in $(seq "$REPEAT"); do
    echo "bench: $place, round $r of $REPEAT"
    keyholder "$place.keyholder.fixed" "$dir" "$dir/small.raw"
    keyholder "$place.keyholder" "$dir" "$dir/src.raw"
    cryptsetup_run "$place.cryptsetup.fixed" "$dir/small.raw"
    cryptsetup_run "$place.cryptsetup" "$dir/src.raw"
    dd_run "$place.dd.fixed" "$dir/small.raw"
    dd_run "$place.dd" "$dir/src.raw"
    qemu_run "$place.qemu-img.fixed" "$dir/small.raw"
    qemu_run "$place.qemu-img" "$dir/src.raw"
    if [ $place = tmpfs ]; then
      for f in qcow2 vmdk gcp azure; do
        keyholder "$place.keyholder-$f.fixed" "$dir" "$dir/small.raw"
        case $f in
          qcow2|vmdk) keyholder "$place.keyholder-$f" "$dir" "$dir/src.$f" ;;
          *) keyholder "$place.keyholder-$f" "$dir" "$dir/src.raw" --output "$f" ;;
        esac
      done
    fi
  done
done

# report KEY FIXEDKEY LABEL: one row of the README's table: min-max over
# the rounds of net MB/s, keyholder's pipeline MB/s, net CPU-s/GiB, and
# peak RSS (process / pipeline for keyholder).
# (a run faster than the fixed-cost run, which happens on a loaded machine,
# has no net rate: "-")
range() { sort -g | awk -v f="%.${P}f" 'NR == 1 {lo = $1} {hi = $1} END {if (NR == 0) {print "-"; exit} lo = sprintf(f, lo); hi = sprintf(f, hi); if (lo == hi) print lo; else print lo "-" hi}'; }
commas() { sed -E ':a;s/(^|[^0-9.])([0-9]+)([0-9]{3})/\1\2,\3/;ta'; }
gib=$(echo "$bytes / 1073741824" | bc -l)
mb=$(echo "$bytes / 1000000" | bc -l)
# net KEY FIXEDKEY: each round's net MB/s, one a line: the round's big
# run less the fixed run made right before it (line i of each file).
net() {
  paste -d' ' "$RES/$1" "$RES/$2" | awk -v mb="$mb" -v s="$(echo "$small / 1000000" | bc -l)" '$1 > $5 {print (mb - s) / ($1 - $5)}'
}
# netcpu KEY FIXEDKEY: each round's net CPU-s/GiB.
netcpu() {
  paste -d' ' "$RES/$1" "$RES/$2" | awk -v g="$gib" -v s="$(echo "$small / 1073741824" | bc -l)" '{print ($2 + $3 - $6 - $7) / (g - s)}'
}
report() {
  local key=$1 fixed=$2 label=$3
  local rate cpu rss pipe="-"
  rate=$(net "$key" "$fixed" | P=0 range | commas)
  cpu=$(netcpu "$key" "$fixed" | P=2 range)
  rss="$(awk '{print $4 / 1024}' "$RES/$key" | P=0 range)"
  [ -s "$RES/$key.rss" ] && rss="$rss / $(awk '$1 > 0 {print $1 / 1024}' "$RES/$key.rss" | P=0 range)"
  [ -s "$RES/$key.pipe" ] && pipe=$(P=0 range < "$RES/$key.pipe" | commas)
  printf "| %s | %s | %s | %s | %s MiB |\n" "$label" "$rate" "$pipe" "$cpu" "$rss"
}
# best KEY FIXEDKEY max|min: the best round's net MB/s (max) or CPU (min).
best() {
  if [ "$3" = max ]; then net "$1" "$2" | sort -g | tail -1; else netcpu "$1" "$2" | sort -g | head -1; fi
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a == "" || b == "" || b == 0) print "-"; else printf "%.2f", a / b}'; }
echo
echo "bench/image.sh $SIZE, $REPEAT rounds, $(date -u +%Y-%m-%d), load average at the end $(cut -d' ' -f1-3 /proc/loadavg); ranges min-max"
for place in $PLACES; do
  echo
  echo "| on $place | net MB/s | keyholder pipeline MB/s | net CPU-s/GiB | peak RSS, process / pipeline |"
  echo "|---|---|---|---|---|"
  report "$place.keyholder" "$place.keyholder.fixed" "keyholder, raw → raw"
  if [ $place = tmpfs ]; then
    report "$place.keyholder-qcow2" "$place.keyholder-qcow2.fixed" "keyholder, qcow2 source"
    report "$place.keyholder-vmdk" "$place.keyholder-vmdk.fixed" "keyholder, VMDK source"
    report "$place.keyholder-gcp" "$place.keyholder-gcp.fixed" "keyholder, gcp output"
    report "$place.keyholder-azure" "$place.keyholder-azure.fixed" "keyholder, azure output"
  fi
  report "$place.cryptsetup" "$place.cryptsetup.fixed" "cryptsetup reencrypt --encrypt"
  if [ -e "$RES/$place.qemu-img.failed" ] || [ -e "$RES/$place.qemu-img.fixed.failed" ]; then
    echo "| qemu-img convert -O luks | (its PBKDF calibration failed: \"Unable to get accurate CPU usage\") | - | - | - |"
  else
    report "$place.qemu-img" "$place.qemu-img.fixed" "qemu-img convert -O luks"
  fi
  report "$place.dd" "$place.dd.fixed" "dd oflag=direct (copy only)"
  if [ $place = disk ]; then
    # On a disk the durable output costs twice: writing, then the final
    # sync, whose length depends on how much the disk's cache still holds.
    echo
    echo "| on disk, by phase | writing MB/s | final sync s/GiB |"
    echo "|---|---|---|"
    for t in keyholder dd; do
      [ -s "$RES/disk.$t.phases" ] || continue
      echo "| $t | $(awk '{print $1}' "$RES/disk.$t.phases" | P=0 range | commas) | $(awk '{print $2}' "$RES/disk.$t.phases" | P=2 range) |"
    done
    echo
    echo "disk, keyholder/dd net MB/s round by round (each pair run back to back): $(paste -d' ' <(net disk.keyholder disk.keyholder.fixed) <(net disk.dd disk.dd.fixed) | awk '{printf "%s%.2f", (NR > 1 ? ", " : ""), $1 / $2}')"
  fi
done
echo
# The goals and the limit need both places.
[ "$PLACES" = "tmpfs disk" ] || exit 0
echo "keyholder's fixed cost (64 MiB runs on tmpfs, subtracted in the net columns): $(awk '{print $1}' "$RES/tmpfs.keyholder.fixed" | P=2 range) s wall," \
  "$(awk '{print $2 + $3}' "$RES/tmpfs.keyholder.fixed" | P=2 range) CPU-s, peak RSS $(awk '{print $4 / 1024}' "$RES/tmpfs.keyholder.fixed" | P=0 range) MiB"
# The issue's goals, best round against best round.
kt=$(best tmpfs.keyholder tmpfs.keyholder.fixed max)
ct=$(best tmpfs.cryptsetup tmpfs.cryptsetup.fixed max)
kc=$(best tmpfs.keyholder tmpfs.keyholder.fixed min)
cc=$(best tmpfs.cryptsetup tmpfs.cryptsetup.fixed min)
kd=$(best disk.keyholder disk.keyholder.fixed max)
dd=$(best disk.dd disk.dd.fixed max)
prss=$(cat "$RES"/*.rss | sort -g | tail -1)
echo "goals (best rounds): tmpfs MB/s keyholder/cryptsetup $(ratio "$kt" "$ct") (≥ 1.5);" \
  "CPU-s/GiB keyholder/cryptsetup $(ratio "$kc" "$cc") (≤ 1);" \
  "pipeline peak RSS $(awk -v k="$prss" 'BEGIN {printf "%d", k / 1024}') MiB (≤ 256);" \
  "disk MB/s keyholder/dd $(ratio "$kd" "$dd") (≥ 0.9);" \
  "vs raw → raw on tmpfs: qcow2 $(ratio "$(best tmpfs.keyholder-qcow2 tmpfs.keyholder-qcow2.fixed max)" "$kt")," \
  "VMDK $(ratio "$(best tmpfs.keyholder-vmdk tmpfs.keyholder-vmdk.fixed max)" "$kt")," \
  "gcp $(ratio "$(best tmpfs.keyholder-gcp tmpfs.keyholder-gcp.fixed max)" "$kt")," \
  "azure $(ratio "$(best tmpfs.keyholder-azure tmpfs.keyholder-azure.fixed max)" "$kt") (≥ 0.8)"

# The limit on tmpfs: both manifest hashes are SHA-256 chains, the one
# step that cannot be split across cores. The benchmark measures the
# two-stream kernel alone (both chains on one core) and the pipeline alone
# (no unlock, store or sync), with the share of it the chain was busy.
echo
echo "bench: the hash chain's limit (go test -bench, tmpfs, $SIZE)"
TMPDIR=$TMPFS KEYHOLDER_BENCH_SIZE=$((bytes >> 20)) go test -run XXX -bench 'PrepareCPU/raw$|PipelineParts/hash2$' -benchtime 3x ./backend/diskimage > "$RES/gobench" 2>&1 || { cat "$RES/gobench" >&2; exit 1; }
limit=$(awk '/PipelineParts\/hash2/ {for (i = 1; i < NF; i++) if ($(i + 1) == "MB/s") print $i}' "$RES/gobench")
pipe=$(awk '/PrepareCPU\/raw/ {for (i = 1; i < NF; i++) if ($(i + 1) == "run-MB/s") print $i}' "$RES/gobench")
busy=$(awk '/PrepareCPU\/raw/ {for (i = 1; i < NF; i++) if ($(i + 1) == "hash-busy-%") print $i}' "$RES/gobench")
echo "limit: two-stream SHA-256 kernel (source and output chains, one core) $(printf %.0f "$limit" | commas) MB/s;" \
  "pipeline alone $(printf %.0f "$pipe" | commas) MB/s = $(ratio "$pipe" "$limit") of it, chain busy $(printf %.0f "$busy") %;" \
  "keyholder net on tmpfs (best round) $(printf %.0f "$kt" | commas) MB/s = $(ratio "$kt" "$limit") of it"
# On the disk the chain's time and the final sync add up (the sync can
# only start once the last chunk is written, and this VM's disk takes no
# writes while it flushes): keyholder's limit there is both in a row, with
# the sync as long as keyholder's own syncs took in this run (median).
if [ -s "$RES/disk.keyholder.phases" ]; then
  sync_gib=$(awk '{print $2}' "$RES/disk.keyholder.phases" | sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}')
  dlimit=$(awk -v l="$limit" -v s="$sync_gib" 'BEGIN {print 1 / (1 / l + s / 1073.741824)}')
  echo "limit on the disk: the chain ($(printf %.0f "$limit" | commas) MB/s) then the final sync ($(printf %.2f "$sync_gib") s/GiB) = $(printf %.0f "$dlimit" | commas) MB/s;" \
    "keyholder net on the disk (best round) $(printf %.0f "$kd" | commas) MB/s = $(ratio "$kd" "$dlimit") of it; dd's best round $(printf %.0f "$dd" | commas) MB/s"
fi
