#!/usr/bin/env bash
# Cross-compiles the gridlord GUI (cmd/gridlord, cgo + GLFW) for windows/amd64
# with mingw-w64 and checks that it linked into a Windows GUI executable.
# Needs the Debian package gcc-mingw-w64-x86-64 (scripts/setup.sh installs it).
# Usage: scripts/windows-build.sh [OUTPUT.exe]   (default: artifacts/gridlord.exe)
set -euo pipefail
cd "$(dirname "$0")/.."

cc=${CC_WINDOWS:-x86_64-w64-mingw32-gcc}
if ! command -v "$cc" >/dev/null 2>&1; then
	echo "windows-build: $cc not found; install gcc-mingw-w64-x86-64 (scripts/setup.sh)" >&2
	exit 1
fi
out=${1:-artifacts/gridlord.exe}
mkdir -p "$(dirname "$out")"

# First: everything that is not the GUI must build without cgo, as it does
# on a Windows host with no C compiler (go vet type-checks test files too).
CGO_ENABLED=0 GOOS=windows GOARCH=amd64 go vet ./app/... ./engine/... ./images/... ./assets/...

# Then the GUI binary itself, with cgo and mingw, as a windowed program.
CGO_ENABLED=1 GOOS=windows GOARCH=amd64 CC="$cc" \
	go build -trimpath -ldflags "-H=windowsgui" -o "$out" ./cmd/gridlord

# Check what came out with mingw's objdump: a PE32+ x86-64 executable for
# the Windows GUI subsystem.
objdump=${cc%gcc}objdump
hdr=$("$objdump" -p "$out")
grep -q 'file format pei-x86-64' <<<"$hdr" || { echo "windows-build: $out is not a PE32+ x86-64 executable" >&2; exit 1; }
grep -Eq '^Subsystem[[:space:]]+0*2[[:space:]]+\(Windows GUI\)' <<<"$hdr" || { echo "windows-build: $out is not a Windows GUI program" >&2; exit 1; }
echo "windows-build: $out: PE32+ x86-64 Windows GUI executable, $(stat -c %s "$out") bytes"
