#!/usr/bin/env bats
# sf-denoise: golden reproduction through the CLI (noise replayed), checkpoint selection, taps file
# layout, seeded reproducibility, wire output, and one-line errors without partial outputs.

bats_require_minimum_version 1.5.0
load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'

setup() {
    G="${SF_GOLDEN:-$BATS_TEST_DIRNAME/../golden}"
    P="$G/expect/dit_pipeline_base.safetensors"
    COMMON=(--model-dir "$G/model" --num_frames 9 --height 64 --width 96 --progress none --threads 2)
}

@test "base weights reproduce every golden pred (noise replayed)" {
    run sf-denoise "${COMMON[@]}" --prompt-embeds "$P:context.prompt_embeds" --noise "$P" \
        --save-latents "$BATS_TEST_TMPDIR/lat.safetensors" --dump-preds
    assert_success
    run sf-tensor diff "$BATS_TEST_TMPDIR/lat.safetensors" "$P" --rtol 1e-4 --atol 1e-4 -q
    assert_output --partial "15 compared, 0 mismatched"
}

@test "checkpoint: generator_ema by default, generator with --no_ema" {
    for mode in generator_ema generator; do
        E="$G/expect/dit_pipeline_$mode.safetensors"
        flag=""; [ "$mode" = generator ] && flag="--no_ema"
        run sf-denoise "${COMMON[@]}" --checkpoint_path "$G/checkpoints/tiny_dmd.pt" $flag \
            --prompt-embeds "$E:context.prompt_embeds" --noise "$E" \
            --save-latents "$BATS_TEST_TMPDIR/$mode.safetensors" --dump-preds
        assert_success
        run sf-tensor diff "$BATS_TEST_TMPDIR/$mode.safetensors" "$E" --rtol 1e-4 --atol 1e-4 -q
        assert_output --partial "15 compared, 0 mismatched"
    done
}

# the safetensors header (JSON, metadata included) of FILE
st_header() { tail -c +9 "$1" | head -c 4096 | tr -d '\0'; }

@test "missing checkpoint file: loud warning at start and end, base weights, recorded in the metadata" {
    run --separate-stderr sf-denoise "${COMMON[@]}" --checkpoint_path "$BATS_TEST_TMPDIR/nope.pt" \
        --prompt-embeds "$P:context.prompt_embeds" --noise "$P" --save-latents "$BATS_TEST_TMPDIR/l.safetensors" --dump-preds
    assert_success
    [ "$(printf '%s\n' "$stderr" | grep -c 'warning: .*nope.pt.*NOT the Self-Forcing model')" -eq 2 ]
    [[ "$(printf '%s\n' "$stderr" | tail -1)" == *"BASE Wan2.1 weights"* ]]
    run sf-tensor diff "$BATS_TEST_TMPDIR/l.safetensors" "$P" --rtol 1e-4 --atol 1e-4 -q
    assert_output --partial "15 compared, 0 mismatched"
    [[ "$(st_header "$BATS_TEST_TMPDIR/l.safetensors")" == *'"weights":"base '*"(checkpoint $BATS_TEST_TMPDIR/nope.pt not found)"* ]]
}

@test "--require-checkpoint: a missing checkpoint is one error line, exit 1, nothing written" {
    O="$BATS_TEST_TMPDIR/l.safetensors"
    run --separate-stderr sf-denoise "${COMMON[@]}" --checkpoint_path "$BATS_TEST_TMPDIR/nope.pt" --require-checkpoint \
        --prompt-embeds "$P:context.prompt_embeds" --save-latents "$O"
    assert_failure 1
    [ "$(printf '%s\n' "$stderr" | grep -c .)" -eq 1 ]
    [[ "$stderr" == "sf-denoise: error: checkpoint $BATS_TEST_TMPDIR/nope.pt not found"* ]]
    [ ! -e "$O" ]
    # with the checkpoint present it runs, and the metadata of latents and taps names it
    run sf-denoise "${COMMON[@]}" --checkpoint_path "$G/checkpoints/tiny_dmd.pt" --require-checkpoint \
        --prompt-embeds "$P:context.prompt_embeds" --save-latents "$O" \
        --layer_indices 0 --tap-select all --output_path "$BATS_TEST_TMPDIR/t.safetensors"
    assert_success
    [[ "$(st_header "$O")" == *"\"weights\":\"checkpoint $G/checkpoints/tiny_dmd.pt:generator_ema\""* ]]
    [[ "$(st_header "$BATS_TEST_TMPDIR/t.safetensors")" == *"\"weights\":\"checkpoint $G/checkpoints/tiny_dmd.pt:generator_ema\""* ]]
}

@test "taps: figure-4 .pt layout and taps.* / frames.* safetensors" {
    run sf-denoise "${COMMON[@]}" --prompt-embeds "$P:context.prompt_embeds" --noise "$P" \
        --layer_indices 0 2 --output_path "$BATS_TEST_TMPDIR/fig4.pt"
    assert_success
    assert_output --partial "info: wrote the attention taps to $BATS_TEST_TMPDIR/fig4.pt"
    run sf-tensor ls "$BATS_TEST_TMPDIR/fig4.pt"
    assert_output --partial "attention_weights/0/attn_logits"
    assert_output --partial "[1, 2, 72, 216]"
    run sf-denoise "${COMMON[@]}" --prompt-embeds "$P:context.prompt_embeds" --noise "$P" \
        --layer_indices 0 2 --tap-select all --output_path "$BATS_TEST_TMPDIR/all.safetensors"
    assert_success
    run sf-tensor diff "$BATS_TEST_TMPDIR/all.safetensors" "$G/expect/taps_base.safetensors" --rtol 1e-3 --atol 1e-3 -q
    assert_output --partial "30 compared, 0 mismatched"
    run sf-denoise "${COMMON[@]}" --prompt-embeds "$P:context.prompt_embeds" --noise "$P" \
        --layer_indices 2 --tap-mode frames --tap-select all --output_path "$BATS_TEST_TMPDIR/fr.safetensors"
    assert_success
    run sf-tensor ls "$BATS_TEST_TMPDIR/fr.safetensors"
    assert_output --partial "frames.L2.b2.s4"
    # frames + seed = the streaming aggregate (run_extraction_streaming.py), vs the golden
    run sf-denoise "${COMMON[@]}" --prompt-embeds "$P:context.prompt_embeds" --noise "$P" \
        --layer_indices 0 2 --tap-mode frames --output_path "$BATS_TEST_TMPDIR/st.safetensors"
    assert_success
    run sf-tensor diff "$BATS_TEST_TMPDIR/st.safetensors" "$G/expect/taps_base.safetensors" --rtol 1e-4 --atol 1e-5 -q
    assert_output --partial "4 compared, 0 mismatched"
}

@test "same seed gives identical bytes, another seed differs" {
    for s in 1 1b 2; do
        seed=${s%b}
        run sf-denoise "${COMMON[@]}" --prompt-embeds "$P:context.prompt_embeds" --seed "$seed" \
            --save-latents "$BATS_TEST_TMPDIR/s$s.safetensors"
        assert_success
    done
    cmp "$BATS_TEST_TMPDIR/s1.safetensors" "$BATS_TEST_TMPDIR/s1b.safetensors"
    run sf-tensor diff "$BATS_TEST_TMPDIR/s1.safetensors" "$BATS_TEST_TMPDIR/s2.safetensors" -q
    assert_failure
}

