#!/usr/bin/env bash
# Boots a Keyholder-prepared Debian guest under QEMU and checks, from the
# outside, that its initramfs gets the root volume's key from the console.
#
#   1. builds a small Debian bookworm guest with mmdebstrap (cloud kernel,
#      systemd, cryptsetup-initramfs, the simulate build of keyholder-agent,
#      dist/guest's hook, script and units) and a GPT disk from it without
#      loop devices or mounts (mkfs.ext4 -d, mkfs.vfat + mcopy, sgdisk),
#      booted by systemd-boot from the ESP; cached (see CACHE below);
#   2. converts it to qcow2 and prepares it with `keyholder image prepare
#      --mode os --output raw` against a fresh console (`keyholder serve
#      --dev-trust-simulated-amd-root`);
#   3. boots it with Debian's OVMF, user-mode networking with restrict=on and
#      one guestfwd rule to the release API on the host's loopback;
#   4. first boot waits for an officer (approved with `keyholder requests
#      approve`), reaches multi-user and heartbeats `verified`; a reboot is a
#      routine boot with no request; after the volume is revoked the boot
#      stops in the initramfs and nothing opens; a data disk prepared with
#      --mode data, attached to the same VM, is opened by the systemd unit
#      after boot (its first boot on that VM waits for an officer too, later
#      boots are routine);
#   5. checks --output gcp (tar.gz, one disk.raw of whole GiB), azure (fixed
#      VHD of whole MiB; booted too), aws (raw, the size of --output raw, its
#      GPT and LUKS2 root partition intact) and vmdk (streamOptimized) with
#      tar, qemu-img, sgdisk and cryptsetup.
#
# Serial consoles land in artifacts/boot-*.log. Needs root (mmdebstrap and
# chroot) and the packages in .ci/apt-packages.txt. KVM is used where
# /dev/kvm exists, QEMU's TCG otherwise. The SEV-SNP chip is the agent's
# simulated one: every release says SIMULATED.
#
# Environment: KEYHOLDER_BOOT_CACHE (default ~/.cache/keyholder-boot-test),
# BOOT_TIMEOUT (seconds per wait, default 900).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
ART=$ROOT/artifacts
mkdir -p "$ART"
CACHE=${KEYHOLDER_BOOT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/keyholder-boot-test}
BOOT_TIMEOUT=${BOOT_TIMEOUT:-900}
SUITE=bookworm
# The guest's packages (no recommends). Changing this list rebuilds the base.
PACKAGES="linux-image-cloud-amd64,systemd,systemd-sysv,udev,cryptsetup-initramfs,initramfs-tools,busybox,e2fsprogs"
GUEST_FWD_IP=10.0.2.100 # the release API as the guest sees it (slirp guestfwd)
GUEST_FWD_PORT=8443
OFFICER=admin
PASS='boot test officer passphrase, long enough'

T0=$SECONDS
PHASE="" PHASE_T0=$SECONDS
TIMINGS=()
phase() {
  end_phase
  PHASE=$1 PHASE_T0=$SECONDS
  echo "--- boot-test: $PHASE"
}
end_phase() {
  if [ -n "$PHASE" ]; then
    TIMINGS+=("$(printf '%5ds  %s' $((SECONDS - PHASE_T0)) "$PHASE")")
    echo "    ($((SECONDS - PHASE_T0))s)"
  fi
  PHASE=""
}
print_timings() {
  end_phase
  echo "boot-test timings:"
  printf '  %s\n' "${TIMINGS[@]}"
  echo "  $((SECONDS - T0))s total"
}
fail() {
  echo "boot-test: FAIL: $*" >&2
  exit 1
}

[ "$(id -u)" -eq 0 ] || fail "needs root (mmdebstrap's root mode and chroot to regenerate the guest's initramfs)"
for t in mmdebstrap qemu-system-x86_64 qemu-img mkfs.ext4 mkfs.vfat mcopy mmd sgdisk socat curl jq tar gzip; do
  command -v "$t" >/dev/null || fail "$t is missing (make deps installs .ci/apt-packages.txt)"
done
OVMF_CODE=/usr/share/OVMF/OVMF_CODE_4M.fd
OVMF_VARS=/usr/share/OVMF/OVMF_VARS_4M.fd
SDBOOT=/usr/lib/systemd/boot/efi/systemd-bootx64.efi
for f in $OVMF_CODE $OVMF_VARS $SDBOOT; do [ -f "$f" ] || fail "$f is missing (packages ovmf, systemd-boot-efi)"; done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/keyholder-boot.XXXXXX")
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'print_timings' ERR

