#!/bin/sh
# Runs every fuzz target of the module for FUZZTIME each (default 3s).
# Usage: scripts/fuzz.sh [package pattern]   e.g. FUZZTIME=1m scripts/fuzz.sh ./edge/...
set -eu
fuzztime=${FUZZTIME:-3s}
pattern=${1:-./...}
for pkg in $(go list "$pattern"); do
	targets=$(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true)
	for t in $targets; do
		echo "fuzz $pkg $t ($fuzztime)"
		go test -run '^$' -fuzz "^$t\$" -fuzztime "$fuzztime" "$pkg" >/dev/null || {
			echo "fuzz $pkg $t FAILED; rerun: go test -run '^\$' -fuzz '^$t\$' $pkg" >&2
			go test -run '^$' -fuzz "^$t\$" -fuzztime "$fuzztime" "$pkg" 2>&1 | tail -40 >&2
			exit 1
		}
	done
done