@test "--fp8: the block linears in float8 — other latents near the bf16 model's, said in the log and every output's weights" {
    run --separate-stderr sf-denoise "${COMMON[@]}" --prompt-embeds "$P:context.prompt_embeds" --noise "$P" --fp8 \
        --save-latents "$BATS_TEST_TMPDIR/f8.safetensors" --dump-preds --layer_indices 0 --tap-mode frames --tap-select all \
        --output_path "$BATS_TEST_TMPDIR/t8.safetensors"
    assert_success
    [[ "$stderr" == *"fp8: 30 of 30 block linears in float8 e4m3"* ]]
    [[ "$(st_header "$BATS_TEST_TMPDIR/f8.safetensors")" == *'"weights":"base '*', fp8 block linears (30)"'* ]]
    [[ "$(st_header "$BATS_TEST_TMPDIR/t8.safetensors")" == *', fp8 block linears (30)"'* ]]
    # every prediction differs from the reference's fp32 ones, but stays near them (fp8: ~2 % per forward;
    # measured: every pred within 0.08 + 0.08·|ref| of the golden's, in the fast and exact modes)
    run sf-tensor diff "$BATS_TEST_TMPDIR/f8.safetensors" "$P" --rtol 1e-4 --atol 1e-4 -q
    assert_output --partial "15 compared, 15 mismatched"
    run sf-tensor diff "$BATS_TEST_TMPDIR/f8.safetensors" "$P" --rtol 0.15 --atol 0.15 -q
    assert_output --partial "15 compared, 0 mismatched"
    # the same run again: the same bytes (the scales are the tensors' own, nothing carried between runs)
    run sf-denoise "${COMMON[@]}" --prompt-embeds "$P:context.prompt_embeds" --noise "$P" --fp8 \
        --save-latents "$BATS_TEST_TMPDIR/f8b.safetensors"
    assert_success
    cmp <(sf-tensor cat "$BATS_TEST_TMPDIR/f8.safetensors" latents) <(sf-tensor cat "$BATS_TEST_TMPDIR/f8b.safetensors" latents)
    run sf-denoise --bench tiny --model-dir "$G/model" --threads 2 --fp8
    assert_success
    assert_line --partial "denoise tiny fp8 block 0 (72 keys):"
}

@test "wire in/out: prompt_embeds from a stream, one latents message per block" {
    sf-wire send "$BATS_TEST_TMPDIR/in.sft" --from "$P" --name context.prompt_embeds
    run sf-denoise "${COMMON[@]}" --in "$BATS_TEST_TMPDIR/in.sft" --noise "$P" --out "$BATS_TEST_TMPDIR/lat.sft"
    assert_success
    run sf-wire cat "$BATS_TEST_TMPDIR/lat.sft"
    assert_success
    [ "$(grep -c 'latents' <<< "$output")" -eq 3 ]
    assert_output --partial "start_frame: 6"
    run sf-wire recv "$BATS_TEST_TMPDIR/lat.sft" --save "$BATS_TEST_TMPDIR/blocks.safetensors"
    assert_success
}

@test "bad inputs: one-line error, exit 1/2, no output file" {
    O="$BATS_TEST_TMPDIR/o.safetensors"
    SF_TRACE="$BATS_TEST_TMPDIR/trace" run --separate-stderr sf-denoise "${COMMON[@]}" --prompt-embeds "$P:no_such" --save-latents "$O"
    assert_failure 1
    [[ "$stderr" == *"no tensor 'no_such'"* ]]
    [ ! -e "$O" ]
    # found before the state and the device's one-time work (no 'ready' in the trace)
    ! grep -qs ' denoise ready ' "$BATS_TEST_TMPDIR/trace" || false
    # as is an input stream that cannot be opened
    SF_TRACE="$BATS_TEST_TMPDIR/trace" run --separate-stderr sf-denoise "${COMMON[@]}" --in "$BATS_TEST_TMPDIR/none/x.wire" --save-latents "$O"
    assert_failure
    ! grep -qs ' denoise ready ' "$BATS_TEST_TMPDIR/trace" || false
    run --separate-stderr sf-denoise "${COMMON[@]}" --prompt-embeds "$G/expect/dit_forward.safetensors:mid.text_embedding" --save-latents "$O"
    assert_failure 1
    [[ "$stderr" == *"expects [L, 64]"* ]]
    run --separate-stderr sf-denoise "${COMMON[@]}" --prompt-embeds "$P:context.prompt_embeds" --layer_indices 3 --output_path "$BATS_TEST_TMPDIR/t.pt"
    assert_failure 2
    [[ "$stderr" == *"layer 3 out of range"* ]]
    run --separate-stderr sf-denoise "${COMMON[@]}" --prompt-embeds "$P:context.prompt_embeds" --num_frames 10 --save-latents "$O"
    assert_failure 2
    [[ "$stderr" == *"multiple of num_frame_per_block"* ]]
    run --separate-stderr sf-denoise "${COMMON[@]}" --prompt-embeds "$P:context.prompt_embeds" --device cuda --save-latents "$O"
    assert_failure
    run --separate-stderr sf-denoise "${COMMON[@]}" --bogus-flag
    assert_failure 2
    # a model whose config does not match its weights: the mis-shaped tensor is named
    mkdir -p "$BATS_TEST_TMPDIR/m"
    sed 's/"ffn_dim": 384/"ffn_dim": 100/' "$G/model/config.json" > "$BATS_TEST_TMPDIR/m/config.json"
    ln -s "$(cd "$G/model" && pwd)/diffusion_pytorch_model.safetensors" "$BATS_TEST_TMPDIR/m/"
    run --separate-stderr sf-denoise --model-dir "$BATS_TEST_TMPDIR/m" --num_frames 9 --height 64 --width 96 \
        --prompt-embeds "$P:context.prompt_embeds" --save-latents "$O"
    assert_failure 1
    [[ "$stderr" == *"blocks.0.ffn.0.weight"* ]]
    # a checkpoint without generator / generator_ema
    sf-tensor convert "$G/checkpoints/tiny_dmd.pt" "$BATS_TEST_TMPDIR/flat.pt" --select generator
    run --separate-stderr sf-denoise "${COMMON[@]}" --checkpoint_path "$BATS_TEST_TMPDIR/flat.pt" \
        --prompt-embeds "$P:context.prompt_embeds" --save-latents "$O"
    assert_failure 1
    [[ "$stderr" == *"no 'generator'"* ]]
    [ ! -e "$O" ]
    [ "$(ls "$BATS_TEST_TMPDIR" | grep -c tmp)" -eq 0 ]
}

@test "missing output folders are found before any work: one line, exit 1, nothing written" {
    O="$BATS_TEST_TMPDIR/ok.safetensors"
    for bad in "--save-latents $BATS_TEST_TMPDIR/no/dir/l.safetensors" "--layer_indices 0 --output_path $BATS_TEST_TMPDIR/no/dir/t.pt" \
               "--out $BATS_TEST_TMPDIR/no/dir/lat.sft"; do
        run --separate-stderr sf-denoise "${COMMON[@]}" --prompt-embeds "$P:context.prompt_embeds" --save-latents "$O" $bad
        assert_failure 1
        [ "${#stderr_lines[@]}" -eq 1 ]
        [[ "$stderr" == *"folder $BATS_TEST_TMPDIR/no/dir does not exist (mkdir -p $BATS_TEST_TMPDIR/no/dir)"* ]]
        [ ! -e "$O" ]
        [ ! -e "$BATS_TEST_TMPDIR/no" ]
    done
}

@test "--device cuda / --gpu_id without a usable GPU: one line naming what is missing, exit 1, no output" {
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then skip "this machine has a GPU"; fi
    O="$BATS_TEST_TMPDIR/o.safetensors"
    for dev in "--device cuda" "--device cuda:1" "--gpu_id 0"; do
        run --separate-stderr sf-denoise "${COMMON[@]}" --prompt-embeds "$P:context.prompt_embeds" $dev --save-latents "$O"
        assert_failure 1
        [ "$(printf '%s\n' "$stderr" | grep -c 'error')" -eq 1 ]
        [[ "$stderr" == *"no usable CUDA GPU"*"--device cpu"* || "$stderr" == *"no CUDA support"* ]]
        [ ! -e "$O" ]
    done
}

