#!/usr/bin/env bats
# The three stages as cooperating processes: shell pipes, tcp between separately started
# processes, shared memory, sf-run specs, fail-fast, figure4.sh, the embedding cache.
bats_require_minimum_version 1.5.0
load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
load tiny_model

setup_file() {
    tiny_model_make
}

setup() {
    T="$BATS_TEST_TMPDIR"
    SIZE=(--num_frames 9 --height 64 --width 96)
    PROMPT="A red fox trotting through fresh snow"
    PIDS=()
}

teardown() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
}

frames() { ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames -of csv=p=0 "$1"; }

encode() { sf-encode --model-dir "$M" --prompt "$PROMPT" --cache-dir "$T/cache" "$@"; }
denoise() { sf-denoise --model-dir "$M" --checkpoint_path "$M/ckpt.pt" "${SIZE[@]}" --progress none "$@"; }
decode() { sf-decode --model-dir "$M" --progress none "$@"; }

@test "three-stage shell pipe: sf-encode | sf-denoise | sf-decode" {
    encode | denoise | decode -o "$T/a.y4m"
    [ "$(frames "$T/a.y4m")" = 33 ]
    # the same run through files gives the same video
    encode --save-embeds "$T/e.safetensors" --no-cache
    denoise --prompt-embeds "$T/e.safetensors:emb.0" --save-latents "$T/lat.safetensors"
    decode --latents "$T/lat.safetensors" -o "$T/b.y4m"
    cmp "$T/a.y4m" "$T/b.y4m"
}

@test "stages over tcp between separately started processes" {
    port=$((20000 + RANDOM % 12000)) # below the ephemeral range (32768 on): no outgoing connection takes it
    decode --in "tcp://127.0.0.1:$port" -o "$T/tcp.y4m" 3>&- &
    PIDS+=($!)
    dec=$!
    encode --out "ipc://$T/emb.sock" 3>&- &
    PIDS+=($!)
    denoise --in "ipc://$T/emb.sock" --out "tcp://127.0.0.1:$port"
    wait "$dec"
    encode | denoise | decode -o "$T/ref.y4m"
    cmp "$T/tcp.y4m" "$T/ref.y4m"
}

@test "stages over shared memory" {
    decode --in "shm://sfp-$$-$BATS_TEST_NUMBER" -o "$T/shm.y4m" 3>&- &
    PIDS+=($!)
    dec=$!
    encode | denoise --out "shm://sfp-$$-$BATS_TEST_NUMBER"
    wait "$dec"
    [ "$(frames "$T/shm.y4m")" = 33 ]
}

@test "t2v.yaml vae=TAEHV: sf-decode gets --vae and decodes with the tiny decoder, as many frames" {
    cd "$SF_ROOT"
    args=(model_dir="$M" checkpoint="$M/ckpt.pt" output="$T/tae.y4m" cache_dir="$T/cache" num_frames=9 height=64 width=96 prompt="$PROMPT")
    run -0 sf-run --dry-run pipelines/t2v.yaml "${args[@]}"
    refute_output --partial -- "--vae"
    run -0 sf-run --dry-run pipelines/t2v.yaml "${args[@]}" vae="$SF_GOLDEN/model/taehv_tiny.pth"
    grep -- "--vae $SF_GOLDEN/model/taehv_tiny.pth" <<<"$output" | grep -q '^sf-decode'
    run -0 sf-run pipelines/t2v.yaml "${args[@]}" vae="$SF_GOLDEN/model/taehv_tiny.pth"
    assert_output --partial "[decode] sf-decode: info: TAEHV $SF_GOLDEN/model/taehv_tiny.pth: 23 layers"
    [ "$(frames "$T/tae.y4m")" = 33 ]
}