# ---------------------------------------------------------------- binaries
phase "build keyholder and the simulate build of keyholder-agent"
[ -f frontend/dist/index.html ] || make -s frontend/dist/index.html # the console embeds it
go build -o "$WORK/keyholder" .
CGO_ENABLED=0 go build -tags simulate -trimpath -o "$WORK/keyholder-agent" ./cmd/keyholder-agent
go test -count=1 -tags simulate ./cmd/keyholder-agent >/dev/null
KH=$WORK/keyholder

# ---------------------------------------------------------------- the guest
mkdir -p "$CACHE"
hash_of() { sha256sum | cut -c1-16; }
BASE_KEY=$(printf '%s\n' "$SUITE" "$PACKAGES" "mmdebstrap --variant=apt --no-recommends v1" | hash_of)
BASE=$CACHE/base-$BASE_KEY.tar
# The disk depends on the base, the agent, dist/guest and how this script
# assembles it (the part of this file above the console section).
DISK_KEY=$( { echo "$BASE_KEY"; sha256sum "$WORK/keyholder-agent" | cut -d' ' -f1;
  find dist/guest -type f ! -name '*.md' | sort | xargs cat; sed -n '/^# BEGIN GUEST/,/^# END GUEST/p' "$0"; } | hash_of)
GUEST=$CACHE/guest-$DISK_KEY
phase "base tree (mmdebstrap $SUITE, cached as $(basename "$BASE"))"
if [ ! -f "$BASE" ]; then
  echo "    building: mmdebstrap downloads about 100 MB from the configured Debian mirror"
  nice -n 10 mmdebstrap --quiet --variant=apt --aptopt='APT::Install-Recommends "false"' \
    --include="$PACKAGES" "$SUITE" "$BASE.tmp" >"$WORK/mmdebstrap.log" 2>&1 ||
    { tail -30 "$WORK/mmdebstrap.log"; fail "mmdebstrap"; }
  mv "$BASE.tmp" "$BASE"
fi

