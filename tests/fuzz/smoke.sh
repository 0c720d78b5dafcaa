#!/usr/bin/env bash
# tests/fuzz/smoke.sh — the fuzz smoke run of `make test`: build the libFuzzer targets
# (make fuzz-build: tests/fuzz/fuzz_*.c on the parsers, ASan + UBSan) and run each for
# SF_FUZZ_SMOKE_SECONDS (default 20) from its seeds in a scratch corpus; TAP, one line per target
# with its run count. Without clang/libFuzzer (or with SF_FUZZ_SMOKE=0) every target is a
# visible "# SKIP", never a failure. A crash, leak or sanitizer report fails that target and
# leaves the reproducer under build-fuzz/smoke-crashes/. `make fuzz` is the long run.
set -u
cd "$(dirname "$0")/../.."
secs=${SF_FUZZ_SMOKE_SECONDS:-20}
targets=()
for f in tests/fuzz/fuzz_*.c; do targets+=("$(basename "$f" .c)"); done
echo "1..${#targets[@]}"
skip_all() {
    local i=0
    for t in "${targets[@]}"; do i=$((i + 1)); echo "ok $i - fuzz/$t # SKIP $1"; done
    exit 0
}
[ "${SF_FUZZ_SMOKE:-1}" != 0 ] || skip_all "SF_FUZZ_SMOKE=0"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
command -v clang >/dev/null 2>&1 || skip_all "clang not installed (apt-get install clang libclang-rt-14-dev)"
printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' >"$tmp/t.c"
clang -fsanitize=fuzzer,address "$tmp/t.c" -o "$tmp/t" >/dev/null 2>&1 ||
    skip_all "clang cannot link libFuzzer (apt-get install libclang-rt-14-dev)"
if ! make -s fuzz-build >"$tmp/build.log" 2>&1; then
    sed 's/^/# /' "$tmp/build.log" | tail -n 20
    i=0
    for t in "${targets[@]}"; do i=$((i + 1)); echo "not ok $i - fuzz/$t: make fuzz-build failed"; done
    exit 1
fi
mkdir -p build-fuzz/smoke-crashes
i=0 bad=0
for t in "${targets[@]}"; do
    i=$((i + 1))
    mkdir -p "$tmp/c-$t"
    cp tests/fuzz/seeds/"$t"/* "$tmp/c-$t/" 2>/dev/null || true
    build-fuzz/"$t" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        -artifact_prefix=build-fuzz/smoke-crashes/"$t"- "$tmp/c-$t" >"$tmp/log" 2>&1
    rc=$?
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$tmp/log" | grep -o '[0-9]*$')
    if [ "$rc" -eq 0 ] && ! grep -qE 'runtime error:|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)' "$tmp/log"; then
        echo "ok $i - fuzz/$t clean for ${secs} s (${runs:-?} runs)"
    else
        bad=$((bad + 1))
        echo "not ok $i - fuzz/$t (exit $rc; reproducer in build-fuzz/smoke-crashes/)"
        grep -E 'runtime error:|ERROR:|SUMMARY|#[0-9]+ ' "$tmp/log" | head -n 12 | sed 's/^/#   /'
    fi
done
[ "$bad" -eq 0 ]
