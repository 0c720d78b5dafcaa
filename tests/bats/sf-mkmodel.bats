#!/usr/bin/env bats
# sf-mkmodel: folders in the real formats, with the golden fixture's names and shapes,
# deterministic by seed; the other stages read what it writes.
bats_require_minimum_version 1.5.0
load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'

setup() { M="$BATS_TEST_TMPDIR/m"; }

same_names_shapes() { # $1 golden file, $2 ours, $3 optional grep -v filter
    sf-tensor ls "$1" | grep -Ev "${3:-^$}" | sort >"$BATS_TEST_TMPDIR/a"
    sf-tensor ls "$2" | sort >"$BATS_TEST_TMPDIR/b"
    diff "$BATS_TEST_TMPDIR/a" "$BATS_TEST_TMPDIR/b"
}

@test "tiny matches the golden model's tensor names, dtypes and shapes" {
    run -0 sf-mkmodel tiny "$M" --checkpoint "$M/ckpt.pt"
    same_names_shapes "$SF_GOLDEN/model/diffusion_pytorch_model.safetensors" "$M/diffusion_pytorch_model.safetensors"
    same_names_shapes "$SF_GOLDEN/model/models_t5_umt5-xxl-enc-bf16.pth" "$M/models_t5_umt5-xxl-enc-bf16.pth"
    # the whole VAE: the decoder and the encoder (sf-vae-encode, image-to-video)
    same_names_shapes "$SF_GOLDEN/model/Wan2.1_VAE.pth" "$M/Wan2.1_VAE.pth"
    same_names_shapes "$SF_GOLDEN/checkpoints/tiny_dmd.pt" "$M/ckpt.pt"
    # taew2_1.pth: the TAEHV tiny decoder at the golden one's widths (16/16/8/8, strides 1-2-2), which sf-decode takes
    same_names_shapes "$SF_GOLDEN/model/taehv_tiny.pth" "$M/taew2_1.pth"
    run -0 sf-decode --latents "$SF_GOLDEN/expect/taehv.safetensors:tiny.latents" --vae "$M/taew2_1.pth" \
        --save-video "$BATS_TEST_TMPDIR/v.safetensors"
    run -0 sf-tensor ls "$BATS_TEST_TMPDIR/v.safetensors"
    assert_output --partial "[1, 17, 3, 32, 48]"
    run -0 cat "$M/config.json"
    assert_output --partial '"dim": 256'
    assert_output --partial '"text_dim": 64'
    [ -s "$M/google/umt5-xxl/spiece.model" ]
}

@test "the tokenizer as spiece.model and as tokenizer.json, as a real folder has both: the same ids, but for literal special tokens" {
    run -0 sf-mkmodel tiny "$M" --only tokenizer
    [ -s "$M/google/umt5-xxl/spiece.model" ]
    python3 -c 'import json, sys; j = json.load(open(sys.argv[1])); assert j["model"]["type"] == "Unigram" and len(j["model"]["vocab"]) == 1000 and len(j["added_tokens"]) == 3' \
        "$M/google/umt5-xxl/tokenizer.json"
    local p="A red fox walks across the snow, 42 times! (x_y)"
    run -0 sf-encode --model-dir "$M" --no-cache --tokens-only --prompt "$p"
    local fast="$output"
    run -0 sf-encode --model-dir "$M" --tokenizer "$M/google/umt5-xxl/spiece.model" --no-cache --tokens-only --prompt "$p"
    assert_equal "$output" "$fast"
    [ "$(wc -w <<<"$fast")" -gt 10 ]
    run -0 sf-encode --model-dir "$M" --no-cache --tokens-only --prompt "a </s> b"
    assert_output --regexp '^[0-9]+ 1 [0-9]+ 1$' # ▁a </s> ▁b </s>: one id, not the pieces < / s >
    # the 1.3b preset: umT5's 300 <extra_id_N> above the 256000 pieces, N descending (256299 − N), inside its
    # 256384-row embedding
    run -0 sf-mkmodel 1.3b "$M.big" --only tokenizer
    run -0 sf-encode --model-dir "$M.big" --no-cache --tokens-only --prompt "<extra_id_0> <extra_id_299>"
    assert_output --regexp '^256299( [0-9]+)? 256000 1$'
}

