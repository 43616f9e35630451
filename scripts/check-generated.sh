#!/usr/bin/env bash
# Regenerates every generated assembly file into a temporary folder and
# fails if what the generator writes differs from the checked-in file.
#
# A generator is a `//go:build ignore` program named by a
# `//go:generate go run GEN.go` directive; it writes its files into the
# folder it runs in. Every .s file in the repository must be written by one
# of them, or be listed below as written by hand (so that assembly whose
# generator went missing cannot pass unnoticed).
set -uo pipefail
cd "$(dirname "$0")/.."

# Assembly written by hand, not generated: keep this list short.
handwritten=(
  backend/internal/cpuid/cpuid_amd64.s # CPUID and nothing else
)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail=0
declare -A regenerated
n=0
while IFS=: read -r file _ directive; do
  dir=$(dirname "$file")
  gen=${directive#//go:generate go run }
  case $gen in
    *.go) ;;
    *) continue ;; # not a generator program of ours (none today)
  esac
  n=$((n+1))
  out="$work/$n"
  mkdir -p "$out"
  if ! (cd "$dir" && go build -o "$work/$n.bin" "$gen"); then
    echo "FAIL $dir/$gen does not build"; fail=1; continue
  fi
  if ! (cd "$out" && "$work/$n.bin"); then
    echo "FAIL $dir/$gen failed"; fail=1; continue
  fi
  produced=$(cd "$out" && find . -type f | sed 's|^\./||' | sort)
  if [ -z "$produced" ]; then
    echo "FAIL $dir/$gen wrote nothing"; fail=1; continue
  fi
  for f in $produced; do
    regenerated[$dir/$f]=1
    if cmp -s "$out/$f" "$dir/$f"; then
      echo "ok   $dir/$f (from $gen)"
    else
      echo "FAIL $dir/$f is not what $gen writes (run go generate in $dir):"
      diff -u "$dir/$f" "$out/$f" | head -40
      fail=1
    fi
  done
done < <(git grep -n '^//go:generate go run ' -- '*.go')

for f in $(git ls-files '*.s'); do
  [ -n "${regenerated[$f]:-}" ] && continue
  hand=0
  for h in "${handwritten[@]}"; do [ "$f" = "$h" ] && hand=1; done
  if [ $hand = 1 ]; then
    echo "ok   $f (written by hand)"
  else
    echo "FAIL $f is assembly no generator writes: commit its generator (a //go:build ignore program named by //go:generate beside it) or list it as hand-written in scripts/check-generated.sh"
    fail=1
  fi
done
exit $fail