@test "sf-run t2v.yaml makes the video; a cached rerun does not load the encoder" {
    cd "$SF_ROOT"
    args=(model_dir="$M" checkpoint="$M/ckpt.pt" output="$T/run.y4m" cache_dir="$T/cache" num_frames=9 height=64 width=96 prompt="$PROMPT")
    # the ipc sockets between the stages live in $TMPDIR (this test's own folder, so other runs on
    # the machine cannot disturb the check) and are removed at the end
    mkdir -p "$T/tmp"
    TMPDIR="$T/tmp" run -0 sf-run --dry-run pipelines/t2v.yaml "${args[@]}"
    assert_output --partial "ipc://$T/tmp/sf-run-"
    refute_output --partial "--low-memory"
    # low_memory=true (24 GB cards) reaches the encoder, and only the encoder, as --low-memory
    TMPDIR="$T/tmp" run -0 sf-run --dry-run pipelines/t2v.yaml "${args[@]}" low_memory=true device=cuda:0
    [ "$(grep -c -- '--low-memory' <<<"$output")" = 1 ]
    grep -- '--low-memory' <<<"$output" | grep -q 'sf-encode'
    # the presets extend t2v.yaml: its stages and variables, their own config and checkpoint only
    for p in dmd sid; do
        TMPDIR="$T/tmp" run -0 sf-run --dry-run "pipelines/t2v_$p.yaml" "${args[@]}" low_memory=true
        [ "$(grep -c -- '--low-memory' <<<"$output")" = 1 ]
        assert_output --partial "--config_path configs/self_forcing_$p.yaml"
        [ "$(grep -c '^sf-' <<<"$output")" = 3 ]
    done
    TMPDIR="$T/tmp" run -0 sf-run pipelines/t2v.yaml "${args[@]}"
    [ -z "$(ls -A "$T/tmp")" ]
    assert_output --partial "[encode] sf-encode: info: loading umT5 encoder"
    [ "$(frames "$T/run.y4m")" = 33 ]
    rm "$T/run.y4m"
    run -0 sf-run pipelines/t2v.yaml "${args[@]}"
    assert_output --partial "(encoder not loaded)"
    refute_output --partial "loading umT5 encoder"
    [ "$(frames "$T/run.y4m")" = 33 ]
}

@test "sf-run over pipe, tcp and shm transports gives the same video; two tcp runs at once" {
    cd "$SF_ROOT"
    args=(model_dir="$M" checkpoint="$M/ckpt.pt" cache_dir="$T/cache" num_frames=9 height=64 width=96 prompt="$PROMPT")
    for tr in pipe tcp shm; do
        sed "s/^transport: ipc/transport: $tr/" pipelines/t2v.yaml >"$T/$tr.yaml"
        sf-run "$T/$tr.yaml" "${args[@]}" output="$T/$tr.y4m" 2>"$T/$tr.err" || { cat "$T/$tr.err"; false; }
    done
    cmp "$T/pipe.y4m" "$T/tcp.y4m"
    cmp "$T/pipe.y4m" "$T/shm.y4m"
    # without --tcp-port each run draws its own free ports: two at once on one machine both finish
    sf-run "$T/tcp.yaml" "${args[@]}" output="$T/tcp1.y4m" 2>"$T/tcp1.err" 3>&- &
    PIDS+=($!)
    sf-run "$T/tcp.yaml" "${args[@]}" output="$T/tcp2.y4m" 2>"$T/tcp2.err" || { cat "$T/tcp2.err"; false; }
    wait "${PIDS[0]}" || { cat "$T/tcp1.err"; false; }
    cmp "$T/pipe.y4m" "$T/tcp1.y4m"
    cmp "$T/pipe.y4m" "$T/tcp2.y4m"
}

@test "a failing stage ends sf-run with its message and no process is left" {
    cd "$SF_ROOT"
    run -1 sf-run pipelines/t2v.yaml model_dir="$M" checkpoint="$M/ckpt.pt" output="$T/x.y4m" \
        cache_dir="$T/cache" num_frames=9 height=64 width=96 "decode.vae=$T/missing.pth"
    assert_output --partial "stage 'decode' failed"
    assert_output --partial "missing.pth"
    [ ! -e "$T/x.y4m" ]
    # no stage left: poll up to 5 s (a fixed sleep only guessed how long the others take to go)
    for _ in $(seq 100); do pgrep -f "$M/ckpt.pt" >/dev/null || break; sleep 0.05; done
    run ! pgrep -f "$M/ckpt.pt"
}