@test "same seed gives identical files, another seed differs" {
    sf-mkmodel tiny "$M" --seed 3
    sf-mkmodel tiny "$M.2" --seed 3
    sf-mkmodel tiny "$M.3" --seed 4
    cmp "$M/diffusion_pytorch_model.safetensors" "$M.2/diffusion_pytorch_model.safetensors"
    cmp "$M/models_t5_umt5-xxl-enc-bf16.pth" "$M.2/models_t5_umt5-xxl-enc-bf16.pth"
    cmp "$M/Wan2.1_VAE.pth" "$M.2/Wan2.1_VAE.pth"
    cmp "$M/taew2_1.pth" "$M.2/taew2_1.pth"
    run ! cmp -s "$M/diffusion_pytorch_model.safetensors" "$M.3/diffusion_pytorch_model.safetensors"
    run -1 sf-tensor diff "$M/Wan2.1_VAE.pth" "$M.3/Wan2.1_VAE.pth"
}

@test "the values do not depend on the threads: one thread = every core, and the bytes of before the parameters ran in parallel" {
    sf-mkmodel tiny "$M" --seed 3 --checkpoint "$M/ck.pt"
    OMP_THREAD_LIMIT=1 sf-mkmodel tiny "$M.1" --seed 3 --checkpoint "$M.1/ck.pt"
    for f in diffusion_pytorch_model.safetensors models_t5_umt5-xxl-enc-bf16.pth Wan2.1_VAE.pth ck.pt; do
        cmp "$M/$f" "$M.1/$f"
    done
    # known answers: the files the serial generator wrote (each parameter its own stream, perturbed
    # checkpoints a second one), so that the e2e figures' random models stay the same across versions
    [ "$(sha256sum <"$M/diffusion_pytorch_model.safetensors" | cut -c1-64)" = 0071a332d511bb867aa713b86a8a3aa6ac69ca63910da46597789223ceb67f91 ]
    [ "$(sha256sum <"$M/ck.pt" | cut -c1-64)" = 7776d2412eaaca743ce11a99678187182796c09eecd435f3a752df0bbffe017f ]
    [ "$(sha256sum <"$M/models_t5_umt5-xxl-enc-bf16.pth" | cut -c1-64)" = a30f15fe52200cba731cda1f470fb70ad189f7bb5fcd3ef09e17096598420eee ]
}

@test "checkpoint generator and generator_ema differ from each other and from the base" {
    sf-mkmodel tiny "$M" --checkpoint "$M/ckpt.pt" --only dit
    sf-tensor convert "$M/ckpt.pt" "$BATS_TEST_TMPDIR/g.safetensors" --select generator
    sf-tensor convert "$M/ckpt.pt" "$BATS_TEST_TMPDIR/e.safetensors" --select generator_ema
    run -1 sf-tensor diff "$BATS_TEST_TMPDIR/g.safetensors" "$BATS_TEST_TMPDIR/e.safetensors"
    run -0 sf-tensor cat "$BATS_TEST_TMPDIR/g.safetensors" model.head.head.bias
}

@test "1.3b sizes: one-layer DiT has the real per-block shapes" {
    run -0 sf-mkmodel 1.3b "$M" --only config,dit --dit-layers 1
    run -0 sf-tensor ls "$M/diffusion_pytorch_model.safetensors"
    assert_line --regexp '^blocks\.0\.ffn\.0\.weight	F?f?32	\[8960, 1536\]$'
    assert_line --regexp '^patch_embedding\.weight	F?f?32	\[1536, 16, 1, 2, 2\]$'
    assert_line --regexp '^text_embedding\.0\.weight	F?f?32	\[1536, 4096\]$'
}

@test "bad arguments" {
    run -2 sf-mkmodel
    run -2 sf-mkmodel huge "$M"
    assert_output --partial "unknown model preset 'huge'"
    run -2 sf-mkmodel tiny "$M" --seed x
    run -1 sf-mkmodel tiny /proc/nope/m
    assert_output --partial "error:"
}
