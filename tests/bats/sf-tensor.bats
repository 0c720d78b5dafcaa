#!/usr/bin/env bats
# sf-tensor: ls/cat/diff/convert on the golden files; round trips; malformed inputs.
bats_require_minimum_version 1.5.0
load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'

setup() {
    G="${SF_GOLDEN:-$BATS_TEST_DIRNAME/../golden}"
    T="$BATS_TEST_TMPDIR"
}

# one line "sf-tensor: error: ..." on stderr, nothing else
assert_one_error_line() {
    assert_equal "$(printf '%s\n' "$stderr" | wc -l)" 1
    assert_regex "$stderr" '^sf-tensor: error: '
}

@test "ls: umT5 bf16 state dict" {
    run --separate-stderr sf-tensor ls "$G/model/models_t5_umt5-xxl-enc-bf16.pth"
    assert_success
    assert_equal "${#lines[@]}" 32
    assert_equal "${lines[0]}" "$(printf 'token_embedding.weight\tbf16\t[1000, 64]')"
    assert_line "$(printf 'blocks.2.ffn.fc2.weight\tbf16\t[64, 160]')"
    assert_equal "${lines[31]}" "$(printf 'norm.weight\tbf16\t[64]')"
}

@test "ls: VAE f32 state dict" {
    run --separate-stderr sf-tensor ls "$G/model/Wan2.1_VAE.pth"
    assert_success
    assert_equal "${#lines[@]}" 194
    assert_equal "${lines[0]}" "$(printf 'encoder.conv1.weight\tf32\t[8, 3, 3, 3, 3]')"
}

@test "ls: Self-Forcing checkpoint keeps generator/ and generator_ema/ apart" {
    run --separate-stderr sf-tensor ls "$G/checkpoints/tiny_dmd.pt"
    assert_success
    assert_equal "${#lines[@]}" 192
    assert_equal "${lines[0]}" "$(printf 'generator/model.patch_embedding.weight\tbf16\t[256, 16, 1, 2, 2]')"
    assert_line "$(printf 'generator_ema/model.blocks.2.ffn.2.weight\tbf16\t[256, 384]')"
    assert_equal "$(printf '%s\n' "${lines[@]}" | grep -c '^generator/model\.')" 96
    assert_equal "$(printf '%s\n' "${lines[@]}" | grep -c '^generator_ema/model\.')" 96
}

@test "ls: safetensors" {
    run --separate-stderr sf-tensor ls "$G/model/diffusion_pytorch_model.safetensors"
    assert_success
    assert_equal "${#lines[@]}" 96
    assert_line "$(printf 'blocks.0.self_attn.q.weight\tf32\t[256, 256]')"
}

@test "cat: values of a transposed view, an int64 and a 0-d tensor" {
    run --separate-stderr sf-tensor cat "$G/torch/views.pt" transposed --limit 4
    assert_success
    assert_output "$(printf '# transposed f16 [4, 3]\n0\n4\n8\n1')"
    run --separate-stderr sf-tensor cat "$G/torch/views.pt" i64
    assert_output "$(printf '# i64 i64 [3]\n-3\n1099511627776\n7')"
    run --separate-stderr sf-tensor cat "$G/torch/views.pt" scalar
    assert_output "$(printf '# scalar f32 []\n3.25')"
    run --separate-stderr sf-tensor cat "$G/torch/views.pt" nope
    assert_failure 1
    assert_one_error_line
}

@test "convert: .pt -> .safetensors -> .pt is bit-exact" {
    sf-tensor convert "$G/checkpoints/tiny_dmd.pt" "$T/a.safetensors"
    sf-tensor convert "$T/a.safetensors" "$T/b.pt"
    run sf-tensor diff "$G/checkpoints/tiny_dmd.pt" "$T/b.pt" --quiet
    assert_success
    assert_output --partial "# 192 compared, 0 mismatched, 0 only in A, 0 only in B"
    sf-tensor convert "$T/b.pt" "$T/c.safetensors"
    cmp "$T/a.safetensors" "$T/c.safetensors"
    sf-tensor convert "$T/b.pt" "$T/d.pt"
    cmp "$T/b.pt" "$T/d.pt"
    # the golden state dicts too
    sf-tensor convert "$G/model/Wan2.1_VAE.pth" "$T/vae.safetensors"
    sf-tensor convert "$T/vae.safetensors" "$T/vae.pt"
    run sf-tensor diff "$G/model/Wan2.1_VAE.pth" "$T/vae.pt" -q
    assert_success
    sf-tensor convert "$G/model/diffusion_pytorch_model.safetensors" "$T/dit.pt"
    sf-tensor convert "$T/dit.pt" "$T/dit.safetensors"
    run sf-tensor diff "$G/model/diffusion_pytorch_model.safetensors" "$T/dit.safetensors" -q
    assert_success
    # views (strided, offset) come out contiguous with the same values
    sf-tensor convert "$G/torch/views.pt" "$T/views.safetensors"
    run sf-tensor diff "$G/torch/views.pt" "$T/views.safetensors" -q
    assert_success
}

