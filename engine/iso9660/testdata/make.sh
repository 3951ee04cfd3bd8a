#!/usr/bin/env bash
# Remakes the small test images (run as root for the chown; xorriso from
# scripts/setup.sh). The tree is described in iso9660_test.go (wantTree).
set -euo pipefail
cd "$(dirname "$0")"
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
mkdir -p "$t/386/bin/venti" "$t/a/b/c/d/e/f/g/h/i/j" "$t/empty"
echo hello >"$t/386/bin/venti/fmtarenas"
chmod 775 "$t/386/bin/venti/fmtarenas"
printf 'deep\n' >"$t/a/b/c/d/e/f/g/h/i/j/leaf.txt"
ln -s ../386/bin "$t/a/bin"
echo x >"$t/A Long Name with spaces and MixedCase.txt"
head -c 100000 /dev/zero | tr '\0' 'z' >"$t/386/9load"
chown 1000:1001 "$t/386/9load"
touch -d '2005-06-07 08:09:10 UTC' "$t/386/9load"
# Fixed dates everywhere else, so the images do not change when remade.
find "$t" -not -path "$t/386/9load" -exec touch -h -d '2020-01-02 03:04:05 UTC' {} +
opts=(-volid GRIDTEST --modification-date=2020010203040500)
xorriso -as mkisofs "${opts[@]}" -R -J -o rrj.iso "$t"
xorriso -as mkisofs "${opts[@]}" --norock -J -o joliet.iso "$t"
xorriso -as mkisofs "${opts[@]}" --norock -o plain.iso "$t"
# Deep directories relocated (RRIP CL/RE entries), as mkisofs does.
xorriso -outdev reloc.iso -volid GRIDTEST -compliance deep_paths_off -rockridge on -joliet off -map "$t" /
# The fuzz seed: a small tree, no padding, the 16 empty system-area
# sectors left off (FuzzOpen puts them back).
rm "$t/386/9load"
xorriso -as mkisofs "${opts[@]}" -no-pad -R -J -o "$t.iso" "$t"
tail -c +$((16 * 2048 + 1)) "$t.iso" >fuzzseed.bin
rm -f "$t.iso"
gzip -9nf rrj.iso joliet.iso plain.iso reloc.iso fuzzseed.bin