# BEGIN GUEST
build_guest() {
  local g=$1 tree=$WORK/tree
  mkdir -p "$tree" "$g"
  tar -C "$tree" -xf "$BASE"
  install -m 0755 "$WORK/keyholder-agent" "$tree/usr/sbin/keyholder-agent"
  install -m 0755 dist/guest/initramfs-tools/hooks/keyholder "$tree/etc/initramfs-tools/hooks/keyholder"
  install -m 0755 dist/guest/initramfs-tools/scripts/local-top/keyholder "$tree/etc/initramfs-tools/scripts/local-top/keyholder"
  install -m 0644 dist/guest/systemd/keyholder-unlock@.service dist/guest/systemd/keyholder-heartbeat@.service "$tree/etc/systemd/system/"
  # The agent's configuration: the root device, and --simulate because this
  # console trusts the simulated AMD root (development only).
  cat >"$tree/etc/keyholder-agent.conf" <<'EOF'
KEYHOLDER_DEVICE=/dev/disk/by-partlabel/root
KEYHOLDER_NAME=root
KEYHOLDER_AGENT_ARGS="--simulate"
EOF
  # The data disk (QEMU -device ...,serial=khdata) starts its units when it
  # appears, so VMs without it do not wait for it.
  mkdir -p "$tree/etc/udev/rules.d"
  cat >"$tree/etc/udev/rules.d/80-keyholder-data.rules" <<'EOF'
ACTION=="add", SUBSYSTEM=="block", ENV{DEVTYPE}=="disk", ENV{ID_SERIAL}=="khdata", ENV{SYSTEMD_WANTS}+="keyholder-unlock@dev-disk-by\x2did-virtio\x2dkhdata.service keyholder-heartbeat@dev-disk-by\x2did-virtio\x2dkhdata.service"
EOF
  echo keyholder-guest >"$tree/etc/hostname"
  # A fixed machine ID keeps systemd's first-boot setup away; the agent's VM
  # ID is the SMBIOS system UUID that QEMU's -uuid sets per VM.
  echo 5e1f0c0ab0074e5f9d3c2a1b0c9d8e7f >"$tree/etc/machine-id"
  : >"$tree/etc/fstab"
  mkdir -p "$tree/etc/systemd/network" "$tree/etc/systemd/system/multi-user.target.wants"
  printf '[Match]\nType=ether\n\n[Network]\nDHCP=ipv4\n' >"$tree/etc/systemd/network/80-dhcp.network"
  # Test only: say on the serial console when multi-user is reached, which
  # Keyholder mappings exist, and what the data volume holds.
  cat >"$tree/etc/systemd/system/boot-test-report.service" <<'EOF'
[Unit]
Description=boot test: report the state on the serial console
After=multi-user.target keyholder-unlock@dev-disk-by\x2did-virtio\x2dkhdata.service
[Service]
Type=oneshot
StandardOutput=tty
TTYPath=/dev/ttyS0
ExecStart=/bin/sh -c 'systemctl is-active multi-user.target | sed "s/^/BOOT-TEST multi-user.target: /"; systemctl --failed --no-legend --plain | sed "s/^/BOOT-TEST failed unit: /"; for m in /dev/mapper/*; do echo "BOOT-TEST mapping: $$m"; done; if [ -e /dev/mapper/keyholder-virtio-khdata ]; then mkdir -p /mnt/data && mount -o ro /dev/mapper/keyholder-virtio-khdata /mnt/data && echo "BOOT-TEST data volume says: $$(cat /mnt/data/hello.txt)"; fi; echo "BOOT-TEST report done"'
[Install]
WantedBy=multi-user.target
EOF
  chroot "$tree" systemctl enable --quiet systemd-networkd.service boot-test-report.service \
    'keyholder-heartbeat@dev-disk-by\x2dpartlabel-root.service'
  # No login prompt on the serial console: agetty's hangup of ttyS0 would cut
  # the report short.
  chroot "$tree" systemctl mask --quiet serial-getty@ttyS0.service getty@tty1.service
  chroot "$tree" systemctl mask --quiet apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer 2>/dev/null || true
  # Regenerate the initramfs inside the tree, with the hook.
  chroot "$tree" update-initramfs -u -k all >"$WORK/update-initramfs.log" 2>&1 ||
    { cat "$WORK/update-initramfs.log"; fail "update-initramfs in the guest tree"; }
  grep -i 'warn\|error' "$WORK/update-initramfs.log" | sed 's/^/    update-initramfs: /' || true
  local kver
  kver=$(basename "$(ls "$tree"/boot/vmlinuz-* | head -1)" | sed 's/^vmlinuz-//')
  cp "$tree/boot/vmlinuz-$kver" "$g/vmlinuz"
  cp "$tree/boot/initrd.img-$kver" "$g/initrd.img"
  # Root file system straight from the directory (no loop device, no mount).
  local used root_mib
  used=$(du -sm "$tree" | cut -f1)
  root_mib=$(( (used * 13 / 10 + 64 + 3) / 4 * 4 ))
  mkfs.ext4 -q -F -L root -d "$tree" "$WORK/root.img" "${root_mib}M" >/dev/null
  # ESP: systemd-boot, the kernel, the initramfs, one loader entry.
  local esp_mib=96
  mkfs.vfat -F 32 -n ESP -C "$WORK/esp.img" $((esp_mib * 1024)) >/dev/null
  export MTOOLS_SKIP_CHECK=1
  mmd -i "$WORK/esp.img" ::/EFI ::/EFI/BOOT ::/loader ::/loader/entries
  mcopy -i "$WORK/esp.img" "$SDBOOT" ::/EFI/BOOT/BOOTX64.EFI
  mcopy -i "$WORK/esp.img" "$g/vmlinuz" ::/vmlinuz
  mcopy -i "$WORK/esp.img" "$g/initrd.img" ::/initrd.img
  printf 'default keyholder.conf\ntimeout 0\nconsole-mode keep\n' >"$WORK/loader.conf"
  printf 'title Debian (Keyholder boot test)\nlinux /vmlinuz\ninitrd /initrd.img\noptions %s\n' \
    "root=/dev/mapper/root rw console=ttyS0 quiet ip=dhcp no_timer_check" >"$WORK/keyholder.conf"
  mcopy -i "$WORK/esp.img" "$WORK/loader.conf" ::/loader/loader.conf
  mcopy -i "$WORK/esp.img" "$WORK/keyholder.conf" ::/loader/entries/keyholder.conf
  # GPT: ESP at 1 MiB, then the root partition (type "Linux x86-64 root").
  local total=$((1 + esp_mib + root_mib + 1))
  truncate -s "${total}M" "$WORK/disk.raw"
  sgdisk -n 1:2048:+${esp_mib}M -t 1:ef00 -c 1:esp -n 2:0:+${root_mib}M -t 2:8304 -c 2:root "$WORK/disk.raw" >/dev/null
  dd if="$WORK/esp.img" of="$WORK/disk.raw" bs=1M seek=1 conv=notrunc,sparse status=none
  dd if="$WORK/root.img" of="$WORK/disk.raw" bs=1M seek=$((1 + esp_mib)) conv=notrunc,sparse status=none
  qemu-img convert -O qcow2 "$WORK/disk.raw" "$g/guest.qcow2.tmp"
  mv "$g/guest.qcow2.tmp" "$g/guest.qcow2"
  rm -rf "$tree" "$WORK/disk.raw" "$WORK/root.img" "$WORK/esp.img"
}
# END GUEST

