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

# The device bundle (../shared/device/bundle.sh passes CUDA_ARCH on the command line) links every
# program and test against one lib/libsf.so found through $ORIGIN/../lib: a copy of libsf.a in each
# binary (the attention kernels alone ~8 MB of SASS) no longer fits the 64 MiB that may be carried.
# Here without nvcc (the CPU objects the same way), at -O0 for time: the program must find the
# library from a copy of bin/ + lib/ elsewhere, with the build's lib/ gone.
@test "the GPU bundle's programs share one libsf.so, found beside them wherever they are unpacked" {
    local b=$BATS_TEST_TMPDIR/gb u=$BATS_TEST_TMPDIR/unpacked
    run make -s --no-print-directory BUILD="$b" NVCC= CUDA_ARCH=90a OPT=-O0 "$b/bin/sf-tensor" "$b/bin/sf-wire" \
        "$b/bin/sf-vae-encode" # its own objects and the image reader (-ljpeg) stay out of libsf.so
    assert_success
    [ -f "$b/lib/libsf.so" ]
    [ ! -e "$b/libsf.a" ]
    run readelf -d "$b/bin/sf-tensor"
    assert_output --regexp 'NEEDED.*\[libsf\.so\]'
    assert_output --partial '$ORIGIN/../lib'
    # the programs hold none of the library's code
    run nm "$b/bin/sf-tensor"
    refute_output --regexp ' T sf_tensor_'
    mkdir -p "$u" && cp -r "$b/bin" "$b/lib" "$u/" && mv "$b/lib" "$b/lib.gone"
    run env -u LD_LIBRARY_PATH "$u/bin/sf-tensor" --help
    assert_success
    run env -u LD_LIBRARY_PATH "$u/bin/sf-wire" --help
    assert_success
    run env -u LD_LIBRARY_PATH "$u/bin/sf-vae-encode" --help
    assert_success
    run readelf -d "$b/lib/libsf.so"
    refute_output --partial 'libjpeg'
    mv "$b/lib.gone" "$b/lib"
}

@test "every installed program answers -h, --help and --version (README, Programs), exit 0" {
    local bin p
    bin=$(dirname "$(command -v sf-run)")
    for p in "$bin"/sf-*; do
        run -0 "$p" --version
        assert_output --regexp "^$(basename "$p") [0-9]+\.[0-9]+\.[0-9]+$"
        run -0 "$p" --help
        assert_output --partial "$(basename "$p")"
        run -0 "$p" -h
    done
}
