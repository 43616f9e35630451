#!/usr/bin/env bash
# Runs every Go fuzz target for MINUTES minutes each (default 10), keeping
# the corpus in the Go build cache so that later runs build on this one.
# With 20-odd targets the default takes over three hours; run it in the
# background, niced, on a machine that can spare the cores:
#
#   nice -n 15 scripts/fuzz-long.sh [MINUTES] [PATTERN] > fuzz-long.log 2>&1 &
#
# Failing inputs land in testdata/fuzz/<target>/ of their package (see
# scripts/fuzz.sh).
set -uo pipefail
minutes=${1:-10}
shift $(( $# > 0 ? 1 : 0 ))
exec "$(dirname "$0")/fuzz.sh" -k -t "${minutes}m" "$@"