phase "guest disk (initramfs, ext4, ESP, GPT, qcow2; cached as $(basename "$GUEST"))"
if [ ! -f "$GUEST/guest.qcow2" ]; then
  rm -rf "$GUEST"
  build_guest "$GUEST"
  # Keep the newest few guests only.
  ls -dt "$CACHE"/guest-* 2>/dev/null | tail -n +4 | xargs -r rm -rf
fi
qemu-img info "$GUEST/guest.qcow2" | grep -q 'file format: qcow2' || fail "the cached guest is not qcow2"

# ---------------------------------------------------------------- console
phase "console (init, serve with the simulated AMD root, log in)"
DATA=$WORK/console
printf '%s\n' "$PASS" >"$WORK/pass"
$KH init --data "$DATA" --officer "$OFFICER" --passphrase-file "$WORK/pass" >/dev/null
$KH serve --data "$DATA" --listen 127.0.0.1:0 --release-listen 127.0.0.1:0 --dev-trust-simulated-amd-root \
  >"$WORK/serve.out" 2>"$ART/boot-console.log" &
PIDS+=($!)
for _ in $(seq 1 60); do
  grep -q 'Release API for guests' "$WORK/serve.out" && grep -q 'Keyholder console:' "$WORK/serve.out" && break
  sleep 0.5
done
CONSOLE_URL=$(sed -n 's/^Keyholder console: \(http[^ ]*\)\/$/\1/p' "$WORK/serve.out")
RELEASE_PORT=$(sed -n 's/^Release API for guests: https:\/\/127\.0\.0\.1:\([0-9]*\)\/.*/\1/p' "$WORK/serve.out")
PIN=$(sed -n 's/.*SPKI pin, SHA-256: \([^)]*\)).*/\1/p' "$WORK/serve.out")
[ -n "$CONSOLE_URL" ] && [ -n "$RELEASE_PORT" ] && [ -n "$PIN" ] || { cat "$WORK/serve.out"; fail "the console did not start"; }
api() { # api Service/Method JSON-ARGS
  curl -sS --fail-with-body -b "$WORK/cookies" -c "$WORK/cookies" -H 'X-Keyholder-Client: 1' \
    -H 'Content-Type: application/json' -d "$2" "$CONSOLE_URL/api/call/$1"
}
api Session/Login "$(jq -nc --arg o "$OFFICER" --arg p "$PASS" '[$o,$p]')" >/dev/null || fail "officer login"
khj() { $KH "$@" --data "$DATA"; }
officer() { $KH "$@" --data "$DATA" --officer "$OFFICER" --passphrase-file "$WORK/pass"; }

# ---------------------------------------------------------------- prepare
RELEASE_URL=https://$GUEST_FWD_IP:$GUEST_FWD_PORT
prepare() { # prepare SRC DST MODE OUTPUT -> prints the volume ID
  officer image prepare --in "$1" --out "$2" --mode "$3" --output "$4" --release-url "$RELEASE_URL" --spki-pin "$PIN" \
    --name "$(basename "$2")" --json >"$WORK/prepare.out" || { cat "$WORK/prepare.out"; fail "image prepare $3 $4"; }
  jq -r 'select(.result) | .result.Manifest.volume_id // .result.manifest.volume_id' "$WORK/prepare.out"
}
phase "prepare the qcow2 guest: --mode os --output raw"
OS_VOL=$(prepare "$GUEST/guest.qcow2" "$WORK/os.raw" os raw)
[ -n "$OS_VOL" ] && [ "$OS_VOL" != null ] || { cat "$WORK/prepare.out"; fail "no volume ID in the prepare output"; }
echo "    volume $OS_VOL"


