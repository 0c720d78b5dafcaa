#!/usr/bin/env bats
# pipelines/full_attention.sh and streaming_distributed.sh (the reference's
# run_extraction_full_attention.py and run_extraction_streaming_distributed.py) on the golden tiny
# model, and the sf-denoise flags under them: --pt-layout (taps_pt.c), --list-layers, --round-frames.
# The .pt values are checked against sfpipe's own frames-mode .safetensors of the same run.
bats_require_minimum_version 1.5.0
load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'

setup() {
    G="${SF_GOLDEN:-$BATS_TEST_DIRNAME/../golden}"
    T="$BATS_TEST_TMPDIR"
    PL="${SF_ROOT:-$BATS_TEST_DIRNAME/../..}/pipelines"
    PROMPT="A red fox trotting through fresh snow"
    COM=(--model-dir "$G/model" --height 64 --width 96 --cache-dir "$T/emb" --progress none --log-level warn)
}

# frames PROMPT SEED LAYERS OUT: sfpipe's streaming aggregate of that run as .safetensors (f32), on the
# reference's noise stream as the drop-ins draw it
frames() {
    sf-encode --model-dir "$G/model" --prompt "$1" --cache-dir "$T/emb" --out - --log-level warn |
        sf-denoise --model-dir "$G/model" --checkpoint_path "$G/checkpoints/tiny_dmd.pt" --height 64 --width 96 \
            --num_frames 9 --seed "$2" --noise-rng torch-cuda --in - --layer_indices "$3" --tap-mode frames --tap-select seed \
            --local_attn_size -1 --output_path "$4" --progress none --log-level warn
}

# same_f16 A NAME B NAME: tensor NAME of A (f16) holds the values of NAME of B (f32) rounded to f16, all
same_f16() {
    python3 -c 'import struct, sys
a = [float(x) for x in sys.argv[1].split()]; b = [float(x) for x in sys.argv[2].split()]
h = lambda x: struct.pack("<e", struct.unpack("<f", struct.pack("<f", x))[0])
bad = [i for i, (x, y) in enumerate(zip(a, b)) if h(x) != h(y)]
sys.exit(0 if len(a) == len(b) and a and any(a) and not bad else "%d vs %d values, %d differ" % (len(a), len(b), len(bad)))' \
        "$(sf-tensor cat "$1" "$2" | tail -n +2 | tr '\n' ' ')" "$(sf-tensor cat "$3" "$4" | tail -n +2 | tr '\n' ' ')"
}

# keys FILE: the top-level keys of a .pt dict, in order
keys() { sf-tensor tree "$1" | grep -E '^/[a-z_]+:' | cut -d: -f1 | tr '\n' ' '; }

