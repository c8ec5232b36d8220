#!/usr/bin/env bash
# Runs every fuzz target of the module, one after the other, each for the
# given duration (a go test -fuzztime value; default 60s):
#
#   scripts/fuzz.sh                # each target for a minute
#   scripts/fuzz.sh 10m            # longer, before a release
#   FUZZ_PARALLEL=4 scripts/fuzz.sh 30s
#   FUZZ_TARGETS='FuzzInbound|FuzzAccept' scripts/fuzz.sh
#
# FUZZ_PARALLEL sets the fuzzing workers per target (default 1, so that a
# shared machine stays usable); FUZZ_TARGETS is a regular expression that
# picks targets by name. A crash stops nothing: the remaining targets still
# run, the failing input is written to the package's testdata/fuzz/<Target>/
# (commit it as a regression seed once fixed), and the script exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."

duration="${1:-60s}"
parallel="${FUZZ_PARALLEL:-1}"
pick="${FUZZ_TARGETS:-.}"

failed=()
ran=0
for pkg in $(go list ./...); do
	dir="$(go list -f '{{.Dir}}' "$pkg")"
	grep -qs '^func Fuzz' "$dir"/*_test.go || continue
	for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
		[[ "$target" =~ $pick ]] || continue
		echo "=== $pkg $target ($duration, $parallel worker(s))"
		ran=$((ran + 1))
		if ! go test -run '^$' -fuzz "^${target}\$" -fuzztime="$duration" -parallel="$parallel" "$pkg"; then
			failed+=("$pkg $target")
		fi
	done
done

echo "=== $ran target(s) fuzzed for $duration each"
if ((${#failed[@]} > 0)); then
	printf 'FAILED: %s\n' "${failed[@]}"
	exit 1
fi
