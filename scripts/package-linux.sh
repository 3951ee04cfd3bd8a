#!/usr/bin/env bash
# Packages the Linux desktop bundle with the fyne CLI (fyne.io/tools v1.7.4)
# into artifacts/Gridlord.tar.xz and checks its contents. fyne package
# rewrites FyneApp.toml (it bumps Details.Build even with --app-build), so
# the file is restored afterwards and the tree stays clean.
set -euo pipefail
cd "$(dirname "$0")/.."

mkdir -p artifacts
tmp=$(mktemp -d)
trap 'cp "$tmp/FyneApp.toml" FyneApp.toml; rm -rf "$tmp"' EXIT
cp FyneApp.toml "$tmp/FyneApp.toml"

go build -o "$tmp/gridlord" ./cmd/gridlord
go run fyne.io/tools/cmd/fyne@v1.7.4 package -os linux --exe "$tmp/gridlord" --app-build 1
mv Gridlord.tar.xz artifacts/Gridlord.tar.xz

list=$(tar tJf artifacts/Gridlord.tar.xz)
for want in usr/local/bin/gridlord usr/local/share/applications/dev.gridlord.app.desktop usr/local/share/pixmaps/dev.gridlord.app.png; do
	grep -q "$want\$" <<<"$list" || { echo "package-linux: $want missing from the bundle" >&2; exit 1; }
done
echo "package-linux: artifacts/Gridlord.tar.xz ($(stat -c %s artifacts/Gridlord.tar.xz) bytes)"
