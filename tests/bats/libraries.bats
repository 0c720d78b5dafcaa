#!/usr/bin/env bats
# What a well-kept library does, the project does not write by hand: SHA-256 comes from
# libsodium, CRC-32 from zlib, PNG from libpng (compressed). The digests and files are tested
# by the unit tests (test_t5 cache_*, test_vae_video png_*, test_formats); this holds the line.
bats_require_minimum_version 1.5.0
load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'

setup() {
    cd "$SF_ROOT"
    SRC=(common stages tools kernels/cpu)
}

@test "no hand-written SHA-256 (its round constant) outside libsodium" {
    run -1 grep -rniI --include='*.c' --include='*.h' --include='*.inc' '0x428a2f98' "${SRC[@]}"
}

@test "no hand-written CRC-32 (its polynomial) outside zlib" {
    run -1 grep -rniI --include='*.c' --include='*.h' --include='*.inc' '0xedb88320' "${SRC[@]}"
}

@test "libsf calls libsodium, zlib and libpng" {
    lib="$SF_ROOT/${SF_BUILD:-build}/libsf.a"
    [ -f "$lib" ] || skip "no $lib"
    run -0 nm -u "$lib"
    assert_output --partial crypto_hash_sha256_update
    assert_output --partial crc32_z
    assert_output --partial png_image_write_to_memory
}
