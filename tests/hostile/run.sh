#!/usr/bin/env bash
# tests/hostile/run.sh — the hostile-input corpus (tests/hostile/<case>/, written by gen.py): run
# each case's `cmd` in its folder ($G = tests/golden, $T = a fresh temp folder, $BUILD/bin first
# on PATH) under a 30 s limit and check, as TAP:
#   - it ends: no hang (a FIFO or device input once blocked open() forever);
#   - its exit code: `rc` when the case has one, else 1 or 2 (a refusal, never a crash/signal);
#   - stderr holds the `expected` substring, and a refusal is exactly one "error:" line;
#   - no raw control character (ESC, BEL, ..., C1 such as the 8-bit CSI U+009B, bidi overrides and
#     isolates) reaches stdout or stderr (escape injection);
#   - no sanitizer report (the asan build: UBSan, ASan and LeakSanitizer print and exit 1).
# Used by tests/run.sh (make test, make asan). Usage: run.sh [CASE...]
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
export PATH="$PWD/$BUILD/bin:$PATH" G="$PWD/tests/golden" SF_ROOT="$PWD" SF_LOG_LEVEL=warn
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cases=("$@")
[ ${#cases[@]} -gt 0 ] || for d in tests/hostile/*/; do cases+=("$(basename "$d")"); done
echo "1..${#cases[@]}"
i=0 bad=0
for c in "${cases[@]}"; do
    i=$((i + 1))
    d="tests/hostile/$c"
    T="$tmp/$c"
    mkdir -p "$T"
    (cd "$d" && T="$T" XDG_CACHE_HOME="$T/xdg" timeout -k 5 30 bash -c "$(cat cmd)") >"$tmp/out" 2>"$tmp/err" </dev/null
    rc=$?
    want_rc=$(cat "$d/rc" 2>/dev/null || echo "1|2")
    exp=$(head -n1 "$d/expected")
    why=""
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then why="hung (killed after 30 s)"
    elif ! [[ "$rc" =~ ^($want_rc)$ ]]; then why="exit $rc, want $want_rc"
    elif [ -n "$exp" ] && ! grep -qF -- "$exp" "$tmp/err"; then why="stderr lacks: $exp"
    elif [ "$want_rc" = "1|2" ] && [ "$(grep -c ': error: ' "$tmp/err")" -ne 1 ]; then why="not exactly one error line"
    elif LC_ALL=C grep -q $'[\x01-\x08\x0b-\x1f\x7f]' "$tmp/err" "$tmp/out"; then why="raw control characters in the output"
    elif LC_ALL=C grep -qP '\xc2[\x80-\x9f]|\xe2\x80[\xaa-\xae]|\xe2\x81[\xa6-\xa9]' "$tmp/err" "$tmp/out"; then
        why="raw C1 or bidi control characters in the output"
    elif grep -qE 'runtime error:|AddressSanitizer|LeakSanitizer' "$tmp/err"; then why="sanitizer report"
    fi
    if [ -z "$why" ]; then
        echo "ok $i - hostile/$c"
    else
        bad=$((bad + 1))
        echo "not ok $i - hostile/$c: $why"
        sed 's/^/#   /' "$tmp/err" | LC_ALL=C tr -d '\000-\010\013-\037\177' | head -n 8
    fi
done
[ "$bad" -eq 0 ]