@test "full_attention.sh: the reference's list layout; values = frames-mode .safetensors and streaming.sh's matrices" {
    cd "$T"
    run -0 "$PL/full_attention.sh" --config_path configs/self_forcing_dmd.yaml --checkpoint_path "$G/checkpoints/tiny_dmd.pt" \
        --output_path "$T/cache/deep/full.pt" --prompt "$PROMPT" --num_frames 9 --layer_indices 2 0 2 --use_ema --seed 42 \
        "${COM[@]}"
    run -0 sf-tensor ls "$T/cache/deep/full.pt"
    assert_line --regexp '^attention_weights/0/full_frame_attention	f16	\[2, 9, 9\]$'
    assert_line --regexp '^attention_weights/1/full_frame_attention	f16	\[2, 9, 9\]$'
    assert_equal "${#lines[@]}" 2
    run -0 keys "$T/cache/deep/full.pt"
    assert_output "/attention_weights /prompt /num_frames /frame_seq_length /num_frame_per_block /layer_indices /is_logits /capture_method /block_sizes /weights "
    run -0 sf-tensor tree "$T/cache/deep/full.pt"
    for k in "attention_weights: list of 2" "attention_weights/0: dict of 5" "attention_weights/0/layer_idx: int 0" \
        "attention_weights/1/layer_idx: int 2" "attention_weights/1/is_logits: bool True" \
        "attention_weights/1/num_frames: int 9" "attention_weights/1/num_heads: int 2" "prompt: str '$PROMPT'" \
        "num_frames: int 9" "frame_seq_length: int 24" "num_frame_per_block: int 3" "layer_indices: list of 3" \
        "layer_indices/0: int 2" "layer_indices/1: int 0" "layer_indices/2: int 2" "is_logits: bool True" \
        "capture_method: str 'full_matrix_all_blocks'" "block_sizes: list of 3" "block_sizes/2: int 3"; do
        assert_line "/$k"
    done
    run -0 bash -c "sf-tensor tree '$T/cache/deep/full.pt' | grep -E '^/attention_weights/0/[a-z_]+:' | cut -d: -f1 | tr '\n' ' '"
    assert_output "/attention_weights/0/layer_idx /attention_weights/0/full_frame_attention /attention_weights/0/is_logits /attention_weights/0/num_frames /attention_weights/0/num_heads "
    # the values: sfpipe's frames-mode aggregate of the same run, rounded to f16
    frames "$PROMPT" 42 0,2 "$T/st.safetensors"
    same_f16 "$T/cache/deep/full.pt" attention_weights/0/full_frame_attention "$T/st.safetensors" stream.L0.full_frame_attention
    same_f16 "$T/cache/deep/full.pt" attention_weights/1/full_frame_attention "$T/st.safetensors" stream.L2.full_frame_attention
    # and each layer's matrix is the single-layer streaming .pt's, value for value
    run -0 "$PL/streaming.sh" --checkpoint_path "$G/checkpoints/tiny_dmd.pt" --output_path "$T/s2.pt" --prompt "$PROMPT" \
        --num_frames 9 --layer_index 2 "${COM[@]}"
    assert_equal "$(sf-tensor cat "$T/cache/deep/full.pt" attention_weights/1/full_frame_attention | tail -n +2)" \
        "$(sf-tensor cat "$T/s2.pt" full_frame_attention | tail -n +2)"
    # a bare file name lands in the working directory (the reference's os.makedirs('') would fail)
    run -0 "$PL/full_attention.sh" --no_checkpoint --output_path bare.pt --num_frames 3 --layer 1 "${COM[@]}"
    run -0 sf-tensor ls "$T/bare.pt"
    assert_line --regexp '^attention_weights/0/full_frame_attention	f16	\[2, 3, 3\]$'
}