@test "figure4.sh with the reference flags writes the reference .pt layout" {
    cd "$T"
    run -0 "$SF_ROOT/pipelines/figure4.sh" --config_path configs/self_forcing_dmd.yaml --checkpoint_path "$M/ckpt.pt" \
        --output_path "$T/fig4.pt" --prompt "$PROMPT" --num_frames 9 --layer_indices 0 2 --use_ema --seed 42 \
        --model-dir "$M" --height 64 --width 96 --cache-dir "$T/cache"
    run -0 sf-tensor ls "$T/fig4.pt"
    # per layer [1, heads, Lq = 3 frames × 24 tokens, Lk = 9 frames × 24 tokens], float16
    assert_line --regexp '^attention_weights/0/attn_logits	f16	\[1, 2, 72, 216\]$'
    assert_line --regexp '^attention_weights/1/attn_logits	f16	\[1, 2, 72, 216\]$'
    # the whole dict, key for key, as run_extraction_figure4.py saves it (SPEC §7.3), plus sfpipe's
    # "weights" (which weights ran)
    run -0 sf-tensor tree "$T/fig4.pt"
    assert_line "/: dict of 11"
    assert_line --regexp "^/weights: str '(checkpoint|base) .*'$"
    for k in "attention_weights: list of 2" "prompt: str '$PROMPT'" "num_frames: int 9" "frame_seq_length: int 24" \
        "num_frame_per_block: int 3" "layer_indices: list of 2" "layer_indices/1: int 2" "is_logits: bool True" \
        "capture_method: str 'native_inference_capture'" "query_frames/0: int 6" "query_frames/2: int 8" \
        "key_frames: list of 9" "attention_weights/0: dict of 8" "attention_weights/1/layer_idx: int 2" \
        "attention_weights/0/is_logits: bool True" "attention_weights/0/num_frames: int 9" \
        "attention_weights/0/frame_seq_length: int 24" "attention_weights/0/num_heads: int 2" \
        "attention_weights/0/num_query_frames: int 3" "attention_weights/0/num_key_frames: int 9"; do
        assert_line "/$k"
    done
    # and the dict's key order is the reference's (sfpipe's "weights" comes last)
    run -0 bash -c "sf-tensor tree '$T/fig4.pt' | grep -E '^/[a-z_]+:' | cut -d: -f1 | tr '\n' ' '"
    assert_output "/attention_weights /prompt /num_frames /frame_seq_length /num_frame_per_block /layer_indices /is_logits /capture_method /query_frames /key_frames /weights "
    run -2 "$SF_ROOT/pipelines/figure4.sh" --bogus
    run -1 "$SF_ROOT/pipelines/figure4.sh" --output_path "$T/no/such/dir/x.pt" --model-dir "$M"
    assert_output --partial "does not exist (like the reference; mkdir -p $T/no/such/dir)"
}

@test "figure4.sh: --flag=value and unique prefixes as argparse takes them; layer_indices stored as given" {
    cd "$T"
    run -0 "$SF_ROOT/pipelines/figure4.sh" --config_path=configs/self_forcing_dmd.yaml --checkpoint-path="$M/ckpt.pt" \
        --output_path="$T/fig4.pt" --prompt="--a prompt=like a flag" --num 3 --layer_indices 2 0 2 --use_ema \
        --model-dir="$M" --heig=64 --wid 96 --cache-dir="$T/cache" --progress=none
    run -0 sf-tensor tree "$T/fig4.pt"
    # the reference saves args.layer_indices as typed; attention_weights: one per layer, ascending
    for k in "layer_indices: list of 3" "layer_indices/0: int 2" "layer_indices/1: int 0" "layer_indices/2: int 2" \
        "attention_weights: list of 2" "attention_weights/0/layer_idx: int 0" "attention_weights/1/layer_idx: int 2" \
        "prompt: str '--a prompt=like a flag'" "num_frames: int 3"; do
        assert_line "/$k"
    done
    run -0 sf-tensor ls "$T/fig4.pt"
    assert_line --regexp '^attention_weights/1/attn_logits	f16	\[1, 2, 72, 72\]$' # 64×96, 3 frames
}

