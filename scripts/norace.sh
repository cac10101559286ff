#!/bin/sh
# make test runs every test with -race; tests that measure allocations or
# memory are built only without it (//go:build !race: the race detector
# changes both). This runs exactly those, without -race, so that CI checks
# them too.
set -eu
go=${GO:-go}
files=$(grep -l '^//go:build !race' $(git ls-files '*_test.go' 2>/dev/null || find . -name '*_test.go'))
names=$(sed -n 's/^func \(Test[A-Za-z0-9_]*\)(t \*testing\.T).*/\1/p' $files | sort -u | paste -sd'|' -)
if [ -z "$names" ]; then
	exit 0
fi
pkgs=$(for f in $files; do echo "./$(dirname "$f")"; done | sort -u)
# shellcheck disable=SC2086
$go test -count=1 -run "^($names)\$" $pkgs