@test "full_attention.sh: bad flags, layers and frame counts are one line before any stage starts, nothing written" {
    cd "$T"
    local a=(--no_checkpoint --output_path "$T/o/x.pt" "${COM[@]}")
    run -2 --separate-stderr "$PL/full_attention.sh" "${a[@]}" --num_frames 9 --layer_indices 0 3
    assert_equal "$stderr" "full_attention.sh: error: --layer_indices: layer 3 out of range (the model has 3 layers: 0..2)"
    run -2 --separate-stderr "$PL/full_attention.sh" "${a[@]}" --num_frames 9 --layer_indices 0 x
    assert_equal "$stderr" "full_attention.sh: error: --layer_indices: 'x' is not a layer (a non-negative integer)"
    run -2 --separate-stderr "$PL/full_attention.sh" "${a[@]}" --num_frames 10 --layer_indices 0
    assert_equal "$stderr" "full_attention.sh: error: num_frames 10 is not a multiple of num_frame_per_block 3"
    run -2 --separate-stderr "$PL/full_attention.sh" "${a[@]}" --bogus
    assert_equal "$stderr" "full_attention.sh: error: unknown option '--bogus' (see --help)"
    run -2 --separate-stderr "$PL/full_attention.sh" --layer_indices
    assert_equal "$stderr" "full_attention.sh: error: --layer_indices needs at least one value"
    run -2 --separate-stderr "$PL/full_attention.sh" "${a[@]}" --layer_indices --num_frames 3
    assert_equal "$stderr" "full_attention.sh: error: --layer_indices needs at least one value"
    [ ! -e "$T/o/x.pt" ]
    # a run that fails once the stages run (a umT5 file sf-denoise --check does not read): the output
    # folders it made are gone again, as after a refusal
    mkdir "$T/bad"
    for f in "$G/model"/*; do ln -s "$f" "$T/bad/"; done
    rm "$T/bad/models_t5_umt5-xxl-enc-bf16.pth" && echo "not a checkpoint" >"$T/bad/models_t5_umt5-xxl-enc-bf16.pth"
    b=("${COM[@]}" --model-dir "$T/bad" --no_checkpoint --num_frames 3)
    run -1 --separate-stderr "$PL/full_attention.sh" "${b[@]}" --layer_indices 0 --output_path "$T/new/deep/x.pt"
    [ ! -e "$T/new" ]
    run -1 --separate-stderr "$PL/streaming_distributed.sh" "${b[@]}" --layer_indices 0 --output_dir "$T/new2/d"
    [ ! -e "$T/new2" ]
    run -0 "$PL/full_attention.sh" --help
    assert_line --index 0 --regexp "^full_attention.sh — the reference's experiments/run_extraction_full_attention.py"
}

@test "sf-denoise --pt-layout full_attention: a rolling window's blocks whose step 0 lost frames keep zero rows" {
    # the reference takes per block the first capture with key length = the block's end: with a
    # 6-frame window, blocks 2 and 3 (ends 9, 12) have none and stay zero; blocks 0 and 1 are filled
    P="$G/expect/dit_pipeline_base.safetensors"
    run -0 sf-denoise --model-dir "$G/model" --height 64 --width 96 --progress none --prompt-embeds "$P:context.prompt_embeds" \
        --num_frames 12 --local_attn_size 6 --layer_indices 1 --tap-mode frames --pt-layout full_attention --output_path "$T/w.pt"
    run -0 python3 -c 'import sys
v = [float(x) for x in sys.argv[1].split()]
rows = [v[i * 12:(i + 1) * 12] for i in range(24)]  # head 0 then head 1, 12 query frames each
for h in range(2):
    for q in range(12):
        r = rows[h * 12 + q]
        assert any(r[:q // 3 * 3 + 3]) == (q < 6), (h, q, r)
        assert not any(r[q // 3 * 3 + 3:]), (h, q, r)' "$(sf-tensor cat "$T/w.pt" attention_weights/0/full_frame_attention | tail -n +2 | tr '\n' ' ')"
}

@test "sf-denoise: --pt-layout, --pt-rank/--pt-world-size/--pt-prompt-index, --list-layers, --round-frames" {
    local d=(sf-denoise --model-dir "$G/model" --no_checkpoint --num_frames 9 --check)
    run -0 --separate-stderr "${d[@]}" --list-layers --layer_indices all
    assert_output "0 1 2"
    run -0 --separate-stderr "${d[@]}" --list-layers --layer_indices 2 0-1
    assert_output "0 1 2"
    run -2 --separate-stderr "${d[@]}" --output_path "$T/x.pt" --layer_indices 0 --pt-layout bogus
    assert_equal "$stderr" "sf-denoise: error: --pt-layout: expected auto, streaming, full_attention, distributed_streaming or distributed_multi_prompt, got 'bogus'"
    run -2 --separate-stderr "${d[@]}" --output_path "$T/x.pt" --layer_indices 0 --pt-layout full_attention
    assert_equal "$stderr" "sf-denoise: error: --pt-layout full_attention is made of the streaming aggregate: use --tap-mode frames --tap-select seed"
    run -2 --separate-stderr "${d[@]}" --output_path "$T/x.safetensors" --layer_indices 0 --tap-mode frames --pt-layout full_attention
    assert_equal "$stderr" "sf-denoise: error: --pt-layout full_attention writes a .pt dict: --output_path $T/x.safetensors needs a .pt extension"
    run -2 --separate-stderr "${d[@]}" --output_path "$T/x.pt" --layer_indices 0 --tap-mode frames --pt-rank 1
    assert_equal "$stderr" "sf-denoise: error: --pt-rank / --pt-world-size are recorded by --pt-layout distributed_streaming only"
    run -2 --separate-stderr "${d[@]}" --output_path "$T/x.pt" --layer_indices 0 --tap-mode frames \
        --pt-layout distributed_streaming --pt-rank 2 --pt-world-size 2
    assert_equal "$stderr" "sf-denoise: error: --pt-rank 2 is not below --pt-world-size 2 (ranks 0..W-1)"
    run -2 --separate-stderr "${d[@]}" --output_path "$T/x.pt" --layer_indices 0 --tap-mode frames --pt-prompt-index 3
    assert_equal "$stderr" "sf-denoise: error: --pt-prompt-index is recorded by --pt-layout distributed_multi_prompt only"
    run -2 --separate-stderr "${d[@]}" --output_path "$T/x.pt" --layer_indices 0 1 --tap-mode frames
    assert_equal "$stderr" "sf-denoise: error: the streaming .pt holds one layer; got 2 layers (put {layer} in --output_path for one file per layer, or use .safetensors)"
    run -0 "${d[@]}" --output_path "$T/l{layer}.pt" --layer_indices 0 1 --tap-mode frames
    run -2 --separate-stderr "${d[@]}" --round-frames --num_frames 2
    assert_equal "$stderr" "sf-denoise: error: --num_frames 2 is less than one block (3 frames)"
    run -0 "${d[@]}" --round-frames --num_frames 10 --log-level info
    assert_output --partial "adjusting num_frames from 10 to 9 (whole blocks of 3)"
    assert_output --partial "check: ok: 9 frames"
    [ ! -e "$T/x.pt" ]
}

@test "sf-denoise {layer} in --output_path: one file a layer; when one cannot be written, the others are removed" {
    P="$G/expect/dit_pipeline_base.safetensors"
    local d=(sf-denoise --model-dir "$G/model" --height 64 --width 96 --progress none --num_frames 3 --log-level warn
        --prompt-embeds "$P:context.prompt_embeds" --layer_indices 0 2 --tap-mode frames)
    mkdir "$T/ok"
    run -0 "${d[@]}" --output_path "$T/ok/L{layer}.pt"
    run -0 ls "$T/ok"
    assert_output "$(printf 'L0.pt\nL2.pt')"
    # the template's folder exists (the check before the run passes), layer 0's too, layer 2's not
    mkdir -p "$T/bad/{layer}" "$T/bad/0"
    run -1 --separate-stderr "${d[@]}" --output_path "$T/bad/{layer}/x.pt"
    assert_equal "$stderr" "sf-denoise: error: cannot write $T/bad/2/x.pt: No such file or directory"
    [ ! -e "$T/bad/0/x.pt" ]
}

@test "streaming_distributed.sh multi_layer: layer<L>.pt per layer, each rank's seed, rank and world_size" {
    cd "$T"
    # --world_size 2 over 0,2,1: rank 0 taps layers 0 and 2 with seed 42, rank 1 layer 1 with seed 43
    run -0 "$PL/streaming_distributed.sh" --mode multi_layer --config_path configs/self_forcing_dmd.yaml \
        --checkpoint_path "$G/checkpoints/tiny_dmd.pt" --output_dir "$T/out/d" --num_frames 10 --chunk_frames 3 \
        --use_ema --seed 42 --force --layer_indices "0, 2,1" --prompt "$PROMPT" --world_size 2 "${COM[@]}"
    run -0 ls "$T/out/d"
    assert_output "$(printf 'layer0.pt\nlayer1.pt\nlayer2.pt')"
    run -0 keys "$T/out/d/layer1.pt"
    assert_output "/layer_index /full_frame_attention /last_block_frame_attention /is_logits /prompt /num_frames /frame_seq_length /num_frame_per_block /num_heads /block_sizes /extraction_method /rank /world_size /weights "
    run -0 sf-tensor tree "$T/out/d/layer1.pt"
    for k in "layer_index: int 1" "full_frame_attention: tensor f16 [2, 9, 9]" "last_block_frame_attention: tensor f16 [2, 9]" \
        "is_logits: bool True" "prompt: str '$PROMPT'" "num_frames: int 9" "frame_seq_length: int 24" \
        "num_frame_per_block: int 3" "num_heads: int 2" "block_sizes: list of 3" \
        "extraction_method: str 'distributed_streaming'" "rank: int 1" "world_size: int 2"; do
        assert_line "/$k"
    done
    run -0 sf-tensor tree "$T/out/d/layer2.pt"
    assert_line "/rank: int 0"
    frames "$PROMPT" 42 0,2 "$T/r0.safetensors"
    frames "$PROMPT" 43 1 "$T/r1.safetensors"
    same_f16 "$T/out/d/layer0.pt" full_frame_attention "$T/r0.safetensors" stream.L0.full_frame_attention
    same_f16 "$T/out/d/layer2.pt" last_block_frame_attention "$T/r0.safetensors" stream.L2.last_block_frame_attention
    same_f16 "$T/out/d/layer1.pt" full_frame_attention "$T/r1.safetensors" stream.L1.full_frame_attention
    # under a launcher (RANK / WORLD_SIZE): only that rank's share, the same file as above
    RANK=1 WORLD_SIZE=2 run -0 "$PL/streaming_distributed.sh" --checkpoint_path "$G/checkpoints/tiny_dmd.pt" \
        --output_dir "$T/out/one" --num_frames 9 --layer_indices 0,2,1 --prompt "$PROMPT" "${COM[@]}"
    run -0 ls "$T/out/one"
    assert_output "layer1.pt"
    run -0 sf-tensor diff "$T/out/one/layer1.pt" "$T/out/d/layer1.pt"
    # --all_layers: the model's layers (3 here; the reference's range(30) is the 1.3B model's)
    run -0 "$PL/streaming_distributed.sh" --no_checkpoint --output_dir "$T/out/all" --num_frames 3 --all_layers \
        --world_size 4 "${COM[@]}"
    assert_output --partial "rank 3 of 4: no layers assigned"
    run -0 ls "$T/out/all"
    assert_output "$(printf 'layer0.pt\nlayer1.pt\nlayer2.pt')"
    run -0 sf-tensor tree "$T/out/all/layer2.pt"
    assert_line "/rank: int 2"
    assert_line "/world_size: int 4"
}

@test "streaming_distributed.sh multi_prompt: prompt<IIII>_layer<L>.pt, seed + prompt index, any world size" {
    cd "$T"
    printf 'a cat on a mat\n\n   \r\n  %s  \r\nthird\n' "$PROMPT" >"$T/prompts.txt"
    run -0 "$PL/streaming_distributed.sh" --mode=multi_prompt --prompts_file "$T/prompts.txt" --layer_index 1 \
        --checkpoint_path "$G/checkpoints/tiny_dmd.pt" --output_dir "$T/mp" --num_frames 9 --world_size 2 "${COM[@]}"
    run -0 ls "$T/mp"
    assert_output "$(printf 'prompt0000_layer1.pt\nprompt0001_layer1.pt\nprompt0002_layer1.pt')"
    run -0 keys "$T/mp/prompt0001_layer1.pt"
    assert_output "/layer_index /full_frame_attention /last_block_frame_attention /is_logits /prompt /prompt_index /num_frames /frame_seq_length /num_frame_per_block /num_heads /block_sizes /extraction_method /weights "
    run -0 sf-tensor tree "$T/mp/prompt0001_layer1.pt"
    for k in "layer_index: int 1" "prompt: str '$PROMPT'" "prompt_index: int 1" "num_frames: int 9" \
        "extraction_method: str 'distributed_multi_prompt'"; do
        assert_line "/$k"
    done
    frames "$PROMPT" 43 1 "$T/p1.safetensors"
    same_f16 "$T/mp/prompt0001_layer1.pt" full_frame_attention "$T/p1.safetensors" stream.L1.full_frame_attention
    # one rank writes the same files: the seed follows the prompt, not the rank
    run -0 "$PL/streaming_distributed.sh" --mode multi_prompt --prompts "$T/prompts.txt" --layer_index 1 \
        --checkpoint_path "$G/checkpoints/tiny_dmd.pt" --output_dir "$T/mp1" --num_frames 9 "${COM[@]}"
    run -0 sf-tensor diff "$T/mp1/prompt0002_layer1.pt" "$T/mp/prompt0002_layer1.pt"
    # numbers as Python's int() reads them: --seed 040 is 40 (+ index 1 = 41), --layer_index 02 is layer 2
    run -0 "$PL/streaming_distributed.sh" --mode multi_prompt --prompts_file "$T/prompts.txt" --layer_index 02 \
        --checkpoint_path "$G/checkpoints/tiny_dmd.pt" --output_dir "$T/mp8" --num_frames 9 --seed 040 --world_size 03 "${COM[@]}"
    frames "$PROMPT" 41 2 "$T/p41.safetensors"
    same_f16 "$T/mp8/prompt0001_layer2.pt" full_frame_attention "$T/p41.safetensors" stream.L2.full_frame_attention
    # the encoder loads once for the three prompts (fresh cache): the runs find them in the cache
    run -0 "$PL/streaming_distributed.sh" --mode multi_prompt --prompts_file "$T/prompts.txt" --layer_index 1 \
        --no_checkpoint --output_dir "$T/mp9" --num_frames 3 "${COM[@]}" --cache-dir "$T/fresh" --log-level info
    assert_equal "$(grep -c 'loading umT5 encoder' <<<"$output")" 1
    run -0 ls "$T/mp9"
    assert_equal "${#lines[@]}" 3
}

@test "streaming_distributed.sh: bad flags, layers, prompts files and ranks are one line before any stage starts" {
    cd "$T"
    local a=(--no_checkpoint --output_dir "$T/o" --num_frames 3 "${COM[@]}")
    run -2 --separate-stderr "$PL/streaming_distributed.sh" "${a[@]}" --mode both
    assert_equal "$stderr" "streaming_distributed.sh: error: argument --mode: invalid choice: 'both' (choose from 'multi_layer', 'multi_prompt')"
    run -2 --separate-stderr "$PL/streaming_distributed.sh" "${a[@]}" --layer_indices 0,7
    assert_equal "$stderr" "streaming_distributed.sh: error: --layer_indices: layer 7 out of range (the model has 3 layers: 0..2)"
    run -2 --separate-stderr "$PL/streaming_distributed.sh" "${a[@]}" --layer_indices 0,,1
    assert_equal "$stderr" "streaming_distributed.sh: error: --layer_indices: '' is not a layer (a non-negative integer)"
    run -2 --separate-stderr "$PL/streaming_distributed.sh" "${a[@]}" --layer 0
    assert_equal "$stderr" "streaming_distributed.sh: error: ambiguous option: --layer could match --layer-indices, --layer-index"
    run -2 --separate-stderr "$PL/streaming_distributed.sh" "${a[@]}" --layer_index x
    assert_equal "$stderr" "streaming_distributed.sh: error: argument --layer_index: invalid int value: 'x'"
    run -1 --separate-stderr "$PL/streaming_distributed.sh" "${a[@]}" --mode multi_prompt --prompts_file "$T/none.txt"
    assert_equal "$stderr" "streaming_distributed.sh: error: --prompts_file $T/none.txt: no such readable file"
    echo "a prompt" >"$T/p.txt"
    run -2 --separate-stderr "$PL/streaming_distributed.sh" "${a[@]}" --mode multi_prompt --prompts_file "$T/p.txt" --layer_index 5
    assert_equal "$stderr" "streaming_distributed.sh: error: --layer_index: layer 5 out of range (the model has 3 layers: 0..2)"
    run -2 --separate-stderr "$PL/streaming_distributed.sh" "${a[@]}" --layer_indices 0 --num_frames 2
    assert_equal "$stderr" "streaming_distributed.sh: error: --num_frames 2 is less than one block (3 frames)"
    run -2 --separate-stderr "$PL/streaming_distributed.sh" "${a[@]}" --layer_indices 0 --world_size 0
    assert_equal "$stderr" "streaming_distributed.sh: error: --world_size must be in 1..1048576"
    RANK=2 WORLD_SIZE=2 run -2 --separate-stderr "$PL/streaming_distributed.sh" "${a[@]}" --layer_indices 0
    assert_equal "$stderr" "streaming_distributed.sh: error: RANK=2 needs WORLD_SIZE above it (got '2')"
    [ ! -e "$T/o" ]
    run -0 "$PL/streaming_distributed.sh" --help
    assert_line --index 0 --regexp "^streaming_distributed.sh — the reference's experiments/run_extraction_streaming_distributed.py,"
}
