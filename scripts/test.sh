#!/usr/bin/env bash
# Runs every test tier: vet, unit tests, integration tests with real tools
# (QEMU, qemu-img, mtools, Xvfb), then each fuzz target for a bounded time.
# This is the README's test command and what .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
[ -x /usr/local/go/bin/go ] && export PATH=/usr/local/go/bin:$PATH

export GRIDLORD_INTEGRATION=1
fuzztime=${GRIDLORD_FUZZTIME:-6s}

echo "== go vet"
go vet ./...

echo "== tests (unit + integration)"
go test -count=1 -timeout 35m ./...

echo "== race detector on the concurrent engine packages"
go test -count=1 -race -timeout 15m ./engine/venti/... ./engine/console/... ./engine/gridfs/... ./engine/internal/...

echo "== fuzz targets, $fuzztime each"
scripts/fuzz.sh "$fuzztime"