# ---------------------------------------------------------------- QEMU
# Under TCG on a busy host the guest's vCPU starves, and Linux's IO-APIC
# timer check panics ("IO-APIC + timer doesn't work!"): the kernel command
# lines carry no_timer_check, as cloud images do.
if [ -w /dev/kvm ]; then ACCEL=(-accel kvm -cpu host); else ACCEL=(-accel tcg -cpu max); fi
echo "    QEMU accelerator: ${ACCEL[1]%%,*}"
declare -A VMPID VMFROM
# boot NAME UUID DISK FORMAT [QEMU ARGS...]: start a VM; its serial console
# goes to artifacts/boot-NAME.log. The only way out of its network is the
# guestfwd rule to the release API.
boot() {
  local name=$1 uuid=$2 disk=$3 fmt=$4
  shift 4
  cp "$OVMF_VARS" "$WORK/vars-$name.fd"
  rm -f "$ART/boot-$name.log" "$WORK/qmp-$name.sock"
  qemu-system-x86_64 -name "keyholder-$name" -machine q35 "${ACCEL[@]}" -m 1024 -smp 1 -uuid "$uuid" \
    -drive if=pflash,format=raw,readonly=on,file="$OVMF_CODE" -drive if=pflash,format=raw,file="$WORK/vars-$name.fd" \
    -drive file="$disk",format="$fmt",if=virtio,cache=unsafe \
    -netdev "user,id=n0,restrict=on,guestfwd=tcp:$GUEST_FWD_IP:$GUEST_FWD_PORT-cmd:socat - TCP:127.0.0.1:$RELEASE_PORT" \
    -device virtio-net-pci,netdev=n0 -device virtio-rng-pci \
    -display none -vga none -monitor none -serial "file:$ART/boot-$name.log" \
    -qmp "unix:$WORK/qmp-$name.sock,server=on,wait=off" "$@" 2>"$WORK/qemu-$name.err" &
  VMPID[$name]=$!
  VMFROM[$name]=0
  PIDS+=("$!")
  echo "    $name: QEMU started (-uuid $uuid)"
}
qmp() { # qmp NAME JSON...: send QMP commands to a running VM
  local name=$1
  shift
  { echo '{"execute":"qmp_capabilities"}'; printf '%s\n' "$@"; sleep 1; } |
    socat - "UNIX-CONNECT:$WORK/qmp-$name.sock" >/dev/null
}
alive() { kill -0 "${VMPID[$1]}" 2>/dev/null; }
# serial NAME: the VM's serial console since the last reboot we asked for.
serial() { tail -c +$((VMFROM[$1] + 1)) "$ART/boot-$1.log" 2>/dev/null | tr -d '\r'; }
t_rel() { echo "+$((SECONDS - PHASE_T0))s"; }
wait_serial() { # wait_serial NAME EXTENDED-REGEX WHAT
  local deadline=$((SECONDS + BOOT_TIMEOUT))
  until serial "$1" | grep -Eq -- "$2"; do
    alive "$1" || { cat "$WORK/qemu-$1.err" >&2; fail "$1: QEMU exited before $3 (see artifacts/boot-$1.log)"; }
    [ $SECONDS -lt $deadline ] || fail "$1: no $3 within ${BOOT_TIMEOUT}s (see artifacts/boot-$1.log)"
    sleep 1
  done
  echo "    $1: $3 ($(t_rel))"
}
stop_vm() {
  if alive "$1"; then qmp "$1" '{"execute":"quit"}' || kill "${VMPID[$1]}" 2>/dev/null || true; fi
  wait "${VMPID[$1]}" 2>/dev/null || true
}
reboot_vm() { # ctrl-alt-del: systemd reboots the guest cleanly, in the same VM
  VMFROM[$1]=$(stat -c %s "$ART/boot-$1.log")
  qmp "$1" '{"execute":"send-key","arguments":{"keys":[{"type":"qcode","data":"ctrl"},{"type":"qcode","data":"alt"},{"type":"qcode","data":"delete"}]}}'
}
# pending_request NAME VMID CLASS: wait for the request the VM's agent made,
# print its ID.
pending_request() {
  local deadline=$((SECONDS + BOOT_TIMEOUT)) id
  while :; do
    id=$(khj requests list --json | jq -r --arg vm "$2" --arg c "$3" \
      '(.release_requests // .)[]? | select(.vm_id == $vm and .class == $c and .status == "pending") | .id' | head -1)
    [ -n "$id" ] && { echo "$id"; return; }
    alive "$1" || fail "$1: QEMU exited while no $3 request of $2 was pending (see artifacts/boot-$1.log)"
    [ $SECONDS -lt $deadline ] || fail "$1: no pending $3 request of $2 within ${BOOT_TIMEOUT}s (see artifacts/boot-$1.log)"
    sleep 2
  done
}
# pending_volume_request NAME VMID VOLUME: wait for the VM's pending
# first_boot request for VOLUME, print its ID.
pending_volume_request() {
  local deadline=$((SECONDS + BOOT_TIMEOUT)) id
  while :; do
    id=$(khj requests list --json | jq -r --arg vm "$2" --arg v "$3" \
      '(.release_requests // .)[]? | select(.vm_id == $vm and .volume_id == $v and .class == "first_boot" and .status == "pending") | .id' | head -1)
    [ -n "$id" ] && { echo "$id"; return; }
    alive "$1" || fail "$1: QEMU exited while no request of $2 for volume $3 was pending (see artifacts/boot-$1.log)"
    [ $SECONDS -lt $deadline ] || fail "$1: no pending first_boot request of $2 for volume $3 within ${BOOT_TIMEOUT}s (see artifacts/boot-$1.log)"
    sleep 2
  done
}
request_count() { khj requests list --status all --json | jq '(.release_requests // .) | length'; }
wait_fleet() { # wait_fleet NAME VMID STATUS
  local deadline=$((SECONDS + BOOT_TIMEOUT)) st
  while :; do
    st=$(khj fleet --json | jq -r --arg vm "$2" '.[]? | select(.id == $vm) | .status')
    [ "$st" = "$3" ] && { echo "    $1: the fleet shows $2 $st ($(t_rel))"; return; }
    [ $SECONDS -lt $deadline ] || fail "$1: the fleet shows $2 '${st:-absent}', not $3, after ${BOOT_TIMEOUT}s"
    sleep 2
  done
}
approve_first_boot() { # approve_first_boot NAME VMID
  local id
  id=$(pending_request "$1" "$2" first_boot)
  echo "    $1: pending first_boot request $id of $2 ($(t_rel))"
  wait_serial "$1" 'Waiting for an officer to approve this first boot' "the agent says it waits for an officer"
  officer requests approve "$id" --note "boot test" | sed "s/^/    $1: /"
}

