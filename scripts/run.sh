#!/usr/bin/env bash
# Installs what is missing, builds Gridlord and opens its window. The grid's
# venti is embedded: no external server is needed. Arguments are passed to
# gridlord (for example: scripts/run.sh help).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
[ -x /usr/local/go/bin/go ] && export PATH=/usr/local/go/bin:$PATH
mkdir -p bin
go build -o bin/gridlord ./cmd/gridlord
exec bin/gridlord "$@"