@test "figure4.sh: a bad layer or flag is one line and exit 2, before any stage starts" {
    cd "$T"
    local args=(--model-dir "$M" --output_path "$T/b.pt" --cache-dir "$T/cache" --num_frames 3 --height 64 --width 96)
    run -2 --separate-stderr "$SF_ROOT/pipelines/figure4.sh" "${args[@]}" --layer_indices -1
    assert_equal "$stderr" "figure4.sh: error: --layer_indices: '-1' is not a layer (a non-negative integer)"
    run -2 --separate-stderr "$SF_ROOT/pipelines/figure4.sh" "${args[@]}" --layer_indices 0 x
    assert_equal "$stderr" "figure4.sh: error: --layer_indices: 'x' is not a layer (a non-negative integer)"
    run -2 --separate-stderr "$SF_ROOT/pipelines/figure4.sh" "${args[@]}" --layer_indices=3
    assert_equal "$stderr" "figure4.sh: error: --layer_indices: layer 3 out of range (the model has 3 layers: 0..2)"
    run -2 --separate-stderr "$SF_ROOT/pipelines/figure4.sh" "${args[@]}" --c x
    assert_equal "$stderr" "figure4.sh: error: ambiguous option: --c could match --config-path, --checkpoint-path, --cache-dir"
    run -2 --separate-stderr "$SF_ROOT/pipelines/figure4.sh" "${args[@]}" --no_checkpoint=1
    assert_equal "$stderr" "figure4.sh: error: --no_checkpoint takes no value (got '--no_checkpoint=1')"
    run -2 --separate-stderr "$SF_ROOT/pipelines/figure4.sh" "${args[@]}" --bogus=1
    assert_equal "$stderr" "figure4.sh: error: unknown option '--bogus=1' (see --help)"
    # sf-denoise's own refusals come from its --check before sf-encode starts: one line, no
    # "downstream closed" from the encoder behind it
    run -2 --separate-stderr "$SF_ROOT/pipelines/figure4.sh" "${args[@]}" --height 65
    assert_equal "$stderr" "figure4.sh: error: --height/--width must be multiples of 16 (latent /8, patch 2)"
    run -1 --separate-stderr "$SF_ROOT/pipelines/figure4.sh" "${args[@]}" --config_path "$T/none.yaml"
    assert_equal "$stderr" "figure4.sh: error: cannot open $T/none.yaml: No such file or directory"
    [ ! -e "$T/b.pt" ]
}

@test "the reference drop-ins' --help prints their usage comment, whole, and no code" {
    local s
    for s in figure4.sh streaming.sh full_attention.sh streaming_distributed.sh each.sh highframe.sh demo.sh; do
        run -0 "$SF_ROOT/pipelines/$s" --help
        # the leading comment block, "# " stripped, is the help text
        assert_output "$(awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$SF_ROOT/pipelines/$s")"
        assert_line --index 0 --regexp "^$s — the reference's"
        refute_output --partial "set -euo"
        refute_output --partial "usage()"
    done
    run -0 "$SF_ROOT/pipelines/sink_study.sh" --help # the same reader (flags.sh sf_usage)
    assert_output "$(awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$SF_ROOT/pipelines/sink_study.sh")"
    assert_line --index 0 --regexp "^sink_study.sh — the attention-sink study"
}

@test "make demo: tiny model → video, taps and image-to-video on the CPU" {
    [ "${SF_BUILD:-build}" = build ] || skip "runs the regular build only (this is $SF_BUILD)"
    cd "$SF_ROOT"
    run -0 env DEMO_OUT="$T/demo" bash tests/demo.sh
    assert_output --partial "demo: video: $T/demo/demo."
    assert_output --partial "attention_weights/0/attn_logits"
    [ -s "$T/demo/attention_cache_figure4.pt" ]
    v=$(ls "$T"/demo/demo.*)
    [ "$(frames "$v")" = 33 ]
    if command -v ffmpeg >/dev/null; then # image-to-video from its first frame: 1 + 9 latent frames
        assert_output --partial "demo: image-to-video: $T/demo/i2v.mp4"
        [ "$(frames "$T/demo/i2v.mp4")" = 37 ]
        # the sink frame's token map of each tapped layer (0, 2) over the video's first frame, embedded once
        assert_output --partial "demo: the sink frame's attention map over it: $T/demo/sink_tokens.svg"
        assert_equal "$(grep -c 'class="frame"' "$T/demo/sink_tokens.svg") $(grep -c '<use href="#tok-bg-1"' "$T/demo/sink_tokens.svg")" "1 2"
    fi
}