@test "convert --select generator_ema strips the prefix" {
    sf-tensor convert "$G/checkpoints/tiny_dmd.pt" "$T/ema.safetensors" --select generator_ema
    run --separate-stderr sf-tensor ls "$T/ema.safetensors"
    assert_equal "${#lines[@]}" 96
    assert_line "$(printf 'model.head.head.bias\tbf16\t[64]')"
    sf-tensor convert "$G/checkpoints/tiny_dmd.pt" "$T/ema.pt" --select=generator_ema
    run sf-tensor diff "$T/ema.safetensors" "$T/ema.pt" -q
    assert_success
    # same bytes as the nested tensors in the checkpoint
    run --separate-stderr sf-tensor cat "$T/ema.pt" model.head.head.bias --limit 3
    assert_output "$(sf-tensor cat "$G/checkpoints/tiny_dmd.pt" generator_ema/model.head.head.bias --limit 3 | sed 's|generator_ema/||')"
    run --separate-stderr sf-tensor convert "$G/checkpoints/tiny_dmd.pt" "$T/none.pt" --select critic
    assert_failure 1
    assert_one_error_line
    [ ! -e "$T/none.pt" ]
}

@test "diff: mismatch exits 1, tolerances pass, missing tensors exit 1" {
    sf-tensor convert "$G/checkpoints/tiny_dmd.pt" "$T/g.safetensors" --select generator
    sf-tensor convert "$G/checkpoints/tiny_dmd.pt" "$T/e.safetensors" --select generator_ema
    run sf-tensor diff "$T/g.safetensors" "$T/e.safetensors" -q
    assert_failure 1
    assert_output --partial "MISMATCH"
    run sf-tensor diff "$T/g.safetensors" "$T/e.safetensors" --atol 10
    assert_success
    assert_line --regexp '^model\.head\.head\.bias	max_abs [0-9.e-]+	max_rel [0-9.e+-]+	nmse [0-9.e-]+	ok$'
    run sf-tensor diff "$T/g.safetensors" "$G/model/diffusion_pytorch_model.safetensors" -q
    assert_failure 1
    assert_output --partial "96 only in A, 96 only in B"
}

@test "usage errors exit 2; --help and --version exit 0" {
    run --separate-stderr sf-tensor
    assert_failure 2
    assert_one_error_line
    run --separate-stderr sf-tensor ls
    assert_failure 2
    run --separate-stderr sf-tensor frobnicate x
    assert_failure 2
    run --separate-stderr sf-tensor ls "$G/torch/views.pt" --bogus
    assert_failure 2
    assert_one_error_line
    run --separate-stderr sf-tensor convert "$G/torch/views.pt" "$T/out.bin"
    assert_failure 2
    [ ! -e "$T/out.bin" ]
    run sf-tensor diff a b --rtol=-1
    assert_failure 2
    run sf-tensor --help
    assert_success
    assert_output --partial "convert"
    run sf-tensor --version
    assert_success
    assert_output --regexp '^sf-tensor [0-9]'
}

# Every malformed input: exit 1, one error line, no crash, no output file (not even a temp file).
bad_input() {
    run --separate-stderr sf-tensor convert "$1" "$T/out.pt"
    assert_failure 1
    assert_one_error_line
    [ ! -e "$T/out.pt" ]
    [ -z "$(ls "$T" | grep 'out\.pt')" ]
    run --separate-stderr sf-tensor ls "$1"
    assert_failure 1
    assert_one_error_line
}

@test "malformed: truncated torch zips" {
    for n in 0 3 100 2000 3400 3480 3502; do
        head -c "$n" "$G/torch/views.pt" >"$T/trunc.pt"
        bad_input "$T/trunc.pt"
    done
    head -c 1000000 "$G/checkpoints/tiny_dmd.pt" >"$T/trunc.pt"
    bad_input "$T/trunc.pt"
}

@test "malformed: lying zip sizes, compressed members, short storages" {
    bad_input "$G/torch/lying_size.pt"
    [[ "$stderr" == *"extends past the end"* ]]
    bad_input "$G/torch/compressed.pt"
    [[ "$stderr" == *"STORED"* ]]
    bad_input "$G/torch/storage_short.pt"
    [[ "$stderr" == *"do not fit"* ]]
}

@test "malformed: hostile pickle inside a valid zip" {
    bad_input "$G/torch/hostile_os_system.pt"
    [[ "$stderr" == *"global 'os system' is not allowed"* ]]
}