@test "--progress: plain lines with elapsed time and ETA when stderr is not a terminal (auto), bar, none" {
    ARGS=(--model-dir "$G/model" --num_frames 9 --height 64 --width 96 --threads 2 --prompt-embeds "$P:context.prompt_embeds")
    for mode in "" "--progress auto" "--progress lines"; do
        run -0 --separate-stderr env -u SF_PROGRESS sf-denoise "${ARGS[@]}" $mode --save-latents "$BATS_TEST_TMPDIR/l.safetensors"
        # 14 forwards: the last block's refresh pass is skipped (nothing reads its cache; pipeline.h)
        [ "$(printf '%s\n' "$stderr" | grep -cE '^sf-denoise: block [1-3]/3 step [1-5]/5: elapsed [0-9.]+s, ETA [0-9.]+s')" -eq 14 ]
        [[ "$stderr" != *$'\r'* ]]
        [[ "$(printf '%s\n' "$stderr" | grep 'sf-denoise: block' | tail -1)" == *"block 3/3 step 4/5"*"ETA 0.0s (14/14 forwards)"* ]]
    done
    run -0 --separate-stderr sf-denoise "${ARGS[@]}" --progress bar --save-latents "$BATS_TEST_TMPDIR/l.safetensors"
    [[ "$stderr" == *$'\r'"sf-denoise: block 3/3 step 4/5"* ]]
    run -0 --separate-stderr sf-denoise "${ARGS[@]}" --progress none --save-latents "$BATS_TEST_TMPDIR/l.safetensors"
    [[ "$stderr" != *"block 1/3"* ]]
    run -2 --separate-stderr sf-denoise "${ARGS[@]}" --progress sometimes --save-latents "$BATS_TEST_TMPDIR/l.safetensors"
    [[ "$stderr" == *"expected auto, bar, lines or none"* ]]
}

@test "--check: the run's checks without input, output, weights load or state; exit 0 or the run's error" {
    C=(--model-dir "$G/model" --num_frames 9 --height 64 --width 96 --check)
    SF_TRACE="$BATS_TEST_TMPDIR/trace" run -0 --separate-stderr sf-denoise "${C[@]}" </dev/null
    [[ "$stderr" == *"check: ok: 9 frames in blocks of 3 at 64x96, weights: base $G/model/diffusion_pytorch_model.safetensors"* ]]
    ! grep -qs ' denoise ready ' "$BATS_TEST_TMPDIR/trace" || false   # no state, no device work
    [[ "$stderr" != *"parameters"* ]]                                  # the weights were not loaded
    run -0 --separate-stderr sf-denoise "${C[@]}" --checkpoint_path "$G/checkpoints/tiny_dmd.pt" --layer_indices all
    [[ "$stderr" == *"weights: checkpoint $G/checkpoints/tiny_dmd.pt:generator_ema"* ]]
    run -0 sf-denoise "${C[@]}" --layer_indices 0-2
    run -2 --separate-stderr sf-denoise "${C[@]}" --num_frames 10
    assert_equal "$stderr" "sf-denoise: error: num_frames 10 is not a multiple of num_frame_per_block 3"
    run -2 --separate-stderr sf-denoise "${C[@]}" --layer_indices 0 3
    [[ "$stderr" == *"layer 3 out of range"* ]]
    run -2 sf-denoise "${C[@]}" --height 60
    mkdir "$BATS_TEST_TMPDIR/m"
    cp "$G/model/config.json" "$BATS_TEST_TMPDIR/m/"
    run -1 --separate-stderr sf-denoise "${C[@]}" --model-dir "$BATS_TEST_TMPDIR/m"
    [[ "$stderr" == *"diffusion_pytorch_model.safetensors"* ]]
    [ "${#stderr_lines[@]}" -eq 1 ]
}

@test "bench tiny prints ms per block-forward and peak RSS" {
    run sf-denoise --bench tiny --model-dir "$G/model" --threads 2
    assert_success
    assert_output --partial "ms per block-forward"
    assert_output --partial "peak RSS"
}

@test "--bench: an unknown kind is one line naming every kind (attn and glue too), exit 2, nothing on stdout" {
    run -2 --separate-stderr sf-denoise --bench foo
    assert_equal "$output" ""
    assert_equal "$stderr" "sf-denoise: error: --bench: expected tiny, 1.3b-layer, 1.3b, attn, attn-small, glue, glue-small, kvc or kvc-small, got 'foo'"
}

@test "--noise-rng torch-cuda: the reference's torch.randn stream; sequence, batch and offset; one-line refusals" {
    local T=$BATS_TEST_TMPDIR D=(sf-denoise --model-dir "$G/model" --num_frames 3 --height 64 --width 96 --progress none
        --threads 2 --prompt-embeds "$P:context.prompt_embeds" --no_checkpoint --seed 7)
    run -0 "${D[@]}" --save-latents "$T/own.safetensors"
    run -0 --separate-stderr "${D[@]}" --noise-rng torch-cuda --save-latents "$T/torch.safetensors"
    [[ "$stderr" == *"noise: torch.randn on a CUDA generator seeded 7 at offset 0, as a card of 132 SMs x 2048 threads"* ]]
    ! cmp -s "$T/own.safetensors" "$T/torch.safetensors" || false
    # 3 frames of 16x8x12: every draw fits one wave of any card, so the geometry does not matter here
    run -0 "${D[@]}" --noise-rng torch-cuda:28:1536 --save-latents "$T/small.safetensors"
    cmp "$T/torch.safetensors" "$T/small.safetensors"
    # the second video of a seed-once loop starts where the first one's draws end: 4 launches of 4 offsets
    run -0 "${D[@]}" --noise-rng torch-cuda --noise-sequence 1 --save-latents "$T/seq1.safetensors"
    run -0 "${D[@]}" --noise-rng torch-cuda --noise-offset 16 --save-latents "$T/off16.safetensors"
    cmp "$T/seq1.safetensors" "$T/off16.safetensors"
    ! cmp -s "$T/seq1.safetensors" "$T/torch.safetensors" || false
    run -0 "${D[@]}" --noise-rng torch-cuda --noise-batch 2:1 --save-latents "$T/b21.safetensors"
    ! cmp -s "$T/b21.safetensors" "$T/torch.safetensors" || false
    run -0 "${D[@]}" --noise-rng torch-cuda --noise-batch 1:0 --save-latents "$T/b10.safetensors"
    cmp "$T/b10.safetensors" "$T/torch.safetensors"
    run -2 --separate-stderr "${D[@]}" --noise-rng torch --check
    assert_equal "$stderr" "sf-denoise: error: --noise-rng: expected sfpipe, torch-cuda or torch-cuda:SMS:THREADS, got 'torch'"
    run -2 --separate-stderr "${D[@]}" --noise-rng torch-cuda:132:1000 --check
    [[ "$stderr" == "sf-denoise: error: --noise-rng torch-cuda:SMS:THREADS: "*"got 'torch-cuda:132:1000'" ]]
    run -2 --separate-stderr "${D[@]}" --noise-rng torch-cuda --noise-offset 6 --check
    assert_equal "$stderr" "sf-denoise: error: --noise-offset 6: PyTorch's CUDA generator moves in multiples of 4"
    run -2 --separate-stderr "${D[@]}" --noise-sequence 1 --check
    assert_equal "$stderr" "sf-denoise: error: --noise-sequence needs --noise-rng torch-cuda"
    run -2 --separate-stderr "${D[@]}" --noise-rng torch-cuda --noise-batch 2:2 --check
    [[ "$stderr" == *"--noise-batch B:S: "*"got '2:2'" ]]
    run -2 --separate-stderr "${D[@]}" --noise-rng torch-cuda --noise "$P" --check
    assert_equal "$stderr" "sf-denoise: error: --noise replays its own draws: it takes no --noise-rng"
}

