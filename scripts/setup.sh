#!/usr/bin/env bash
# Installs what Gridlord's build, app and tests need on Debian, idempotently and
# without questions. Safe to run again: packages already present are skipped.
set -euo pipefail

packages=(
	# build: cgo toolchain and the headers Fyne's GLFW driver links against
	gcc pkg-config libgl1-mesa-dev xorg-dev
	# VMs and disk images
	qemu-system-x86 qemu-utils
	# 9fat fixtures and checks
	mtools dosfstools
	# a real window in tests, and screenshots of it
	xvfb x11-utils x11-apps imagemagick xdotool
	# ISO 9660 images of a Plan 9 tree (seed-build fixtures)
	xorriso
	# the stand-in Linux guest: busybox and a Debian kernel assembled at test time
	busybox-static cpio
	# Windows cross-build of the GUI
	gcc-mingw-w64-x86-64
	# drawterm (the terminal for cpu nodes; tests launch it)
	drawterm-9front
	# an rc shell (Plan 9 rc's syntax): tests run the lines typed at consoles
	rc
	# misc
	ca-certificates git
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

if [ ${#missing[@]} -gt 0 ]; then
	echo "setup: installing ${missing[*]}"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Go: use the one on PATH (or /usr/local/go); otherwise Debian's golang-go,
# which fetches the toolchain go.mod asks for through the module proxy.
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	export PATH=/usr/local/go/bin:$PATH
fi
if ! command -v go >/dev/null 2>&1; then
	echo "setup: installing golang-go"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends golang-go
fi