# ---------------------------------------------------------------- more images
phase "prepare a data disk (--mode data) and the Azure VHD (--output azure)"
mkdir -p "$WORK/datatree"
echo "hello from the Keyholder boot test" >"$WORK/datatree/hello.txt"
mkfs.ext4 -q -F -b 4096 -L data -d "$WORK/datatree" "$WORK/data-src.raw" 32M >/dev/null
DATA_VOL=$(prepare "$WORK/data-src.raw" "$WORK/data.raw" data raw)
echo "    data volume $DATA_VOL"
AZ_VOL=$(prepare "$GUEST/guest.qcow2" "$WORK/os.vhd" os azure)
AZ_SIZE=$(jq -r 'select(.result) | .result.Manifest.output.disk_size // .result.manifest.output.disk_size' "$WORK/prepare.out")
# QEMU's format probe finds only VHDs with a footer copy at the start
# (dynamic ones); a fixed VHD, which Azure wants, is named with -f vpc.
info=$(qemu-img info -f vpc --output=json "$WORK/os.vhd")
fmt=$(jq -r .format <<<"$info")
vsize=$(jq -r '."virtual-size"' <<<"$info")
fsize=$(stat -c %s "$WORK/os.vhd")
echo "    azure: qemu-img reads $fmt, virtual size $vsize, file $fsize bytes (manifest: disk $AZ_SIZE)"
[ "$fmt" = vpc ] || fail "azure: qemu-img reads $fmt, want vpc"
[ $((vsize % 1048576)) -eq 0 ] || fail "azure: virtual size $vsize is not a whole number of MiB"
[ "$fsize" -eq $((vsize + 512)) ] || fail "azure: file is $fsize bytes, want the virtual size $vsize and a 512-byte footer (fixed VHD)"
[ "$vsize" -ge "$AZ_SIZE" ] || fail "azure: virtual size $vsize is smaller than the prepared disk ($AZ_SIZE)"
tail -c 512 "$WORK/os.vhd" | head -c 8 | grep -q conectix || fail "azure: no VHD footer"
[ "$(tail -c 512 "$WORK/os.vhd" | od -An -tu1 -j60 -N4 | tr -s ' ')" = " 0 0 0 2" ] || fail "azure: the VHD is not of the fixed type"

# ---------------------------------------------------------------- boots
# Two VMs, started together so that their slow early boots overlap: the
# prepared raw image (three boots) with the data disk attached, and the
# Azure VHD. The raw VM's root and data disk are both Keyholder volumes:
# the initramfs opens the root, the systemd unit the data disk after boot.
UUID_OS=6f1c2a9e-3b1d-4c55-9a0e-0d2b7c1e4f10 UUID_AZ=0b9d2c4e-7a61-4f3b-8e25-9c1d3a5b7e02
VM_OS=vm-$UUID_OS VM_AZ=vm-$UUID_AZ
DATA_UNIT='keyholder-unlock@dev-disk-by\x2did-virtio\x2dkhdata.service'
DATA_OPENED='Opened /dev/disk/by-id/virtio-khdata as /dev/mapper/keyholder-virtio-khdata'
DATA_SAYS='BOOT-TEST data volume says: hello from the Keyholder boot test'
phase "boot: start the raw (with the data disk) and azure VMs"
boot os "$UUID_OS" "$WORK/os.raw" raw \
  -drive file="$WORK/data.raw",format=raw,if=none,id=khdata,cache=unsafe -device virtio-blk-pci,drive=khdata,serial=khdata
boot azure "$UUID_AZ" "$WORK/os.vhd" vpc

