#!/usr/bin/env bats
# pipelines/streaming.sh (run_extraction_streaming.py's flags → sf-encode | sf-denoise [| sf-decode])
# on the golden tiny model, and sf-denoise's rolling KV cache (--local_attn_size / --sink_size)
# through the CLI: window ⊇ video = global, eviction changes only the later blocks, bad combinations.
bats_require_minimum_version 1.5.0
load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'

setup() {
    G="${SF_GOLDEN:-$BATS_TEST_DIRNAME/../golden}"
    P="$G/expect/dit_pipeline_base.safetensors"
    T="$BATS_TEST_TMPDIR"
    S="${SF_ROOT:-$BATS_TEST_DIRNAME/../..}/pipelines/streaming.sh"
    SIZE=(--height 64 --width 96)
    DN=(sf-denoise --model-dir "$G/model" "${SIZE[@]}" --progress none --threads 2 --prompt-embeds "$P:context.prompt_embeds" --seed 3)
}

frames() { ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames -of csv=p=0 "$1"; }

@test "streaming.sh: reference flags → the streaming .pt layout, parent created, video" {
    cd "$T"
    run -0 "$S" --config_path configs/self_forcing_dmd.yaml --checkpoint_path "$G/checkpoints/tiny_dmd.pt" \
        --output_path "$T/cache/deeper/attention_streaming.pt" --prompt "A red fox trotting through fresh snow" \
        --num_frames 10 --layer_index 2 --chunk_frames 3 --use_ema --seed 42 --force --save_video \
        --model-dir "$G/model" "${SIZE[@]}" --cache-dir "$T/emb" --progress none
    assert_output --partial "adjusting num_frames from 10 to 9"
    run -0 sf-tensor ls "$T/cache/deeper/attention_streaming.pt"
    # [heads, T, T] and [heads, T], float16, like the reference's save_data
    assert_line --regexp '^full_frame_attention	f16	\[2, 9, 9\]$'
    assert_line --regexp '^last_block_frame_attention	f16	\[2, 9\]$'
    assert_equal "${#lines[@]}" 2
    # row (head 0, query frame 0) sees only block 0's key frames: columns 3..8 are zero
    run -0 sf-tensor cat "$T/cache/deeper/attention_streaming.pt" full_frame_attention --limit 9
    row=("${lines[@]:1:9}")
    for k in 0 1 2; do [ "${row[$k]}" != 0 ]; done
    for k in 3 4 5 6 7 8; do [ "${row[$k]}" = 0 ]; done
    # --save_video without --video_path: output path with .pt → .mp4 (latent 9 frames → 33)
    [ "$(frames "$T/cache/deeper/attention_streaming.mp4")" = 33 ]
    run -0 "$S" --no_checkpoint --output_path "$T/b/x.pt" --num_frames 6 --layer-index 0 --model-dir "$G/model" \
        "${SIZE[@]}" --cache-dir "$T/emb" --save-video --video-path "$T/v/y.mp4"
    run -0 sf-tensor ls "$T/b/x.pt"
    assert_line --regexp '^full_frame_attention	f16	\[2, 6, 6\]$'
    [ "$(frames "$T/v/y.mp4")" = 21 ]
}

@test "streaming.sh: bad flags exit 2, a bad layer exits non-zero without output" {
    run -2 "$S" --bogus
    run -2 "$S" --num_frames abc
    run -2 "$S" --layer_index
    run -0 "$S" --help
    assert_output --partial "--chunk_frames"
    cd "$T"
    run ! "$S" --no_checkpoint --output_path "$T/o/a.pt" --num_frames 6 --layer_index 7 --model-dir "$G/model" \
        "${SIZE[@]}" --cache-dir "$T/emb"
    assert_output --partial "out of range"
    [ ! -e "$T/o" ] # the output's folder, made for the check, is removed again with the refusal
}

@test "streaming.sh: --flag=value and prefixes work; a layer the model lacks names --layer_index, one line" {
    cd "$T"
    run -0 "$S" --no_checkpoint --output_path="$T/e/a.pt" --num_frames=010 --layer_index=1 --model-dir="$G/model" \
        --height=64 --wid 96 --cache-dir="$T/emb" --prog none
    # 010 is ten frames, as Python's int() reads it (not octal eight): rounded down to 9
    assert_output --partial "adjusting num_frames from 10 to 9"
    run -0 sf-tensor ls "$T/e/a.pt"
    assert_line --regexp '^full_frame_attention	f16	\[2, 9, 9\]$'
    run -2 --separate-stderr "$S" --no_checkpoint --output_path "$T/o/a.pt" --num_frames 6 --layer_index 7 \
        --model-dir "$G/model" "${SIZE[@]}" --cache-dir "$T/emb"
    assert_equal "$stderr" "streaming.sh: error: --layer_index: layer 7 out of range (the model has 3 layers: 0..2)"
    run -2 --separate-stderr "$S" --layer-index=-1 --model-dir "$G/model"
    assert_equal "$stderr" "streaming.sh: error: --layer_index: '-1' is not a layer (a non-negative integer)"
    [ ! -e "$T/o/a.pt" ]
}

