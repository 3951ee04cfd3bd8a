#!/usr/bin/env bash
# Runs every Go fuzz target in the module for a bounded time (default 8s).
# Targets are found by name (func FuzzXxx in *_test.go), so new ones run
# without being listed here.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${1:-8s}
n=0
while IFS=: read -r file _ line; do
	name=$(sed -E 's/^func (Fuzz[A-Za-z0-9_]*)\(.*/\1/' <<<"$line")
	pkg=./$(dirname "$file")
	echo "-- $pkg $name"
	go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -fuzzminimizetime 1s "$pkg"
	n=$((n + 1))
done < <(grep -rn --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]*\(' engine app ui cmd images testing 2>/dev/null | sort)
echo "fuzz: $n targets ran for $fuzztime each"