@test "endless: what a run of --num_frames 0 cannot have is one line, exit 2, nothing written (one rule: pipeline.c)" {
    local T=$BATS_TEST_TMPDIR/out D=(sf-denoise --model-dir "$G/model" --num_frames 0 --height 64 --width 96 --progress none
        --threads 2 --prompt-embeds "$P:context.prompt_embeds" --no_checkpoint)
    mkdir "$T"
    local torch="sf-denoise: error: --noise-rng torch-cuda needs a finite run (the reference has no endless one)"
    local cache="sf-denoise: error: --num_frames 0 (endless) needs a rolling KV cache (--local_attn_size N) and writes only --out (no --save-latents, --output_path or --noise)"
    run -2 --separate-stderr "${D[@]}" --local_attn_size 6 --noise-rng torch-cuda --check
    assert_equal "$stderr" "$torch"
    run -2 --separate-stderr "${D[@]}" --noise-rng torch-cuda --noise "$P" --check # the endless rule first
    assert_equal "$stderr" "$torch"
    run -2 --separate-stderr "${D[@]}" --local_attn_size -1 --check
    assert_equal "$stderr" "$cache"
    run -2 --separate-stderr "${D[@]}" --local_attn_size 6 --noise "$P" --check
    assert_equal "$stderr" "$cache"
    run -2 --separate-stderr "${D[@]}" --local_attn_size 6 --save-latents "$T/l.safetensors"
    assert_equal "$stderr" "$cache"
    run -2 --separate-stderr "${D[@]}" --local_attn_size 6 --output_path "$T/t.pt"
    assert_equal "$stderr" "$cache"
    run -0 --separate-stderr "${D[@]}" --local_attn_size 6 --check
    run ls -A "$T"
    assert_output ""
}

# --initial-latents (the reference's initial_latent: pipeline.h). st_frames OUT DST=FILE:NAME[@A-B]...: a safetensors
# file of tensors and frame ranges cut from others (tests/bats/st_frames.py)
st_frames() { python3 "$BATS_TEST_DIRNAME/st_frames.py" "$@"; }

@test "--initial-latents: a run's first block + the rest of its noise extends to that run bit for bit; the wire and the decode carry the whole video" {
    local T=$BATS_TEST_TMPDIR
    run sf-denoise "${COMMON[@]}" --prompt-embeds "$P:context.prompt_embeds" --noise "$P" --save-latents "$T/a.safetensors"
    assert_success
    # its first block as the initial latents; the noise of blocks 1 and 2 as a 6-frame run's (draws 3..8 as 0..5)
    st_frames "$T/init.safetensors" "latents=$T/a.safetensors:latents@0-3"
    local args=("noise.init=$P:noise.init@3-9") k
    for k in 0 1 2 3 4 5; do args+=("noise.renoise.$k=$P:noise.renoise.$((k + 3))"); done
    st_frames "$T/noise.safetensors" "${args[@]}"
    # the context forward at t = 0 writes the cache the run's own refresh pass wrote: the same bits after it
    run sf-denoise "${COMMON[@]}" --num_frames 6 --prompt-embeds "$P:context.prompt_embeds" --noise "$T/noise.safetensors" \
        --initial-latents "$T/init.safetensors" --save-latents "$T/b.safetensors" --out "$T/b.wire"
    assert_success
    run sf-tensor diff "$T/a.safetensors" "$T/b.safetensors"
    assert_output --partial "1 compared, 0 mismatched"
    # the same from a torch.save file (the reference's format; its dict key picked by name)
    run sf-tensor convert "$T/init.safetensors" "$T/init.pt"
    assert_success
    run sf-denoise "${COMMON[@]}" --num_frames 6 --prompt-embeds "$P:context.prompt_embeds" --noise "$T/noise.safetensors" \
        --initial-latents "$T/init.pt:latents" --save-latents "$T/c.safetensors"
    assert_success
    run sf-tensor diff "$T/a.safetensors" "$T/c.safetensors"
    assert_output --partial "1 compared, 0 mismatched"
    # the wire: the initial latents first (block -1, start 0), then the generated blocks at frames 3 and 6
    run sf-wire cat "$T/b.wire"
    assert_line --index 0 --regexp '^tensor latents f32 \[1, 3, 16, 8, 12\] \{block: -1, start_frame: 0, '
    assert_line --index 1 --regexp '^tensor latents f32 \[1, 3, 16, 8, 12\] \{block: 0, start_frame: 3, '
    assert_line --index 2 --regexp '^tensor latents f32 \[1, 3, 16, 8, 12\] \{block: 1, start_frame: 6, '
    assert_line --index 3 "end -"
    # sf-decode of the stream is the video of the whole run
    run sf-decode --model-dir "$G/model" --in "$T/b.wire" --save-video "$T/vb.safetensors" --progress none
    assert_success
    run sf-decode --model-dir "$G/model" --latents "$T/a.safetensors" --save-video "$T/va.safetensors" --progress none
    assert_success
    run sf-tensor diff "$T/va.safetensors" "$T/vb.safetensors"
    assert_output --partial "1 compared, 0 mismatched"
}

@test "--initial-latents: image-to-video (independent first frame): frame 0 kept, blocks of 3 after it, both noise streams, taps of the generated forwards only" {
    local T=$BATS_TEST_TMPDIR
    printf '%s\n' "denoising_step_list: [1000, 750, 500, 250]" "warp_denoising_step: true" "num_frame_per_block: 3" \
        "independent_first_frame: true" >"$T/i2v.yaml"
    st_frames "$T/img.safetensors" "latents=$P:output@0-1"
    local D=(sf-denoise "${COMMON[@]}" --config_path "$T/i2v.yaml" --num_frames 6 --prompt-embeds "$P:context.prompt_embeds"
        --initial-latents "$T/img.safetensors")
    run --separate-stderr "${D[@]}" --save-latents "$T/a.safetensors" --layer_indices 0 --tap-select all \
        --output_path "$T/taps.safetensors"
    assert_success
    # the logits announced before the run are the file's: 2 heads x 72 queries x (5 x 96 + 5 x 168 keys) in f16
    [[ "$stderr" == *"(380160 bytes) of logits"* ]]
    run "${D[@]}" --save-latents "$T/b.safetensors" --layer_indices 0 --tap-select all --output_path "$T/taps2.safetensors"
    assert_success
    run sf-tensor diff "$T/a.safetensors" "$T/b.safetensors" # seeded: reproducible (a tap's explicit attention
    # differs from the untapped path in the last bits, with initial latents or without)
    assert_output --partial "1 compared, 0 mismatched"
    run sf-tensor ls "$T/a.safetensors"
    assert_output --partial $'latents\tf32\t[1, 7, 16, 8, 12]'
    st_frames "$T/a0.safetensors" "latents=$T/a.safetensors:latents@0-1"
    run sf-tensor diff "$T/a0.safetensors" "$T/img.safetensors"
    assert_output --partial "1 compared, 0 mismatched"
    # the context forward is not tapped: blocks 0 and 1 (frames 1-3, 4-6) x steps 0-4, keys from frame 0 on
    run sf-tensor ls "$T/taps.safetensors"
    [ "$(printf '%s\n' "$output" | grep -c '^taps\.L0\.')" -eq 10 ]
    assert_output --partial $'taps.L0.b0.s0\tf16\t[1, 2, 72, 96]'
    assert_output --partial $'taps.L0.b1.s4\tf16\t[1, 2, 72, 168]'
    refute_output --partial "taps.L0.b-1"
    refute_output --partial "taps.L0.b2"
    # the streaming dict (frames mode, seed): indexed by absolute frame over the whole video of 7 frames
    run "${D[@]}" --layer_indices 0 --tap-mode frames --output_path "$T/stream.pt"
    assert_success
    run sf-tensor ls "$T/stream.pt"
    assert_line $'full_frame_attention\tf16\t[2, 7, 7]'
    # the reference's noise stream: drawn for the 6 generated frames, a different video with the same first frame
    run "${D[@]}" --noise-rng torch-cuda --save-latents "$T/c.safetensors"
    assert_success
    run sf-tensor diff "$T/a.safetensors" "$T/c.safetensors"
    assert_output --partial "1 compared, 1 mismatched"
    st_frames "$T/c0.safetensors" "latents=$T/c.safetensors:latents@0-1"
    run sf-tensor diff "$T/c0.safetensors" "$T/img.safetensors"
    assert_output --partial "1 compared, 0 mismatched"
}

