#!/bin/sh
# Runs every fuzz target of the module for FUZZTIME each (default 3s).
# Usage: scripts/fuzz.sh [package pattern]   e.g. FUZZTIME=1m scripts/fuzz.sh ./edge/...
# A failure prints the fuzzer's own output (the failing input is saved by
# go test under the package's testdata/fuzz/ directory).
set -eu
fuzztime=${FUZZTIME:-3s}
pattern=${1:-./...}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for pkg in $(go list "$pattern"); do
	targets=$(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true)
	for t in $targets; do
		echo "fuzz $pkg $t ($fuzztime)"
		if ! go test -run '^$' -fuzz "^$t\$" -fuzztime "$fuzztime" "$pkg" >"$log" 2>&1; then
			echo "fuzz $pkg $t FAILED:" >&2
			tail -60 "$log" >&2
			echo "rerun: go test -run '^$t\$' $pkg   (replays saved inputs)" >&2
			exit 1
		fi
	done
done