@test "streaming.sh: num_frames rounds down to the config's blocks, like the reference's block_sizes" {
    cd "$T"
    # independent_first_frame: blocks [1, 3, 3] — 9 frames become 7 (a multiple of 3 would be refused)
    { cat "${SF_ROOT:-$BATS_TEST_DIRNAME/../..}/configs/self_forcing_dmd.yaml"; echo "independent_first_frame: true"; } >"$T/ind.yaml"
    run -0 "$S" --config_path "$T/ind.yaml" --no_checkpoint --output_path "$T/i.pt" --num_frames 9 --layer_index 1 \
        --model-dir "$G/model" "${SIZE[@]}" --cache-dir "$T/emb" --progress none
    assert_output --partial "adjusting num_frames from 9 to 7"
    run -0 sf-tensor tree "$T/i.pt"
    for k in "full_frame_attention: tensor f16 [2, 7, 7]" "num_frames: int 7" "block_sizes: list of 3" \
        "block_sizes/0: int 1" "block_sizes/2: int 3" "last_block_query_frames/0: int 4"; do
        assert_line "/$k"
    done
    run -2 --separate-stderr "$S" --no_checkpoint --output_path "$T/o/x.pt" --num_frames 2 --model-dir "$G/model"
    assert_equal "$stderr" "streaming.sh: error: --num_frames 2 is less than one block (3 frames)"
    [ ! -e "$T/o" ]
}

@test "rolling KV cache: a window covering the video equals global attention; eviction changes later blocks" {
    run -0 "${DN[@]}" --num_frames 12 --save-latents "$T/g.safetensors" --dump-preds
    run -0 "${DN[@]}" --num_frames 12 --local_attn_size 12 --sink_size 3 --save-latents "$T/w.safetensors" --dump-preds
    run -0 sf-tensor diff "$T/g.safetensors" "$T/w.safetensors" -q
    assert_output --partial "21 compared, 0 mismatched"
    # window 6, sink 3: blocks 0-1 (frames 0..5) are untouched, blocks 2-3 lose frames 3..5 / 3..8
    run -0 "${DN[@]}" --num_frames 12 --local_attn_size 6 --sink_size 3 --save-latents "$T/r.safetensors" --dump-preds
    run sf-tensor diff "$T/g.safetensors" "$T/r.safetensors" -q
    assert_output --partial "21 compared, 11 mismatched" # latents + pred.2.* + pred.3.* (5 steps each)
    refute_output --regexp 'pred\.[01]\.'
}

@test "rolling KV cache: impossible combinations are one-line errors, no output" {
    run -2 --separate-stderr "${DN[@]}" --num_frames 12 --local_attn_size 4 --sink_size 2 --save-latents "$T/x.safetensors"
    [ "$(grep -c 'error' <<<"$stderr")" = 1 ]
    [[ "$stderr" == *"sf-denoise: error: local_attn_size 4 cannot hold sink_size 2 + a block of 3 frames"* ]]
    run -2 "${DN[@]}" --num_frames 12 --local_attn_size 2 --save-latents "$T/x.safetensors"
    run -2 "${DN[@]}" --num_frames 12 --local_attn_size 0 --save-latents "$T/x.safetensors"
    run -2 "${DN[@]}" --num_frames 11 --local_attn_size 6 --save-latents "$T/x.safetensors"
    [ ! -e "$T/x.safetensors" ]
}

@test "each.sh / highframe.sh: the reference's run_extraction_each.py / _highframe.py defaults over streaming.sh" {
    cd "$T"
    E="$(dirname "$S")/each.sh" H="$(dirname "$S")/highframe.sh"
    COM=(--no_checkpoint --model-dir "$G/model" "${SIZE[@]}" --cache-dir "$T/emb" --progress none --num_frames 6)
    # each.py's defaults: layer 0, cache/attention_layer.pt — the same tensors as streaming.sh --layer_index 0
    run -0 "$E" "${COM[@]}"
    run -0 "$S" "${COM[@]}" --layer_index 0 --output_path "$T/s0.pt"
    run -0 sf-tensor diff "$T/cache/attention_layer.pt" "$T/s0.pt" --rtol 0 --atol 0
    # highframe.py's default layer 15 is past the tiny model's 3 layers: one line naming the reference's flag
    run --separate-stderr "$H" "${COM[@]}"
    assert_failure 2
    [[ "$stderr" == *"--layer_index"*"15"* ]] || false
    run -0 "$H" "${COM[@]}" --layer=1
    run -0 sf-tensor ls "$T/cache/attention_highframe.pt"
    assert_line --regexp '^full_frame_attention	f16	\[2, 6, 6\]$'
    run -0 "$E" --help
    assert_line --partial "run_extraction_each.py"
}