@test "--initial-latents: an endless run starts from them (they go out first)" {
    local T=$BATS_TEST_TMPDIR
    st_frames "$T/init.safetensors" "x=$P:output@0-3"
    run sf-denoise "${COMMON[@]}" --num_frames 0 --local_attn_size 6 --rope-frames 12 --prompt-embeds "$P:context.prompt_embeds" \
        --initial-latents "$T/init.safetensors" --out "$T/e.wire"
    assert_success
    run sf-wire cat "$T/e.wire"
    assert_line --index 0 --regexp '^tensor latents f32 \[1, 3, 16, 8, 12\] \{block: -1, start_frame: 0, '
    assert_line --index 3 --regexp '^tensor latents f32 \[1, 3, 16, 8, 12\] \{block: 2, start_frame: 9, '
    assert_line --index 4 "end -"
}

@test "--initial-latents: what does not fit the run is one line, exit 2, before any model work, nothing written" {
    local T=$BATS_TEST_TMPDIR/out
    mkdir "$T"
    st_frames "$BATS_TEST_TMPDIR/two.safetensors" "latents=$P:output@0-2"
    local D=(sf-denoise "${COMMON[@]}" --prompt-embeds "$P:context.prompt_embeds" --save-latents "$T/l.safetensors")
    local two=$BATS_TEST_TMPDIR/two.safetensors
    run -2 --separate-stderr "${D[@]}" --num_frames 6 --initial-latents "$two"
    assert_equal "$stderr" "sf-denoise: error: --initial-latents $two: initial latents of 2 frames: the count must be a multiple of num_frame_per_block 3 (the frames run in the blocks a video starts with)"
    run -2 --separate-stderr "${D[@]}" --num_frames 7 --initial-latents "$P:output"
    assert_equal "$stderr" "sf-denoise: error: --initial-latents $P:output: num_frames 7 is not a multiple of num_frame_per_block 3 (with initial latents every generated block has 3 frames)"
    run -2 --separate-stderr "${D[@]}" --num_frames 6 --height 32 --width 48 --initial-latents "$P:output"
    assert_equal "$stderr" "sf-denoise: error: --initial-latents $P:output has 16 channels of 8x12; this run's latents have 16 of 4x6 (--height 32 --width 48)"
    run -2 --separate-stderr "${D[@]}" --num_frames 6 --initial-latents "$P:context.prompt_embeds"
    assert_equal "$stderr" "sf-denoise: error: --initial-latents $P:context.prompt_embeds has shape [1, 512, 64], expected [1, T, 16, h, w] or [T, 16, h, w]"
    run -2 --separate-stderr "${D[@]}" --num_frames 6 --initial-latents "$P:nope"
    assert_equal "$stderr" "sf-denoise: error: --initial-latents $P: no tensor named nope (pick one with FILE:NAME)"
    run -2 --separate-stderr "${D[@]}" --num_frames 1023 --initial-latents "$P:output"
    assert_equal "$stderr" "sf-denoise: error: --initial-latents $P:output: 9 frames + 1023 more pass the RoPE table's 1024 positions"
    run -1 --separate-stderr "${D[@]}" --num_frames 6 --initial-latents "$BATS_TEST_TMPDIR/none.safetensors"
    [[ "$stderr" == "sf-denoise: error: cannot open $BATS_TEST_TMPDIR/none.safetensors"* ]]
    run ls -A "$T"
    assert_output ""
}