@test "make install: programs, configs and pipelines work from another directory" {
    [ "${SF_BUILD:-build}" = build ] || skip "installs the regular build only (this is $SF_BUILD)"
    make -C "$SF_ROOT" install PREFIX="$T/prefix" >/dev/null
    [ -x "$T/prefix/bin/sf-denoise" ]
    [ -f "$T/prefix/share/sfpipe/configs/default_config.yaml" ]
    cd "$T"
    # the installed stages find configs/ and pipelines/ without the source tree in the cwd
    PATH="$T/prefix/bin:$PATH" run -0 sf-run pipelines/t2v.yaml model_dir="$M" checkpoint="$M/ckpt.pt" \
        output="$T/inst.y4m" cache_dir="$T/cache" num_frames=9 height=64 width=96
    [ "$(frames "$T/inst.y4m")" = 33 ]
    PATH="$T/prefix/bin:$PATH" run -0 "$T/prefix/share/sfpipe/pipelines/figure4.sh" --model-dir "$M" \
        --checkpoint_path "$M/ckpt.pt" --output_path "$T/f.pt" --num_frames 9 --height 64 --width 96 --cache-dir "$T/cache" \
        --layer_indices 0 2
    [ -s "$T/f.pt" ]
    # the other reference drop-ins are installed beside it and find the installed programs
    PATH="$T/prefix/bin:$PATH" run -0 "$T/prefix/share/sfpipe/pipelines/full_attention.sh" --model-dir "$M" --no_checkpoint \
        --output_path "$T/fa.pt" --num_frames 3 --height 64 --width 96 --cache-dir "$T/cache" --layer_indices 1
    [ -s "$T/fa.pt" ]
    PATH="$T/prefix/bin:$PATH" run -0 "$T/prefix/share/sfpipe/pipelines/streaming_distributed.sh" --model-dir "$M" \
        --no_checkpoint --output_dir "$T/sd" --num_frames 3 --height 64 --width 96 --cache-dir "$T/cache" --layer_indices 1
    [ -s "$T/sd/layer1.pt" ]
    run -0 "$T/prefix/share/sfpipe/pipelines/highframe.sh" --help # flags.sh beside it
    assert_line --index 0 --regexp "^highframe.sh — the reference's"
    # demo.sh finds live.yaml beside it and the installed sf-run
    run -0 "$T/prefix/share/sfpipe/pipelines/demo.sh" --dry-run --model-dir "$M"
    assert_line --regexp "^sf-view --port 5001 --bind 127\.0\.0\.1 "
    # sink_study.yaml's stage (./sink_study.sh, next to the spec) and flags.sh are installed too
    PATH="$T/prefix/bin:$PATH" run -1 sf-run pipelines/sink_study.yaml dmd_checkpoint="$T/none.pt" --log-level warn
    assert_output --partial "stage 'study' failed (exit 2): sink_study.sh: error: checkpoint $T/none.pt not found"
}

@test "after a plain make, without build/bin on PATH: build/bin/sf-run, figure4.sh and streaming.sh find the programs" {
    bin="$SF_ROOT/${SF_BUILD:-build}/bin"
    bare=$(printf '%s\n' "${PATH//:/$'\n'}" | grep -vxF -e "$bin" -e "$bin/" | paste -sd: -)
    if PATH=$bare command -v sf-encode >/dev/null; then skip "sf-encode is installed on PATH: $(PATH=$bare command -v sf-encode)"; fi
    cd "$T"
    PATH=$bare run -0 "$bin/sf-run" "$SF_ROOT/pipelines/t2v.yaml" model_dir="$M" checkpoint="$M/ckpt.pt" \
        output="$T/run.y4m" cache_dir="$T/cache" num_frames=3 height=64 width=96
    [ "$(frames "$T/run.y4m")" = 9 ]
    PATH=$bare run -0 "$SF_ROOT/pipelines/figure4.sh" --model-dir "$M" --checkpoint_path "$M/ckpt.pt" \
        --output_path "$T/f.pt" --num_frames 3 --height 64 --width 96 --cache-dir "$T/cache" --layer_indices 0
    [ -s "$T/f.pt" ]
    PATH=$bare run -0 "$SF_ROOT/pipelines/streaming.sh" --model-dir "$M" --no_checkpoint --output_path "$T/s/f.pt" \
        --num_frames 3 --layer_index 0 --height 64 --width 96 --cache-dir "$T/cache" --progress none
    [ -s "$T/s/f.pt" ]
}