@test "malformed: safetensors with a bad header length or bad offsets" {
    printf '\xff\xff\xff\xff\x00\x00\x00\x00{}' >"$T/hl.safetensors"
    bad_input "$T/hl.safetensors"
    hdr='{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,80]}}'
    { printf "\\x$(printf %02x ${#hdr})\\x00\\x00\\x00\\x00\\x00\\x00\\x00"; printf '%s' "$hdr"; printf '12345678'; } >"$T/off.safetensors"
    bad_input "$T/off.safetensors"
    hdr='{"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}'
    { printf "\\x$(printf %02x ${#hdr})\\x00\\x00\\x00\\x00\\x00\\x00\\x00"; printf '%s' "$hdr"; printf '12345678'; } >"$T/shape.safetensors"
    bad_input "$T/shape.safetensors"
    head -c 5000 "$G/model/diffusion_pytorch_model.safetensors" >"$T/trunc.safetensors"
    bad_input "$T/trunc.safetensors"
    run --separate-stderr sf-tensor ls "$T/does-not-exist.pt"
    assert_failure 1
    assert_one_error_line
}

@test "wire streams: ls/cat/diff/convert on an SFT1 file and on stdin; repeated names get #k" {
    S="$G/expect/t5.safetensors"
    sf-wire send "$T/t5.sft" --from "$S" --meta block=3 note=hi
    run --separate-stderr sf-tensor ls "$T/t5.sft"
    assert_success
    assert_equal "$output" "$(sf-tensor ls "$S")"
    run --separate-stderr sf-tensor diff "$T/t5.sft" "$S"
    assert_success
    assert_regex "$output" "# $(sf-tensor ls "$S" | wc -l) compared, 0 mismatched, 0 only in A, 0 only in B"
    # stdin, either side of diff
    run --separate-stderr sh -c "cat '$T/t5.sft' | sf-tensor diff '$S' - --quiet"
    assert_success
    run --separate-stderr sh -c "sf-wire send - --from '$S' --name ids.3 | sf-tensor cat - ids.3 --limit 3"
    assert_success
    assert_equal "$output" "$(sf-tensor cat "$S" ids.3 --limit 3)"
    # convert to safetensors (meta kept as <tensor>.<key>) and to .pt, both equal to the source
    sf-tensor convert "$T/t5.sft" "$T/back.safetensors"
    cmp <(sf-tensor cat "$T/back.safetensors" emb.7) <(sf-tensor cat "$S" emb.7)
    grep -a -q '"emb.7.block":"3"' "$T/back.safetensors"
    grep -a -q '"mask.0.note":"hi"' "$T/back.safetensors"
    sf-tensor convert "$T/t5.sft" "$T/back.pt"
    run sf-tensor diff "$T/back.pt" "$S"
    assert_success
    # a stream with the same name twice (two concatenated streams, the first without its
    # 41-byte end frame): latents, latents#1
    { sf-wire send - --from "$S" --name emb.0 emb.1 | head -c -41; sf-wire send - --from "$S" --name emb.0; } >"$T/dup.sft"
    run --separate-stderr sf-tensor ls "$T/dup.sft"
    assert_success
    assert_equal "$output" "$(printf 'emb.0\tf32\t[512, 64]\nemb.1\tf32\t[512, 64]\nemb.0#1\tf32\t[512, 64]')"
    cmp <(sf-tensor cat "$T/dup.sft" 'emb.0#1' | tail -n +2) <(sf-tensor cat "$S" emb.0 | tail -n +2)
}

@test "wire streams: no end, upstream error, truncated frame -> one error line, exit 1" {
    S="$G/expect/t5.safetensors"
    sf-wire send - --from "$S" --name emb.0 | head -c -41 >"$T/noend.sft"
    run --separate-stderr sf-tensor ls "$T/noend.sft"
    assert_failure 1
    assert_one_error_line
    assert_regex "$stderr" 'without end-of-stream'
    sf-wire send - --from "$S" --name emb.0 --error "encoder crashed" >"$T/err.sft" || true
    run --separate-stderr sf-tensor ls "$T/err.sft"
    assert_failure 1
    assert_one_error_line
    assert_regex "$stderr" 'upstream error: encoder crashed'
    sf-wire send - --from "$S" --name emb.0 | head -c 1000 >"$T/trunc.sft"
    run --separate-stderr sf-tensor convert "$T/trunc.sft" "$T/out.safetensors"
    assert_failure 1
    assert_one_error_line
    [ ! -e "$T/out.safetensors" ]
    run --separate-stderr sf-tensor diff - -
    assert_failure 2
}

@test "tree shows a checkpoint's nested dicts and a flat file's tensors" {
    run -0 sf-tensor tree "$SF_GOLDEN/checkpoints/tiny_dmd.pt"
    assert_line "/: dict of 2"
    assert_line --regexp '^/generator: dict of [0-9]+$'
    assert_line "/generator_ema/model.head.head.bias: tensor bf16 [64]"
    run -0 sf-tensor tree "$SF_GOLDEN/model/diffusion_pytorch_model.safetensors"
    assert_line --regexp '^head\.head\.bias	f32	\[64\]$'
    run -1 sf-tensor tree "$SF_GOLDEN/model/config.json"
}
