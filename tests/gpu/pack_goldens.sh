#!/usr/bin/env bash
# tests/gpu/pack_goldens.sh pack|restore|size — room in a device call. The call sends the working tree (tracked files
# and untracked ones git does not ignore) and the ignored paths it carries (.gpu, .ref), 64 MiB in all; tests/golden
# is most of the tree (~48 MiB of ~53) and gzip packs it to ~35 MiB, so packed the call has ~14 MiB more room.
#   pack     .gpu/goldens.tar.gz from the tracked files of tests/golden (gzip, as the bundle: nothing the device
#            lacks), checked by unpacking it aside and comparing every file; then those files removed from the
#            working tree — git still has them. check.sh unpacks the pack first thing on the device.
#   restore  after the call: the files back from git (git checkout), the pack removed.
#   size     one line, "RAW PACKED": the bytes of those files and of their pack (rehearse.sh's estimate), no change.
# Refuses to pack while tests/golden has changes git does not have (restore would lose them). pack and restore print
# carry.sh's line for .gpu and .ref. Between pack and restore the files look deleted: pack installs a pre-commit hook
# (.git/hooks/pre-commit, when there is none) that refuses any commit until restore removes it.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
P=.gpu/goldens.tar.gz
HOOK=$(git rev-parse --git-path hooks/pre-commit)
MARK="# sfpipe pack_goldens.sh: no commit while tests/golden is packed"
say() { echo "pack_goldens: $*"; }
tarball() { git ls-files -z -- tests/golden | tar --null -T - -cf - | gzip -9; } # the pack, on stdout
case "${1:-}" in
size)
    echo "$(git ls-files -z -- tests/golden | xargs -0 -r stat -c %s | awk '{s += $1} END {print s + 0}') $(tarball | wc -c)"
    exit 0
    ;;
pack)
    [ -d .gpu ] || { say "no .gpu/: run ../shared/device/bundle.sh first"; exit 1; }
    if [ -n "$(git status --porcelain -- tests/golden)" ]; then
        say "tests/golden has changes git does not have: commit them first (restore takes the files from git)"
        exit 1
    fi
    n=$(git ls-files -- tests/golden | wc -l)
    [ "$n" -gt 0 ] || { say "no tracked files under tests/golden"; exit 1; }
    tmp=$(mktemp -d /tmp/sf-goldens.XXXXXX)
    trap 'rm -rf "$tmp"' EXIT
    tarball >"$tmp/p.tar.gz" || { say "tar failed"; exit 1; }
    mkdir "$tmp/x" && tar -xzf "$tmp/p.tar.gz" -C "$tmp/x" || { say "the pack does not unpack"; exit 1; }
    bad=$(git ls-files -- tests/golden | while IFS= read -r f; do cmp -s "$f" "$tmp/x/$f" || echo "$f"; done | head -n 3)
    [ -z "$bad" ] || { say "unpacked, these differ: $bad"; exit 1; }
    mv "$tmp/p.tar.gz" "$P" || exit 1
    git ls-files -z -- tests/golden | xargs -0 rm -f
    if [ ! -e "$HOOK" ] && mkdir -p "$(dirname "$HOOK")"; then
        printf '#!/bin/sh\n%s\necho "tests/golden is packed for a device call: bash tests/gpu/pack_goldens.sh restore first" >&2\nexit 1\n' \
            "$MARK" >"$HOOK" && chmod +x "$HOOK"
    fi
    say "$n files into $P ($(awk -v b="$(stat -c %s "$P")" 'BEGIN {printf "%.2f MiB", b / 1048576}')), removed from the tree until restore"
    ;;
restore)
    git checkout -- tests/golden || { say "git checkout -- tests/golden failed"; exit 1; }
    rm -f "$P"
    if [ -f "$HOOK" ] && grep -qF "$MARK" "$HOOK"; then rm -f "$HOOK"; fi
    say "tests/golden back from git ($(git ls-files -- tests/golden | wc -l) files), $P removed"
    ;;
*)
    echo "usage: tests/gpu/pack_goldens.sh pack|restore|size" >&2
    exit 2
    ;;
esac
bash tests/gpu/carry.sh .gpu .ref