@test "SF_TRACE: the stages write one timeline and timeline.sh turns it into the run's figures" {
    args=(model_dir="$M" checkpoint="$M/ckpt.pt" output="$T/run.y4m" cache_dir="$T/cache" num_frames=9 height=64 width=96 prompt="$PROMPT")
    SF_TRACE="$T/trace" run -0 sf-run pipelines/t2v.yaml "${args[@]}"
    # every stage wrote its events, whole lines, in time order per process
    run -0 awk '{print $2, $3}' "$T/trace"
    [ "$(grep -c '^encode embeds_out$' <<<"$output")" = 1 ]
    [ "$(grep -c '^denoise ready$' <<<"$output")" = 1 ]
    [ "$(grep -c '^denoise embeds_in$' <<<"$output")" = 1 ]
    [ "$(grep -c '^decode ready$' <<<"$output")" = 1 ] # t2v.yaml gives sf-decode the video's size
    [ "$(grep -c '^denoise start$' <<<"$output")" = 1 ]
    [ "$(grep -c '^denoise block_out$' <<<"$output")" = 3 ]
    [ "$(grep -c '^decode frames_out$' <<<"$output")" = 3 ]
    [ "$(grep -c '^decode latent_out$' <<<"$output")" = 9 ] # each latent frame's frames go out at once
    [ "$(grep -c '^decode end$' <<<"$output")" = 1 ]
    run -0 awk 'NF != 5 || length($1) != 19 || $1 !~ /^[0-9]+$/' "$T/trace"
    [ -z "$output" ]
    run -0 tests/gpu/timeline.sh "$T/trace"
    # 9 frames per 3 blocks of 3 latents: 1 + 4 + 4 frames... the real count is what the video has
    assert_output --regexp '^dit=[0-9.]+ first=[0-9.]+ steady_ms=[0-9.]+ e2e=[0-9.]+ blocks=3 decoded_blocks=3 frames=[0-9]+ fps=[0-9.]+ lag=[0-9.]+$'
    read -r dit first steady e2e _ _ _ _ lag <<<"$(sed 's/[a-z_0-9]*=//g' <<<"$output")"
    [ "$(frames "$T/run.y4m")" = "$(sed -E 's/.* frames=([0-9]+) .*/\1/' <<<"$output")" ]
    # first frames come after the first block, the video ends after the DiT's last block
    awk -v d="$dit" -v f="$first" -v e="$e2e" 'BEGIN { exit !(f > 0 && f <= e && d <= e) }'
    # measured from t0, the later of the embedding's output and sf-denoise's ready, lag before its first
    # forward: t0 as the trace has it
    st=$(awk '$2 == "denoise" && $3 == "start" { print $1; exit }' "$T/trace")
    t0=$(sort -n "$T/trace" | awk -v st="$st" '$3 == "embeds_out" && !e { e = $1 } $2 == "denoise" && $3 == "ready" { r = $1 }
        $2 == "decode" && $3 == "ready" { d = $1 } END { t = e > r ? e : r; if (d > t) t = d < st ? d : st; print t }')
    awk -v l="$lag" -v t0="$t0" -v st="$st" 'BEGIN { d = (st - t0) / 1e9 - l; exit !(d < 0.002 && d > -0.002) }'
    # "first" is the first latent frame's frames, before the first block's last (its frames_out)
    f0=$(sort -n "$T/trace" | awk '$2 == "decode" && $3 == "frames_out" { print $1; exit }')
    awk -v f="$first" -v t0="$t0" -v f0="$f0" 'BEGIN { exit !(f < (f0 - t0) / 1e9) }'
    # a trace without the decoder's events is refused with a reason
    grep -v '^[0-9]* decode' "$T/trace" >"$T/partial"
    run -1 tests/gpu/timeline.sh "$T/partial"
    assert_output --partial "no decode frames_out event"
}

@test "sf-denoise readies itself (weights, state, plans) before it waits for its embedding" {
    # the embedding is written only once sf-denoise says it is ready (or after 20 s, which fails below):
    # its one-time work comes before its input, not after it, however loaded the machine
    encode --no-cache --out "$T/emb.wire" 2>/dev/null
    mkfifo "$T/in"
    (for _ in $(seq 400); do grep -qs ' denoise ready ' "$T/trace" && break; sleep 0.05; done
     sleep 1; timeout 30 cat "$T/emb.wire" >"$T/in") 3>&- &
    PIDS+=($!)
    SF_TRACE="$T/trace" run -0 denoise --in "$T/in" --save-latents "$T/lat.safetensors"
    rd=$(awk '$2 == "denoise" && $3 == "ready" { print $1 }' "$T/trace")
    ei=$(awk '$2 == "denoise" && $3 == "embeds_in" { print $1 }' "$T/trace")
    st=$(awk '$2 == "denoise" && $3 == "start" { print $1 }' "$T/trace")
    [ -n "$rd" ]
    [ -n "$ei" ]
    [ -n "$st" ]
    awk -v rd="$rd" -v ei="$ei" -v st="$st" 'BEGIN { exit !((ei - rd) / 1e9 > 0.9 && st >= ei) }'
    # and the video is the one an embedding in hand from the start gives
    encode --no-cache --save-embeds "$T/e.safetensors"
    denoise --prompt-embeds "$T/e.safetensors:emb.0" --save-latents "$T/lat2.safetensors"
    run -0 sf-tensor diff "$T/lat.safetensors" "$T/lat2.safetensors" -q
}
