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

# Hopper's asynchronous wgmma only pays when ptxas leaves the products asynchronous: operand registers
# touched between issue and wait (or P packed between products) make it serialise them or inject
# fences, said only as "ptxas info" notes (C7514, C7519, C7520). The hand-written kernels must compile
# without them, and without spills (nvcc where it is installed; the device bundle builds the same).
@test "the wgmma attention kernels compile for sm_90a with no serialised products, injected fences or spills" {
    local nvcc
    nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
    [ -x "$nvcc" ] || skip "no nvcc here"
    for f in attn_mass_wg attn_mass_ws; do
        run "$nvcc" -O2 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -Icommon -Ikernels -I. -Xptxas -v \
            -c "kernels/cuda/$f.cu" -o "$BATS_TEST_TMPDIR/$f.o"
        assert_success
        refute_output --partial "Potential Performance Loss"
        refute_output --partial "is injected"
        refute_output --regexp "[1-9][0-9]* bytes spill"
        assert_output --partial "Compiling entry function"
    done
}