@test "--sink-ablate K [--sink-ablate-layers L]: the first block as before, later ones not; recorded in weights; taps of ablated layers hold the keys they attended; errors" {
    D="$BATS_TEST_TMPDIR"
    IN=(--prompt-embeds "$P:context.prompt_embeds" --noise "$P")
    sf-denoise "${COMMON[@]}" "${IN[@]}" --save-latents "$D/plain.safetensors"
    run -0 --separate-stderr sf-denoise "${COMMON[@]}" "${IN[@]}" --save-latents "$D/ab.safetensors" --sink-ablate 1
    [[ "$stderr" == *"sink ablation: layers all skip the first 1 key frame of their context"* ]] || false
    # layer 2 only; the same run with layers 0 (not ablated) and 2 (ablated) tapped in probs mode: the same latents
    run -0 sf-denoise "${COMMON[@]}" "${IN[@]}" --save-latents "$D/ab2.safetensors" --sink-ablate 2 --sink-ablate-layers 2
    run -0 sf-denoise "${COMMON[@]}" "${IN[@]}" --save-latents "$D/ab2t.safetensors" --sink-ablate 2 \
        --sink-ablate-layers 2 --layer_indices 0 2 --tap-mode probs --tap-select all --output_path "$D/t.safetensors"
    run -0 python3 - "$D" "$BATS_TEST_DIRNAME" <<'PY'
import json, struct, sys
sys.path.insert(0, sys.argv[2])
from st_read import load
d = sys.argv[1]
mp, p = load(d + "/plain.safetensors"); ma, a = load(d + "/ab.safetensors"); m2, a2 = load(d + "/ab2.safetensors")
assert load(d + "/ab2t.safetensors")[1] == a2, "taps changed the ablated run"
fr = len(p) // 9  # 9 latent frames, blocks of 3
for name, x in (("all layers", a), ("layer 2", a2)):
    assert x[:3 * fr] == p[:3 * fr], name + ": the first block (no context) changed"
    assert all(x[b * 3 * fr:(b + 1) * 3 * fr] != p[b * 3 * fr:(b + 1) * 3 * fr] for b in (1, 2)), name + ": a later block equals the plain run"
assert a2 != a
assert ma["weights"] == mp["weights"] + ", sink-ablated (1 frame, layers all)", ma["weights"]
assert m2["weights"] == mp["weights"] + ", sink-ablated (2 frames, layers 2)", m2["weights"]
f = open(d + "/t.safetensors", "rb"); n = struct.unpack("<Q", f.read(8))[0]; h = json.loads(f.read(n))
fw = {(x["block"], x["step"]): x for x in json.loads(h["__metadata__"]["forwards"])}
# the window (layer 0 attends it all); layer 2 its frames from 2: block 1 has 3 frames of context, block 2 six
assert fw[(2, 0)]["key_frames"] == list(range(9)) and fw[(2, 0)]["layer_key_frames"] == {"2": list(range(2, 9))}, fw
assert fw[(1, 4)]["key_frames"] == list(range(6)) and fw[(1, 4)]["layer_key_frames"] == {"2": list(range(2, 6))}, fw
assert "layer_key_frames" not in fw[(0, 0)], fw  # no context: nothing skipped
assert h["__metadata__"]["weights"].endswith("sink-ablated (2 frames, layers 2)")
def tensor(name):
    e = h[name]; a, b = e["data_offsets"]; f.seek(8 + n + a)
    return e["shape"], struct.unpack("<%df" % ((b - a) // 4), f.read(b - a))
for L, kf in ((0, 9), (2, 7)):  # every query frame's mass sums to 1 over the key slots its layer attended
    sh, v = tensor("probs.L%d.b2.s0" % L)
    assert sh == [sh[0], 3, kf], sh
    assert all(abs(sum(v[r * kf:(r + 1) * kf]) - 1) < 1e-5 for r in range(sh[0] * 3))
PY
    # every layer ablated and tapped: key_frames is still the window, each layer's own beside it
    run -0 sf-denoise "${COMMON[@]}" "${IN[@]}" --sink-ablate 1 --layer_indices all --tap-mode frames \
        --output_path "$D/all.safetensors"
    run -0 python3 -c 'import json,struct,sys; f=open(sys.argv[1],"rb"); n=struct.unpack("<Q",f.read(8))[0]
print(json.dumps(json.loads(json.loads(f.read(n))["__metadata__"]["forwards"])[2], sort_keys=True))' "$D/all.safetensors"
    assert_output '{"block": 2, "key_frames": [0, 1, 2, 3, 4, 5, 6, 7, 8], "layer_key_frames": {"0": [1, 2, 3, 4, 5, 6, 7, 8], "1": [1, 2, 3, 4, 5, 6, 7, 8], "2": [1, 2, 3, 4, 5, 6, 7, 8]}, "query_frames": 3, "start_frame": 6, "step": 0}'
    # the figure-4 .pt: the ablated layer's entry says which frames its 7 slots hold (the others' are 0..8)
    run -0 sf-denoise "${COMMON[@]}" "${IN[@]}" --sink-ablate 2 --sink-ablate-layers 2 --layer_indices 0 2 \
        --output_path "$D/fig4.pt"
    run -0 sf-tensor tree "$D/fig4.pt"
    for k in "attention_weights/0: dict of 8" "attention_weights/1: dict of 9" "attention_weights/1/num_key_frames: int 7" \
        "attention_weights/1/key_frames: list of 7" "attention_weights/1/key_frames/0: int 2" "key_frames: list of 9"; do
        assert_line "/$k"
    done
    # sf-taps compare / report: the ablated layer's first key slot is frame 2, and the report says so
    run -0 --separate-stderr sf-taps compare "$D/t.safetensors" "$D/t.safetensors" --labels a b
    assert_line --index 1 --regexp '^0,0,a,2,0,.*,0$'
    [[ "$(grep -c '^2,[0-9]*,[ab],2,0,.*,2$' <<<"$output")" -ge 2 ]] || false
    run -0 sf-taps report "$D/t.safetensors" -o "$D/r.html"
    grep -q '(frame 2, ablated)' "$D/r.html"
    grep -q 'attended no key frame before the one named' "$D/r.html"
    # its mass by key frame: frames 0 and 1 not attended (grey), layer 0's over all nine
    grep -qF '<title>L2 frame 1: nan</title>' "$D/r.html"
    grep -qE '<title>L2 frame 2: 0\.[0-9]+</title>' "$D/r.html"
    grep -qE '<title>L0 frame 1: 0\.[0-9]+</title>' "$D/r.html"
    # errors, before any work: the layers without K, out of range, bad syntax
    run -2 --separate-stderr sf-denoise "${COMMON[@]}" "${IN[@]}" --save-latents "$D/x.safetensors" --sink-ablate-layers 1
    assert_equal "$stderr" "sf-denoise: error: --sink-ablate-layers goes with --sink-ablate K"
    run -2 --separate-stderr sf-denoise "${COMMON[@]}" --check --sink-ablate 1 --sink-ablate-layers 9
    assert_equal "$stderr" "sf-denoise: error: --sink-ablate-layers: layer 9 out of range (the model has 3 layers: 0..2)"
    run -2 --separate-stderr sf-denoise "${COMMON[@]}" --check --sink-ablate 1 --sink-ablate-layers x
    assert_equal "$stderr" "sf-denoise: error: --sink-ablate-layers: 'x' is not a layer, a range A-B, a list A,B or 'all'"
    run -2 --separate-stderr sf-denoise "${COMMON[@]}" --check --sink-ablate -1
    [[ "$stderr" == "sf-denoise: error: --sink-ablate"* ]] || false
    [ ! -e "$D/x.safetensors" ]
}

@test "--sink-rope realign [--sink-rope-gap N]: blocks before the first eviction as the plain rolling run, later ones not; recorded in weights; errors" {
    D="$BATS_TEST_TMPDIR"
    IN=(--prompt-embeds "$P:context.prompt_embeds" --noise "$P" --local_attn_size 6 --sink_size 3)
    sf-denoise "${COMMON[@]}" "${IN[@]}" --save-latents "$D/plain.safetensors"
    run -0 --separate-stderr sf-denoise "${COMMON[@]}" "${IN[@]}" --save-latents "$D/re.safetensors" --sink-rope realign
    [[ "$stderr" == *"sink RoPE realign: once eviction opens a gap, the 3 sink frames move in time to 0 frames before the oldest recent frame"* ]] || false
    # a gap of 3: block 2 (the sink, then frames 6-8) needs no shift (6 - 3 - 3), so nothing moves in 9 frames
    run -0 sf-denoise "${COMMON[@]}" "${IN[@]}" --save-latents "$D/gap3.safetensors" --sink-rope realign --sink-rope-gap 3
    # taps beside it: the same latents, and the tap file's weights say what ran
    run -0 sf-denoise "${COMMON[@]}" "${IN[@]}" --save-latents "$D/ret.safetensors" --sink-rope realign \
        --layer_indices 0 --tap-mode frames --output_path "$D/t.safetensors"
    run -0 python3 - "$D" "$BATS_TEST_DIRNAME" <<'PY'
import json, struct, sys
sys.path.insert(0, sys.argv[2])
from st_read import load
d = sys.argv[1]
mp, p = load(d + "/plain.safetensors"); mr, r = load(d + "/re.safetensors"); mg, g = load(d + "/gap3.safetensors")
assert load(d + "/ret.safetensors")[1] == r, "taps changed the realigned run"
fr = len(p) // 9  # 9 latent frames, blocks of 3; block 2 is the first to evict
assert r[:6 * fr] == p[:6 * fr], "a block before the first eviction changed"
assert r[6 * fr:] != p[6 * fr:], "block 2 equals the plain rolling run"
assert g == p, "gap 3: nothing should have moved"
assert mr["weights"] == mp["weights"] + ", sink RoPE realigned (gap 0)", mr["weights"]
assert mg["weights"] == mp["weights"] + ", sink RoPE realigned (gap 3)", mg["weights"]
mt = load(d + "/t.safetensors", "-")[0]
assert mt["weights"] == mr["weights"]
# each forward's facts: block 2's window is the sink, then frames 6-8, its sink keys 3 frames later in time
fw = {(x["block"], x["step"]): x for x in json.loads(mt["forwards"])}
assert fw[(2, 0)]["key_frames"] == [0, 1, 2, 6, 7, 8] and fw[(2, 0)]["sink_shift"] == 3, fw[(2, 0)]
assert all("sink_shift" not in fw[(b, 0)] for b in (0, 1)), fw
PY
    # errors, before any work and without outputs
    run -2 --separate-stderr sf-denoise "${COMMON[@]}" "${IN[@]}" --save-latents "$D/x.safetensors" --sink-rope sideways
    assert_equal "$stderr" "sf-denoise: error: --sink-rope must be absolute or realign"
    run -2 --separate-stderr sf-denoise "${COMMON[@]}" "${IN[@]}" --save-latents "$D/x.safetensors" --sink-rope-gap 2
    assert_equal "$stderr" "sf-denoise: error: --sink-rope-gap goes with --sink-rope realign"
    run -2 --separate-stderr sf-denoise "${COMMON[@]}" --prompt-embeds "$P:context.prompt_embeds" \
        --save-latents "$D/x.safetensors" --sink-rope realign
    [[ "$stderr" == "sf-denoise: error: --sink-rope realign needs a rolling KV cache with a sink"* ]] || false
    run -2 --separate-stderr sf-denoise "${COMMON[@]}" "${IN[@]}" --sink_size 0 --save-latents "$D/x.safetensors" \
        --sink-rope realign
    [[ "$stderr" == *"(--local_attn_size N and --sink_size > 0; this run has 6 and 0)" ]] || false
    run -2 --separate-stderr sf-denoise "${COMMON[@]}" "${IN[@]}" --save-latents "$D/x.safetensors" --sink-rope realign \
        --sink-rope-gap -1
    [[ "$stderr" == "sf-denoise: error: --sink-rope-gap"* ]] || false
    [ ! -e "$D/x.safetensors" ]
}

@test "--pc-budget N: Deep Forcing's released compression: blocks before the first overflow as the plain rolling run, later ones not; the window, the sink's shift and the settings recorded; errors" {
    D="$BATS_TEST_TMPDIR"
    IN=(--prompt-embeds "$P:context.prompt_embeds" --noise "$P" --local_attn_size 6 --sink_size 1)
    sf-denoise "${COMMON[@]}" "${IN[@]}" --save-latents "$D/plain.safetensors"
    run -0 --separate-stderr sf-denoise "${COMMON[@]}" "${IN[@]}" --save-latents "$D/pc.safetensors" --pc-budget 5 \
        --pc-recent 3 --layer_indices all --tap-mode probs --tap-select all --output_path "$D/t.safetensors"
    [[ "$stderr" == *"KV compress (Deep Forcing's release): when a block would overflow the cache every layer keeps the sink, the 1 frames' worth of tokens its recent queries score highest and the newest 3 frames"* ]] || false
    run -0 sf-denoise "${COMMON[@]}" "${IN[@]}" --save-latents "$D/pc0.safetensors" --pc-budget 5 --pc-recent 3
    run -0 sf-denoise "${COMMON[@]}" "${IN[@]}" --save-latents "$D/pc1.safetensors" --pc-budget 5 --pc-recent 3 --pc-max-reuse 0
    run -0 python3 - "$D" "$BATS_TEST_DIRNAME" <<'PY'
import json, sys
sys.path.insert(0, sys.argv[2])
from st_read import load
d = sys.argv[1]
mp, p = load(d + "/plain.safetensors"); mc, c = load(d + "/pc.safetensors")
assert load(d + "/pc0.safetensors")[1] == c, "taps changed the compressed run"
assert load(d + "/pc1.safetensors")[1] == c, "one compression: the reuse limit cannot matter"
fr = len(p) // 9  # 9 latent frames, blocks of 3; block 2 is the first to overflow the 6-frame cache
assert c[:6 * fr] == p[:6 * fr], "a block before the first compression changed"
assert c[6 * fr:] != p[6 * fr:], "block 2 equals the plain rolling run"
assert mc["weights"] == mp["weights"] + ", KV cache compressed as Deep Forcing's release (budget 5, recent 3)", mc["weights"]
mt = load(d + "/t.safetensors", "-")[0]
assert mt["weights"] == mc["weights"] and (mt["pc_budget"], mt["pc_recent"], mt["pc_max_reuse"]) == ("5", "3", "7"), mt
# block 2's window: the sink, one frame's worth of kept tokens (-1), its own frames; the sink moved to end at the
# kept frames counted back from the block: 6 - 5 = frame 1
fw = {(x["block"], x["step"]): x for x in json.loads(mt["forwards"])}
assert fw[(2, 0)]["key_frames"] == [0, -1, 6, 7, 8], fw[(2, 0)]
assert fw[(2, 0)]["sink_shift"] == 1 and fw[(2, 2)]["sink_shift"] == 1, fw[(2, 0)]
assert fw[(1, 0)]["key_frames"] == [0, 1, 2, 3, 4, 5] and "sink_shift" not in fw[(1, 0)], fw[(1, 0)]
# where each layer's kept tokens came from: a frame's worth (24 tokens, one set for every head) of candidates 1-5
kf = fw[(2, 0)]["kept_frames"]
assert sorted(kf) == ["0", "1", "2"] and "kept_frames" not in fw[(1, 0)], fw[(2, 0)]
assert all(sum(n for f, n in kf[l]) == 24 and all(1 <= f <= 5 for f, n in kf[l]) for l in kf), kf
PY
    # errors, before any work and without outputs
    run -2 --separate-stderr sf-denoise "${COMMON[@]}" --prompt-embeds "$P:context.prompt_embeds" \
        --save-latents "$D/x.safetensors" --pc-budget 5
    [[ "$stderr" == "sf-denoise: error: --pc-budget needs a rolling KV cache"* ]] || false
    run -2 --separate-stderr sf-denoise "${COMMON[@]}" "${IN[@]}" --save-latents "$D/x.safetensors" --pc-budget 5 --pc-recent 2
    [[ "$stderr" == *"--pc-recent 2: the recent frames must hold a block (3 frames)"* ]] || false
    run -2 --separate-stderr sf-denoise "${COMMON[@]}" "${IN[@]}" --save-latents "$D/x.safetensors" --pc-budget 3
    [[ "$stderr" == *"--pc-budget 3: the sink (1 frame) and the recent frames (4) need 5"* ]] || false
    run -2 --separate-stderr sf-denoise "${COMMON[@]}" "${IN[@]}" --save-latents "$D/x.safetensors" --pc-budget 7
    [[ "$stderr" == *"--pc-budget 7: the cache holds 6 frames (local_attn_size)"* ]] || false
    run -2 --separate-stderr sf-denoise "${COMMON[@]}" "${IN[@]}" --save-latents "$D/x.safetensors" --pc-recent 3
    [[ "$stderr" == *"--pc-recent and --pc-max-reuse go with --pc-budget N"* ]] || false
    run -2 --separate-stderr sf-denoise "${COMMON[@]}" "${IN[@]}" --save-latents "$D/x.safetensors" --pc-budget 5 \
        --pc-recent 3 --kv-compress 1
    [[ "$stderr" == *"--pc-budget and --kv-compress are two rules for one cache: give one"* ]] || false
    run -2 --separate-stderr sf-denoise "${COMMON[@]}" "${IN[@]}" --save-latents "$D/x.safetensors" --pc-budget 5 \
        --pc-recent 3 --sink-rope realign
    [[ "$stderr" == *"--pc-budget moves the sink itself, as Deep Forcing's code does: leave --sink-rope out"* ]] || false
    run -2 --separate-stderr sf-denoise "${COMMON[@]}" "${IN[@]}" --pc-budget 5 --pc-recent 3 --layer_indices 0 \
        --tap-mode frames --output_path "$D/x.pt"
    [[ "$stderr" == *"--pc-budget keeps tokens of mixed frames, which frames mode's streaming matrix"* ]] || false
    [ ! -e "$D/x.safetensors" ] && [ ! -e "$D/x.pt" ]
}

# Deep Forcing's released code on the tiny model (tests/heldout/make_deepforcing.py: its causal_model.py / _DS.py and
# pipeline, 33 latent frames of 4x6 in blocks of 3, a 21-frame window): tests/golden/expect/$1.safetensors (+ .yaml, its
# run config). sf-denoise replays its noise with the flags "$2" (a word list): every prediction within 1e-4; with "$3"
# instead, those of the blocks before block $4 still within it, the rest and the latents not; the same for "$5", $6.
release_case() {
    local D="$BATS_TEST_TMPDIR" E="$G/expect/$1.safetensors" f flags first
    local run=(--model-dir "$G/model" --config_path "$G/expect/$1.yaml" --no_checkpoint --num_frames 33 --height 32
               --width 48 --prompt-embeds "$P:context.prompt_embeds" --noise "$E" --deterministic --dump-preds --progress none)
    for f in 0 1 2; do
        case $f in 0) flags=$2 first=11 ;; 1) flags=$3 first=$4 ;; 2) flags=$5 first=$6 ;; esac
        read -ra fl <<<"$flags"
        sf-denoise "${run[@]}" "${fl[@]}" --save-latents "$D/r$f.safetensors"
        run sf-tensor diff "$E" "$D/r$f.safetensors" --rtol 1e-4 --atol 1e-4 -q # its noise is only in the expect file
        assert_line "# 34 compared, $(( f ? (11 - first) * 3 + 1 : 0 )) mismatched, 12 only in A, 0 only in B (rtol 0.0001, atol 0.0001)"
        [ "$f" = 0 ] || refute_output --regexp "pred\.[0-$((first - 1))]\.[^"$'\n'"]*MISMATCH"
    done
}

