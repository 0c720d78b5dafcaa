#!/usr/bin/env bash
# tests/gpu/carry.sh [PATH...] — what a device call would carry, counted before device minutes are spent on
# a refusal: the device tool sends the working tree (tracked files and untracked ones git does not ignore)
# plus the ignored paths named in `carry` (.gpu, .ref), 64 MiB in all; over that the call is refused.
#   bash tests/gpu/carry.sh .gpu .ref
# One line: "carry: T MiB tree + C MiB carried = S MiB of 64 (margin M MiB)". Exit 1 when S is over
# SF_CARRY_MAX_MIB (default 63: one MiB kept free, since a tree only grows between a rehearsal and the
# call), 2 outside a git checkout. A named path that is not there counts 0 and is said.
#   SF_CARRY_LIMIT_MIB: the tool's limit (64).
set -uo pipefail
top=$(git rev-parse --show-toplevel 2>/dev/null) || { echo "carry: not in a git checkout" >&2; exit 2; }
cd "$top" || exit 2
limit=${SF_CARRY_LIMIT_MIB:-64} max=${SF_CARRY_MAX_MIB:-63}
# bytes of the files (regular files only; a deleted tracked file is not sent)
sum_files() { xargs -0 -r stat -c '%s' -- 2>/dev/null | awk '{s += $1} END {printf "%d\n", s}'; }
tree=$(git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
    [ -f "$f" ] && [ ! -L "$f" ] && printf '%s\0' "$f"; done | sum_files)
carried=0 absent=""
for p in "$@"; do
    if [ -e "$p" ]; then
        carried=$((carried + $(find "$p" -type f -print0 | sum_files)))
    else
        absent="$absent $p"
    fi
done
awk -v t="$tree" -v c="$carried" -v lim="$limit" -v max="$max" -v absent="$absent" 'BEGIN {
    m = 1048576; s = t + c
    printf "carry: %.2f MiB tree + %.2f MiB carried = %.2f MiB of %d (margin %.2f MiB)%s\n",
        t / m, c / m, s / m, lim, lim - s / m, absent == "" ? "" : "; not there:" absent
    exit (s > max * m) ? 1 : 0
}'
