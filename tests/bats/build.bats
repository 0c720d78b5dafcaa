#!/usr/bin/env bats
# The build is quiet: compiling the CPU kernels (the ISA-variant .inc files included twice, once
# for the baseline ISA, once for AVX2) prints no warning or note — `make demo` showed GCC's
# "ABI for passing parameters with 32-byte alignment has changed in GCC 4.6" psABI note, which
# #pragma GCC diagnostic cannot silence (vectors go to helpers by pointer instead).
bats_require_minimum_version 1.5.0
load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'

setup() {
    cd "$SF_ROOT"
}

@test "the CPU kernels compile without a warning or note (no psABI note)" {
    local objs=() f
    for f in kernels/cpu/*.c; do objs+=("$BATS_TEST_TMPDIR/b/obj/${f%.c}.o"); done
    # the Makefile's own rule and flags (-s: no command lines, so any output is a diagnostic)
    run --separate-stderr make -s --no-print-directory BUILD="$BATS_TEST_TMPDIR/b" "${objs[@]}"
    assert_success
    assert_equal "$stderr" ""
    assert_output ""
}