# While the VMs start (slowly, under TCG), the other upload formats.
phase "while they start: --output gcp, aws and vmdk"
prepare "$GUEST/guest.qcow2" "$WORK/os-gcp.tar.gz" os gcp >/dev/null
members=$(tar -tzvf "$WORK/os-gcp.tar.gz")
echo "    gcp: $members"
[ "$(wc -l <<<"$members")" -eq 1 ] || fail "gcp: the tarball has $(wc -l <<<"$members") members, want 1"
[ "$(awk '{print $6}' <<<"$members")" = disk.raw ] || fail "gcp: the member is not disk.raw"
gsize=$(awk '{print $3}' <<<"$members")
[ $((gsize % 1073741824)) -eq 0 ] || fail "gcp: disk.raw is $gsize bytes, not a multiple of 1 GiB"
tar -xzf "$WORK/os-gcp.tar.gz" -C "$WORK" disk.raw
sgdisk -v "$WORK/disk.raw" | grep -q 'No problems found' || fail "gcp: the GPT of disk.raw is not valid at its padded size"
rm -f "$WORK/os-gcp.tar.gz" "$WORK/disk.raw"
# --output aws is raw (EC2 import-snapshot's Format=RAW): the disk as
# --output raw writes it, no container around it, its GPT valid and its root
# partition a LUKS2 volume with the manifest's UUID.
prepare "$GUEST/guest.qcow2" "$WORK/os-aws.raw" os aws >/dev/null
AWS_SIZE=$(jq -r 'select(.result) | .result.manifest.output.disk_size' "$WORK/prepare.out")
AWS_UUID=$(jq -r .luks_uuid "$WORK/os-aws.raw.manifest.json")
AWS_ROOT=$(jq -r .os.root_partition "$WORK/os-aws.raw.manifest.json")
RAW_SIZE=$(jq -r .output.size "$WORK/os.raw.manifest.json")
info=$(qemu-img info --output=json "$WORK/os-aws.raw")
fsize=$(stat -c %s "$WORK/os-aws.raw")
[ "$(jq -r .format <<<"$info")" = raw ] || fail "aws: qemu-img reads $(jq -r .format <<<"$info"), want raw"
[ "$(jq -r '."virtual-size"' <<<"$info")" = "$fsize" ] || fail "aws: virtual size $(jq -r '."virtual-size"' <<<"$info") is not the file's $fsize bytes"
[ "$fsize" = "$RAW_SIZE" ] || fail "aws: $fsize bytes, --output raw of the same guest is $RAW_SIZE"
[ "$fsize" = "$AWS_SIZE" ] || fail "aws: $fsize bytes, the manifest's disk is $AWS_SIZE"
sgdisk -v "$WORK/os-aws.raw" | grep -q 'No problems found' || fail "aws: the GPT is not valid"
start=$(sgdisk -i "$AWS_ROOT" "$WORK/os-aws.raw" | sed -n 's/^First sector: \([0-9]*\).*/\1/p')
[ -n "$start" ] || fail "aws: no partition $AWS_ROOT (the manifest's root) in the GPT"
# cryptsetup reads the 16 MiB LUKS2 header copied out of the root partition.
dd if="$WORK/os-aws.raw" of="$WORK/os-aws.luks" bs=512 skip="$start" count=32768 status=none
cryptsetup isLuks --type luks2 "$WORK/os-aws.luks" || fail "aws: partition $AWS_ROOT is not a LUKS2 volume"
[ "$(cryptsetup luksUUID "$WORK/os-aws.luks")" = "$AWS_UUID" ] || fail "aws: the LUKS2 UUID is not the manifest's $AWS_UUID"
echo "    aws: raw, $fsize bytes (as --output raw), GPT valid, partition $AWS_ROOT a LUKS2 volume $AWS_UUID"
rm -f "$WORK/os-aws.raw" "$WORK/os-aws.luks"
# --output vmdk is a streamOptimized VMDK (VMware; EC2 VM Import and
# import-snapshot take it too): check it as one.
prepare "$GUEST/guest.qcow2" "$WORK/os.vmdk" os vmdk >/dev/null
VMDK_SIZE=$(jq -r 'select(.result) | .result.manifest.output.disk_size' "$WORK/prepare.out")
info=$(qemu-img info --output=json "$WORK/os.vmdk")
[ "$(jq -r .format <<<"$info")" = vmdk ] || fail "vmdk: qemu-img reads $(jq -r .format <<<"$info"), want vmdk"
[ "$(jq -r '."format-specific".data."create-type"' <<<"$info")" = streamOptimized ] || fail "vmdk: the VMDK is not streamOptimized"
[ "$(jq -r '."virtual-size"' <<<"$info")" = "$VMDK_SIZE" ] || fail "vmdk: virtual size $(jq -r '."virtual-size"' <<<"$info"), want $VMDK_SIZE"
qemu-img check -q -f vmdk "$WORK/os.vmdk" || fail "vmdk: qemu-img check finds errors"
qemu-img convert -f vmdk -O raw "$WORK/os.vmdk" "$WORK/os-vmdk.raw"
sgdisk -v "$WORK/os-vmdk.raw" | grep -q 'No problems found' || fail "vmdk: the GPT of the disk inside is not valid"
$KH image inspect --json "$WORK/os-vmdk.raw" | jq -e '.partitions[] | select(.filesystem == "crypto_LUKS")' >/dev/null ||
  fail "vmdk: no LUKS2 partition in the disk"
