#!/usr/bin/env bash
# Runs every Go fuzz target in the module for a bounded time (default 8s).
# Targets are found by name (func FuzzXxx in *_test.go), so new ones run
# without being listed here.
#
# Go 1.26's fuzz coordinator can end a clean run with a bare "context
# deadline exceeded" when -fuzztime expires mid-execution (go.dev/issue/75804,
# fixed in Go 1.27). A real finding always writes a failing input or
# reports a panic or test error; a bare deadline with neither is retried,
# and if it recurs the target's corpus is replayed as the deciding run.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${1:-8s}
n=0
fuzz_one() { # pkg name
	go test -run '^$' -fuzz "^$2\$" -fuzztime "$fuzztime" -fuzzminimizetime 1s "$1" 2>&1
}
bare_deadline() { # output
	grep -q 'context deadline exceeded' <<<"$1" &&
		! grep -qE 'Failing input written|panic:|_test\.go:[0-9]+:' <<<"$1"
}
while IFS=: read -r file _ line; do
	name=$(sed -E 's/^func (Fuzz[A-Za-z0-9_]*)\(.*/\1/' <<<"$line")
	pkg=./$(dirname "$file")
	echo "-- $pkg $name"
	ok=
	for try in 1 2; do
		if out=$(fuzz_one "$pkg" "$name"); then
			echo "$out"
			ok=1
			break
		fi
		echo "$out"
		bare_deadline "$out" || exit 1
		echo "fuzz: $name: bare 'context deadline exceeded' at the -fuzztime boundary (go.dev/issue/75804); try $try"
	done
	if [ -z "$ok" ]; then
		echo "fuzz: $name: replaying its corpus to decide"
		go test -count=1 -run "^${name}\$" "$pkg"
	fi
	n=$((n + 1))
done < <(grep -rn --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]*\(' engine app ui cmd images testing 2>/dev/null | sort)
echo "fuzz: $n targets ran for $fuzztime each"