@test "--pc-budget 16 (recent 4), window 21, sink 10: Deep Forcing's released code on the tiny model, every prediction within 1e-4 through its two compressions; the plain rolling run and --pc-recent 3 differ from block 7 on" {
    release_case dit_deepforcing "--pc-budget 16 --pc-recent 4" "" 7 "--pc-budget 16 --pc-recent 3" 7
}

@test "--sink-rope realign --sink-rope-gap block, window 21, sink 14: Deep Forcing's released Deep Sink alone on the tiny model (its is_ds_only), every prediction within 1e-4; the plain run and gap 0 differ once they move the sink apart" {
    # the first eviction (block 7) leaves its sink where it was, and the sink moves from block 8 on; gap 0 moves it at 7
    release_case dit_deepsink "--sink-rope realign --sink-rope-gap block" "" 8 "--sink-rope realign" 7
}

@test "--kv-compress N: blocks before the first eviction as the plain rolling run, later ones not; tap files mark the kept tokens' slots; recorded; errors" {
    D="$BATS_TEST_TMPDIR"
    IN=(--prompt-embeds "$P:context.prompt_embeds" --noise "$P" --local_attn_size 6 --sink_size 1)
    sf-denoise "${COMMON[@]}" "${IN[@]}" --save-latents "$D/plain.safetensors"
    run -0 --separate-stderr sf-denoise "${COMMON[@]}" "${IN[@]}" --save-latents "$D/kc.safetensors" --kv-compress 2
    [[ "$stderr" == *"KV compress: at each eviction every layer keeps, per head, the "*" tokens after the sink its last queries attended most"* ]] || false
    # with Deep Sink and taps beside it
    run -0 sf-denoise "${COMMON[@]}" "${IN[@]}" --save-latents "$D/kct.safetensors" --kv-compress 2 \
        --layer_indices all --tap-mode probs --tap-select all --output_path "$D/t.safetensors"
    run -0 sf-denoise "${COMMON[@]}" "${IN[@]}" --save-latents "$D/kcr.safetensors" --kv-compress 2 --sink-rope realign
    run -0 python3 - "$D" "$BATS_TEST_DIRNAME" <<'PY'
import json, struct, sys
sys.path.insert(0, sys.argv[2])
from st_read import load
d = sys.argv[1]
mp, p = load(d + "/plain.safetensors"); mk, k = load(d + "/kc.safetensors"); mr, r = load(d + "/kcr.safetensors")
assert load(d + "/kct.safetensors")[1] == k, "taps changed the compressed run"
fr = len(p) // 9  # 9 latent frames, blocks of 3; block 2 is the first to evict
assert k[:6 * fr] == p[:6 * fr], "a block before the first eviction changed"
assert k[6 * fr:] != p[6 * fr:], "block 2 equals the plain rolling run"
assert r[:6 * fr] == p[:6 * fr] and r[6 * fr:] != k[6 * fr:], "Deep Sink beside it changed nothing, or too much"
assert mk["weights"] == mp["weights"] + ", KV cache compressed (2 frames)", mk["weights"]
assert mr["weights"] == mp["weights"] + ", sink RoPE realigned (gap 0), KV cache compressed (2 frames)", mr["weights"]
mt = load(d + "/t.safetensors", "-")[0]
assert mt["weights"] == mk["weights"] and mt["kv_compress"] == "2", mt
# block 2's window: the sink, two slots of kept tokens (mixed frames: -1), its own frames
fw = {(x["block"], x["step"]): x for x in json.loads(mt["forwards"])}
assert fw[(2, 0)]["key_frames"] == [0, -1, -1, 6, 7, 8], fw[(2, 0)]
assert fw[(1, 0)]["key_frames"] == [0, 1, 2, 3, 4, 5], fw[(1, 0)]
# where the kept tokens came from: 2 frames' worth (48 tokens) in each of the 2 heads, of the candidates 1-5
kf = fw[(2, 0)]["kept_frames"]
assert all(sum(n for f, n in kf[l]) == 96 and all(1 <= f <= 5 for f, n in kf[l]) for l in kf) and len(kf) == 3, kf
PY
    # sf-taps: the kept tokens' slots are no frame's column (block 2's window: the sink, then frames 6-8), said so
    run -0 sf-taps compare "$D/t.safetensors" "$D/t.safetensors" --forward 2:0 -o "$D/cmp"
    grep -qF '<title>L0 frame 3: nan</title>' "$D/cmp/frame_mass_t.svg" # (own columns: its kept tokens came from them)
    grep -qE '<title>L0 frame 6: 0\.[0-9]+</title>' "$D/cmp/frame_mass_t.svg"
    run -0 sf-taps report "$D/t.safetensors" --forward 2:0 -o "$D/r.html"
    grep -q "kept tokens of mixed frames" "$D/r.html"
    # where the kept tokens came from: the file's kept_frames of block 2, layer 0, as shares of its tokens, frame by frame
    grep -q "<h2>Where the kept tokens came from</h2>" "$D/r.html"
    run -0 python3 - "$D" "$BATS_TEST_DIRNAME" <<'PY'
import json, sys
sys.path.insert(0, sys.argv[2])
from st_read import load
d = sys.argv[1]
fw = {(x["block"], x["step"]): x for x in json.loads(load(d + "/t.safetensors", "-")[0]["forwards"])}
h = fw[(2, 0)]["kept_frames"]["0"]
svg = open(d + "/cmp/kept_frames_t.svg").read()
total = sum(n for f, n in h)
for f, n in h:
    assert "<title>L0 frame %d: %.6g</title>" % (f, n / total) in svg, (f, n, total)
assert "<title>L0 frame 0: nan</title>" in svg and "<title>L0 frame 6: nan</title>" in svg
PY
    # tokens mode over the video: a kept-tokens slot has no one frame to be drawn over, said in one line
    run -0 sf-denoise "${COMMON[@]}" "${IN[@]}" --kv-compress 2 --layer_indices 0 --tap-mode tokens --tap-token-frames 2 \
        --tap-select b:2,s:0 --output_path "$D/tok.safetensors"
    run -0 sf-decode --model-dir "$G/model" --latents "$D/kc.safetensors" -o "$D/fr/" --progress none
    run -2 --separate-stderr sf-taps tokens "$D/tok.safetensors" -o "$D/tok.svg" --frames "$D/fr"
    [[ "$stderr" == *"a key slot holds a compressed cache's kept tokens (sf-denoise --kv-compress or --pc-budget; mixed frames): no one video frame"* ]] || false
    # errors, before any work and without outputs
    run -2 --separate-stderr sf-denoise "${COMMON[@]}" --prompt-embeds "$P:context.prompt_embeds" \
        --save-latents "$D/x.safetensors" --kv-compress 2
    [[ "$stderr" == "sf-denoise: error: --kv-compress needs a rolling KV cache"* ]] || false
    run -2 --separate-stderr sf-denoise "${COMMON[@]}" "${IN[@]}" --save-latents "$D/x.safetensors" --kv-compress 3
    [[ "$stderr" == *"--kv-compress 3: the sink (1 frame), the compressed frames and a block (3) need 7 frames, the cache holds 6"* ]] || false
    run -2 --separate-stderr sf-denoise "${COMMON[@]}" "${IN[@]}" --save-latents "$D/x.safetensors" --kv-compress -1
    [[ "$stderr" == "sf-denoise: error: --kv-compress"* ]] || false
    # a frame-by-frame attention matrix (frames mode's default, the streaming aggregate) cannot hold the kept tokens'
    # mass: said, with what to do instead, and nothing written
    run -2 --separate-stderr sf-denoise "${COMMON[@]}" "${IN[@]}" --kv-compress 2 --layer_indices 0 --tap-mode frames \
        --output_path "$D/x.pt"
    [[ "$stderr" == *"--kv-compress keeps tokens of mixed frames, which frames mode's streaming matrix (frame by frame) cannot hold: keep every forward's captures instead (--tap-select all"* ]] || false
    [[ "$stderr" != *"wrote"* ]] || false
    [ ! -e "$D/x.safetensors" ] && [ ! -e "$D/x.pt" ]
}