echo "    vmdk: streamOptimized VMDK, virtual size $VMDK_SIZE, qemu-img check clean, GPT valid, a LUKS2 root partition inside"
rm -f "$WORK/os.vmdk" "$WORK/os-vmdk.raw"

phase "boot 1 (raw): the first boot waits for an officer in the initramfs"
approve_first_boot os "$VM_OS"
phase "boot 1 (raw): approved; the root volume opens"
wait_serial os 'Opened /dev/disk/by-partlabel/root as /dev/mapper/root \(first_boot\)' "root volume opened (first_boot)"
phase "boot 1 (raw): the data disk, new to this VM, waits for an officer; then opens, multi-user, verified"
id=$(pending_volume_request os "$VM_OS" "$DATA_VOL")
echo "    os: pending first_boot request $id of $VM_OS for the data volume ($(t_rel))"
khj requests list --json | jq -e --arg id "$id" --arg root "$OS_VOL" \
  '(.release_requests // .)[] | select(.id == $id) | .summary | .new_volume == true and .vm_volumes == [$root]' >/dev/null ||
  fail "the data volume's request does not say that the VM holds its root volume (and only that)"
officer requests approve "$id" --note "boot test: data disk" | sed "s/^/    os: /"
wait_serial os "$DATA_OPENED \\(first_boot\\)" "data volume opened by $DATA_UNIT (first_boot)"
wait_serial os "$DATA_SAYS" "the data volume mounted and read"
wait_serial os 'BOOT-TEST multi-user.target: active' "multi-user reached"
wait_fleet os "$VM_OS" verified
vols=$(khj fleet --json | jq -c --arg vm "$VM_OS" '.[] | select(.id == $vm) | .volumes | sort')
[ "$vols" = "$(jq -nc --arg a "$OS_VOL" --arg b "$DATA_VOL" '[$a, $b] | sort')" ] ||
  fail "the fleet lists volumes $vols for $VM_OS, want its root and data volumes"

phase "azure VHD: first boot approved, root opens, multi-user, heartbeat verified"
approve_first_boot azure "$VM_AZ"
wait_serial azure 'Opened /dev/disk/by-partlabel/root as /dev/mapper/root \(first_boot\)' "root volume opened (first_boot)"

phase "boot 2 (raw): a reboot is a routine boot, released with no request"
before=$(request_count)
reboot_vm os

phase "boot 2 (raw): routine boot, azure: multi-user"
wait_serial os 'Opened /dev/disk/by-partlabel/root as /dev/mapper/root \(routine_boot\)' "root volume opened (routine_boot)"
wait_serial os "$DATA_OPENED \\(routine_boot\\)" "data volume opened (routine_boot)"
wait_serial os "$DATA_SAYS" "the data volume mounted and read"
after=$(request_count)
[ "$before" = "$after" ] || fail "the routine boot made a request ($before requests before, $after after)"
serial os | grep -q 'Waiting for an officer' && fail "the routine boot waited for an officer"
wait_serial azure 'BOOT-TEST multi-user.target: active' "multi-user reached"
wait_fleet azure "$VM_AZ" verified
stop_vm azure
wait_serial os 'BOOT-TEST multi-user.target: active' "multi-user reached"

phase "boot 3 (raw): the volume is revoked; the reboot stops in the initramfs"
# Revoking needs a recent authentication: log in again first.
api Session/Login "$(jq -nc --arg o "$OFFICER" --arg p "$PASS" '[$o,$p]')" >/dev/null || fail "officer login before revoking"
out=$(api Keys/Revoke "$(jq -nc --arg v "$OS_VOL" '[$v,"boot test: revoked"]')") || fail "revoke $OS_VOL: $out"
reboot_vm os
wait_serial os 'Keyholder: the root volume stays closed' "the initramfs stops with Keyholder's message"
serial os | grep -q 'volume_revoked\|revoked by an officer' || fail "the serial console does not say the volume is revoked"
sleep 5
serial os | grep -q 'Opened ' && fail "something was opened after the revocation"
serial os | grep -q 'BOOT-TEST' && fail "the revoked guest went on booting"
serial os | grep -E 'keyholder-agent|Keyholder' | sed 's/^/    serial: /'
stop_vm os

print_timings
echo "boot-test: ok"
