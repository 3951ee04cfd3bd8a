#!/usr/bin/env bash
# Runs every test tier: vet, unit tests, integration tests with real tools
# (QEMU, qemu-img, mtools, Xvfb and a real window), the race detector on the
# concurrent engine packages, the Windows cross-build and Linux package, then
# each fuzz target for a bounded time. Screenshots and builds land in artifacts/.
# This is the README's test command and what .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
[ -x /usr/local/go/bin/go ] && export PATH=/usr/local/go/bin:$PATH

export GRIDLORD_INTEGRATION=1
fuzztime=${GRIDLORD_FUZZTIME:-6s}

echo "== go vet, gofmt"
go vet ./...
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
	echo "not gofmt-formatted (run gofmt -w on them):"
	echo "$unformatted"
	exit 1
fi

echo "== tests (unit + integration)"
go test -count=1 -timeout 35m ./...

echo "== Linux kernel mount of gridfs on this host (skips, with its reason, where the kernel has no 9p)"
out=$(go test -count=1 -v -run 'TestKernelMount$' ./engine/gridfs 2>&1) || { echo "$out"; exit 1; }
grep -E -- '--- (PASS|SKIP)|NOT TESTED' <<<"$out" || true

echo "== race detector on the concurrent engine packages"
go test -count=1 -race -timeout 15m ./engine/venti/... ./engine/console/... ./engine/gridfs/... ./engine/atomicfile/...

echo "== Windows cross-build of the GUI (mingw-w64, cgo) and the Linux desktop package"
scripts/windows-build.sh artifacts/gridlord.exe
scripts/package-linux.sh

echo "== fuzz targets, $fuzztime each"
scripts/fuzz.sh "$fuzztime"
