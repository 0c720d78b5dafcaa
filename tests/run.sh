#!/usr/bin/env bash
# tests/run.sh — run every C unit-test binary and every bats suite; print "N passed, N failed".
# Used by `make test` and `make asan` (BUILD selects the build folder). A binary that dies
# without reporting a failure (a crash, a sanitizer abort) counts as one failure; skipped tests
# (TAP "ok ... # SKIP", e.g. CUDA kernels without a GPU) count as neither and are reported.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export PATH="$PWD/$BUILD/bin:$PATH" SF_BUILD="$BUILD" SF_GOLDEN="$PWD/tests/golden" SF_ROOT="$PWD"
pass=0 fail=0 skip=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT
times=$(mktemp) # "seconds name" per suite, for the slowest-suites lines at the end
suite() { # a suite begins: its header, and the clock count() reads
    echo "# == $1"
    t0=$(date +%s.%N)
}
count() { # TAP in $out → update pass/fail; $1 = exit code, $2 = what ran
    local p f t1
    cat "$out"
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" -v n="$2" 'BEGIN { printf "%.1f %s\n", b - a, n }' >>"$times"
    p=$(grep -c '^ok' "$out")
    k=$(grep -ci '^ok.*# skip' "$out")
    f=$(grep -c '^not ok' "$out")
    pass=$((pass + p - k)) skip=$((skip + k)) fail=$((fail + f))
    if [ "$1" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "not ok - $2 exited with status $1 without reporting a failure"
        fail=$((fail + 1))
    fi
}
# the fuzz smoke (tests/fuzz/smoke.sh: 20 s per libFuzzer target, SKIPs without clang) runs in
# the background alongside everything else, at the lowest priority (nice 19) so that the tests
# which time a stop or a timeout (faults.bats, net-edge.bats, test_stop) keep their CPU; its TAP
# is counted at the end
# Each background job writes its own exit status to a file: with pid_max 32768 a whole run forks enough
# processes that the PID of a job that ended early is reused, and bash then forgets its status (`wait PID`:
# "not a child of this shell", 127 — a failure of nothing)
fz_out=$(mktemp) fz_rc=$(mktemp)
(nice -n 19 bash tests/fuzz/smoke.sh >"$fz_out" 2>&1; echo $? >"$fz_rc") &
fz_pid=$!
# likewise the emulated CUDA tests under the emulation's perturbations (tests/emu_perturbed.sh: other
# thread / block orders, deferred streams), ~1 CPU minute
ep_out=$(mktemp) ep_rc=$(mktemp)
(BUILD="$BUILD" nice -n 19 bash tests/emu_perturbed.sh >"$ep_out" 2>&1; echo $? >"$ep_rc") &
ep_pid=$!
trap 'rm -f "$out" "$times" "$fz_out" "$ep_out" "$fz_rc" "$ep_rc"; pkill -P "$fz_pid" 2>/dev/null; pkill -P "$ep_pid" 2>/dev/null
      kill "$fz_pid" "$ep_pid" 2>/dev/null' EXIT
# a background job's status → jrc: waited for (in this shell: it is our child), then read from its file
# (absent: it died unreported, a failure)
job_rc() { # pid rc_file
    wait "$1" 2>/dev/null
    jrc=$(cat "$2" 2>/dev/null)
    [[ "$jrc" =~ ^[0-9]+$ ]] || jrc=1
}
for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    suite "$(basename "$t")"
    (cd "$PWD" && "$t") >"$out" 2>&1
    count $? "$(basename "$t")"
done
# hostile inputs: tests/hostile/<case>/ (files, command, expected one-line error)
suite "tests/hostile"
BUILD="$BUILD" bash tests/hostile/run.sh >"$out" 2>&1
count $? "tests/hostile"

# The golden tests again in the CPU's other modes (kernels/parallel.h sf_cpu_mode; the pass above ran
# the default fast mode): the exact kernels (SF_CPU_EXACT=1) and the bf16 numerics (SF_CPU_PRECISION=bf16).
for mode in exact bf16; do
    for g in test_dit test_dit_pipeline test_t5 test_vae test_vae_encode test_taehv; do
        t="$BUILD/tests/$g"
        [ -x "$t" ] || continue
        suite "$g ($mode mode)"
        if [ "$mode" = exact ]; then (SF_CPU_EXACT=1 "$t") >"$out" 2>&1
        else (unset SF_CPU_EXACT; SF_CPU_PRECISION=bf16 "$t") >"$out" 2>&1; fi
        count $? "$g ($mode mode)"
    done
done
if command -v bats >/dev/null 2>&1; then
    for b in tests/bats/*.bats; do
        [ -f "$b" ] || continue
        suite "$b"
        bats --tap "$b" >"$out" 2>&1
        count $? "$b"
    done
else
    echo "not ok - bats is not installed (apt-get install bats bats-assert bats-support)"
    fail=$((fail + 1))
fi
suite "tests/emu_perturbed.sh"
job_rc "$ep_pid" "$ep_rc"
cp "$ep_out" "$out"
count "$jrc" "tests/emu_perturbed.sh"
suite "tests/fuzz/smoke.sh"
job_rc "$fz_pid" "$fz_rc"
cp "$fz_out" "$out"
count "$jrc" "tests/fuzz/smoke.sh"
# the suites that took longest in the foreground (the two background jobs: the wait for them at the end), to keep
# `make test` near its 10 minutes
sort -rn "$times" | head -n 8 | awk '{ printf "# slow: %6.1f s  %s\n", $1, substr($0, index($0, " ") + 1) }'
[ "$skip" -eq 0 ] || echo "# $skip skipped (see the '# SKIP' lines above for why)"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
