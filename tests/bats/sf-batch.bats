#!/usr/bin/env bats
# sf-batch in local mode: the reference inference.py's names and flags, per-video seeds, N workers
# with a killed one restarted, resumable reruns, failures with reasons, taps, the sbatch script.
# (The Slurm job array itself: sf-batch-slurm.bats.)
bats_require_minimum_version 1.5.0
load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
load tiny_model

setup_file() {
    tiny_model_make
}

setup() {
    T="$BATS_TEST_TMPDIR"
    for i in $(seq 0 11); do echo "prompt $i: a paper boat on a stream"; done >"$T/prompts.txt"
    B=(--data_path "$T/prompts.txt" --output_folder "$T/out" --model-dir "$M" --checkpoint_path "$M/ckpt.pt"
        --use_ema --save_with_index --num_output_frames 3 --height 32 --width 48 --cache-dir "$T/cache" --threads 1)
    PIDS=()
}

teardown() {
    for p in "${PIDS[@]}"; do kill -- "-$p" "$p" 2>/dev/null || true; done
}

videos() { find "$T/out" -maxdepth 1 -name '*.mp4' | wc -l; }
# $T/roll.yaml: the reference's 4-step config with a 6-frame rolling KV cache and a sink of $1 frames
roll_config() {
    printf 'denoising_step_list: [1000, 750, 500, 250]\nwarp_denoising_step: true\nnum_frame_per_block: 3\nmodel_kwargs:\n  timestep_shift: 5.0\n  local_attn_size: 6\n  sink_size: %s\n' "$1" >"$T/roll.yaml"
}
wait_for() { # $1 a command, $2 seconds
    local i
    for ((i = 0; i < $2 * 20; i++)); do eval "$1" && return 0; sleep 0.05; done
    echo "# timed out waiting for: $1" >&2
    return 1
}
# one video the way a user would make it by hand: the stages with the noise flags $2 (a word list)
by_hand() {
    sf-encode --model-dir "$M" --prompt "$1" --cache-dir "$T/cache" --threads 1 --out - 2>/dev/null |
        sf-denoise --model-dir "$M" --checkpoint_path "$M/ckpt.pt" --use_ema --num_frames 3 --height 32 --width 48 \
            $2 --progress none --threads 1 2>/dev/null |
        sf-decode --model-dir "$M" --progress none --threads 1 -o "$3" 2>/dev/null
}

@test "names, per-video seeds and samples follow the reference; worker count does not change a byte" {
    head -n 3 "$T/prompts.txt" >"$T/p3.txt"
    run -0 sf-batch "${B[@]}" --data_path "$T/p3.txt" --num_samples 2 --seed 10 --workers 2
    run ls "$T/out"
    assert_output "$(printf '%s\n' 0-0_ema.mp4 0-1_ema.mp4 1-0_ema.mp4 1-1_ema.mp4 2-0_ema.mp4 2-1_ema.mp4)"
    # video (i, s) has the reference's noise: inference.py's seed-once loop, prompt 1 of it, sample 1 of 2
    by_hand "prompt 1: a paper boat on a stream" "--seed 10 --noise-rng torch-cuda --noise-sequence 1 --noise-batch 2:1" "$T/hand.mp4"
    cmp "$T/hand.mp4" "$T/out/1-1_ema.mp4"
    by_hand "prompt 1: a paper boat on a stream" "--seed 10 --noise-rng torch-cuda --noise-batch 2:1" "$T/hand0.mp4"
    ! cmp -s "$T/hand0.mp4" "$T/out/1-1_ema.mp4" || false
    # --noise-rng sfpipe: sfpipe's generator, seed + i*num_samples + s: prompt 1, sample 1 → 13
    run -0 sf-batch "${B[@]}" --data_path "$T/p3.txt" --num_samples 2 --seed 10 --noise-rng sfpipe --output_folder "$T/own"
    by_hand "prompt 1: a paper boat on a stream" "--seed 13" "$T/hand13.mp4"
    cmp "$T/hand13.mp4" "$T/own/1-1_ema.mp4"
    # one worker instead of two: the same bytes
    run -0 sf-batch "${B[@]}" --data_path "$T/p3.txt" --num_samples 2 --seed 10 --workers 1 --output_folder "$T/one"
    for f in "$T/out/"*.mp4; do cmp "$f" "$T/one/$(basename "$f")"; done
    # without --save_with_index: <prompt[:100]>-<sample>.mp4 ('/' cannot be in a name); no --use_ema: _regular
    printf '%s\n' "a/b $(printf 'x%.0s' $(seq 120))" >"$T/long.txt"
    run -0 sf-batch --data_path "$T/long.txt" --output_folder "$T/names" --model-dir "$M" --num_output_frames 3 --height 32 --width 48 \
        --cache-dir "$T/cache" --threads 1
    [ -f "$T/names/a_b $(printf 'x%.0s' $(seq 96))-0.mp4" ]
    # a blank line keeps its index; --extended_prompt_path is the text generated (line for line)
    printf 'short a\n\nshort b\n' >"$T/s.txt"
    printf 'long a\n\nlong b, at night\n' >"$T/e.txt"
    run -0 sf-batch "${B[@]}" --data_path "$T/s.txt" --extended_prompt_path "$T/e.txt" --output_folder "$T/ext"
    run ls "$T/ext"
    assert_output "$(printf '%s\n' 0-0_ema.mp4 2-0_ema.mp4)"
    by_hand "long b, at night" "--seed 0 --noise-rng torch-cuda --noise-sequence 2" "$T/hand2.mp4"   # the blank line drew its noise
    cmp "$T/hand2.mp4" "$T/ext/2-0_ema.mp4"
    head -n 1 "$T/e.txt" >"$T/e1.txt"
    run -1 --separate-stderr sf-batch "${B[@]}" --data_path "$T/s.txt" --extended_prompt_path "$T/e1.txt" --output_folder "$T/x"
    assert_equal "$stderr" "sf-batch: error: --extended_prompt_path has 1 lines, --data_path 3 (they must match)"
    [ ! -e "$T/x" ]
    run -0 sf-batch --data_path "$T/p3.txt" --output_folder "$T/reg" --model-dir "$M" --num_output_frames 3 \
        --height 32 --width 48 --save_with_index --dry-run
    assert_line "sf-batch: dry run: 3 of 3 videos to do on 1 worker"
    [ ! -e "$T/reg" ]   # a dry run writes nothing
}

@test "--torchrun W[:P]: the noise of the reference under torchrun (rank i mod W seeded seed + LOCAL_RANK, its loop's video i div W)" {
    head -n 3 "$T/prompts.txt" >"$T/p3.txt"
    run -0 --separate-stderr sf-batch "${B[@]}" --data_path "$T/p3.txt" --seed 10 --torchrun 2
    # prompt 1: rank 1's first video, seeded 11; prompt 2: rank 0's second (the reference drops it: drop_last)
    by_hand "prompt 1: a paper boat on a stream" "--seed 11 --noise-rng torch-cuda --noise-sequence 0" "$T/hand1.mp4"
    cmp "$T/hand1.mp4" "$T/out/1-0_ema.mp4"
    assert_equal "$(cut -f1,4 "$T/out/.sf-batch/all.tsv" | tr '\t\n' ' |')" "0-0_ema.mp4 10/0/0|1-0_ema.mp4 11/0/0|2-0_ema.mp4 10/1/0|"
    [[ "$stderr" == *"note: under torchrun on 2 processes the reference (DistributedSampler, drop_last) makes no video of the last 1 of the 3 prompts"* ]]
    # another process count is another video set: refused in this folder
    run -2 --separate-stderr sf-batch "${B[@]}" --data_path "$T/p3.txt" --seed 10
    [[ "$stderr" == *"--torchrun 2:2 (now 0:0)"* ]]
    # two nodes of 2: rank 3 is LOCAL_RANK 1 (seed + 1); 5 prompts, 4 processes: prompt 4 is rank 0's second
    printf 'p%s\n' 0 1 2 3 4 >"$T/p5.txt"
    run -0 sf-batch "${B[@]}" --data_path "$T/p5.txt" --seed 10 --torchrun 4:2 --num_samples 2 --output_folder "$T/n2" \
        --num_output_frames 3
    assert_equal "$(awk -F'\t' '$3 == 1 { printf "%s ", $4 }' "$T/n2/.sf-batch/all.tsv")" "10/0/1 11/0/1 10/0/1 11/0/1 10/1/1 "
    # refusals: one line, exit 2
    run -2 --separate-stderr sf-batch "${B[@]}" --data_path "$T/p3.txt" --torchrun 4:3 --output_folder "$T/x"
    assert_equal "$stderr" "sf-batch: error: --torchrun 4:3: the processes per node must divide the process count"
    run -2 --separate-stderr sf-batch "${B[@]}" --data_path "$T/p3.txt" --torchrun 2 --noise-rng sfpipe --output_folder "$T/x"
    assert_equal "$stderr" "sf-batch: error: --torchrun reproduces the reference's torch.randn streams: not with --noise-rng sfpipe"
    run -2 --separate-stderr sf-batch "${B[@]}" --data_path "$T/p3.txt" --torchrun 0x --output_folder "$T/x"
    assert_equal "$stderr" "sf-batch: error: --torchrun: expected W or W:P (processes, and per node), got '0x'"
    run -2 --separate-stderr sf-batch "${B[@]}" --data_path "$T/p3.txt" --torchrun 0 --output_folder "$T/x"
    assert_equal "$stderr" "sf-batch: error: --torchrun: the process count must be in 1..65536"
    [ ! -e "$T/x" ]
}

@test "12 prompts on 3 workers, one killed mid-run: restarted, 12 videos, its finished ones kept" {
    sf-batch "${B[@]}" --workers 3 2>"$T/log" 3>&- &
    PIDS+=($!)
    rec="$T/out/.sf-batch/tasks/local_1"
    wait_for "grep -q ': [1-3] done' '$rec' 2>/dev/null" 120
    victim=$(sed -nE 's/.* pid ([0-9]+).*/\1/p' "$rec")
    kill -9 "$victim"
    wait "${PIDS[0]}"
    cat "$T/log"
    grep -q "worker 1 (pid $victim) killed by SIGKILL: restarting it (retry 1/1)" "$T/log"
    grep -q "summary: 12 videos in $T/out: 12 done, 0 skipped (already there), 0 failed, 0 not done (3 workers)" "$T/log"
    [ "$(videos)" = 12 ]
    # the restarted worker skipped what the killed one had finished
    grep -Eq 'finished on .*: [1-3] done, [1-3] skipped, 0 failed' "$rec"
    ! pgrep -f -- "--worker $T/out" >/dev/null || false # no worker or stage of it left behind
    [ -z "$(ls -A "$T/out/.sf-batch/tmp" 2>/dev/null)" ]
}

@test "--retries 0: a killed worker's videos are left; the rerun does only those; a third run nothing" {
    sf-batch "${B[@]}" --workers 3 --retries 0 2>"$T/log" 3>&- &
    PIDS+=($!)
    rec="$T/out/.sf-batch/tasks/local_2"
    wait_for "grep -q ': [1-3] done' '$rec' 2>/dev/null" 120
    kill -9 "$(sed -nE 's/.* pid ([0-9]+).*/\1/p' "$rec")"
    rc=0; wait "${PIDS[0]}" || rc=$?
    [ "$rc" = 1 ]
    n=$(videos)
    grep -q "no retries left" "$T/log"
    grep -q "summary: 12 videos in $T/out: $n done, 0 skipped (already there), 0 failed, $((12 - n)) not done" "$T/log"
    stat -c '%n %i %Y' "$T/out/"*.mp4 >"$T/before"
    run -0 sf-batch "${B[@]}" --workers 3
    assert_output --partial "summary: 12 videos in $T/out: $((12 - n)) done, $n skipped (already there), 0 failed, 0 not done"
    while read -r f rest; do [ "$(stat -c '%n %i %Y' "$f")" = "$f $rest" ]; done <"$T/before"
    run -0 sf-batch "${B[@]}" --workers 3
    assert_output --partial "nothing to do: all 12 videos are in $T/out"
    run -0 sf-batch --status "$T/out"
    assert_line --index 0 "$T/out: 12 videos: 12 done, 0 failed, 0 to do"
    assert_line --regexp '^  worker 2: finished on .*: [0-9]+ done, [0-9]+ skipped, 0 failed$'
}

@test "SIGHUP or SIGTERM to sf-batch stops every worker and stage: 129 / 143, the summary, --status says stopped; a rerun finishes" {
    # a closed terminal (SIGHUP) or kill (SIGTERM) reaches sf-batch only: its workers run in sessions
    # of their own, so it must stop them, as sf-run stops its stages
    for sig in HUP:129 TERM:143; do
        rm -f "$T/out/.sf-batch/tasks/"*   # the records of the run before
        sf-batch "${B[@]}" --workers 2 2>"$T/log" 3>&- &
        runner=$!
        PIDS+=("$runner")
        wait_for "grep -q ': [1-9][0-9]* done' '$T/out/.sf-batch/tasks/local_0' 2>/dev/null" 120
        kill -"${sig%:*}" "$runner"
        rc=0
        wait "$runner" || rc=$?
        [ "$rc" = "${sig#*:}" ] || { cat "$T/log"; false; }
        grep -q "summary: 12 videos in $T/out: .* not done (interrupted by SIG${sig%:*})" "$T/log"
        wait_for "! pgrep -f -- '--worker $T/out' >/dev/null" 5 # no worker or stage of it left behind
        [ -z "$(find "$T/out" -maxdepth 1 -type f ! -name '*.mp4')" ] # nothing half-written in the folder
        run -0 sf-batch --status "$T/out"
        assert_line --regexp '^  worker 0: stopped on .* by SIGTERM: [0-9]+ done, [0-9]+ skipped, 0 failed$'
        refute_output --partial "gone:"
    done
    run -0 sf-batch "${B[@]}" --workers 2
    assert_output --partial "0 failed, 0 not done (2 workers)"
    [ "$(videos)" = 12 ]
}

@test "sf-batch SIGKILLed: its workers and their stages stop too (the death signal), the record says so" {
    # a SIGKILLed sf-batch runs no trap; its workers, in sessions of their own, would run on
    # (160x256: a video takes seconds)
    sf-batch "${B[@]}" --workers 2 --height 160 --width 256 2>"$T/log" 3>&- &
    runner=$!
    PIDS+=("$runner")
    wait_for "grep -q pid '$T/out/.sf-batch/tasks/local_0' 2>/dev/null" 60
    wait_for "grep -q pid '$T/out/.sf-batch/tasks/local_1' 2>/dev/null" 60
    w0=$(sed -nE 's/.* pid ([0-9]+).*/\1/p' "$T/out/.sf-batch/tasks/local_0")
    w1=$(sed -nE 's/.* pid ([0-9]+).*/\1/p' "$T/out/.sf-batch/tasks/local_1")
    PIDS+=("$w0" "$w1")
    wait_for "pgrep -f -- '-o $T/out/.sf-batch/tmp/' >/dev/null" 60 # a video's stages are running
    kill -9 "$runner"
    wait_for "! pgrep -g '$w0,$w1' >/dev/null" 5 # no worker or stage of theirs left behind
    run -0 sf-batch --status "$T/out"
    assert_line --regexp '^  worker 0: stopped on .* by SIGTERM: [0-9]+ done, [0-9]+ skipped, 0 failed$'
    assert_line --regexp '^  worker 1: stopped on .* by SIGTERM: [0-9]+ done, [0-9]+ skipped, 0 failed$'
    [ -z "$(find "$T/out" -maxdepth 1 -type f ! -name '*.mp4')" ] # nothing half-written in the folder
    # a worker whose sf-batch died before the death signal was armed does not start
    job=$(ls "$T/out/.sf-batch/jobs/"*.tsv | head -1)
    SF_BATCH_PARENT=1 run -143 sf-batch "${B[@]}" --worker "$job" --task 0 --tasks 2
    assert_output --partial "worker 0: its sf-batch (pid 1) is gone: not starting"
}

@test "a failing video is reported with its reason; the others are made; exit 1" {
    printf 'a good prompt\nbad \xff\xfe bytes\nanother good one\n' >"$T/bad.txt"
    run -1 --separate-stderr sf-batch "${B[@]}" --data_path "$T/bad.txt" --workers 2
    [ "$(videos)" = 2 ]
    [ ! -e "$T/out/1-0_ema.mp4" ]
    assert_equal "$(grep -c 'summary: 3 videos in .*: 2 done, 0 skipped (already there), 1 failed, 0 not done' <<<"$stderr")" 1
    grep -q 'failed: 1-0_ema.mp4: sf-encode: error: .*UTF-8' <<<"$stderr"
    run -0 sf-batch --status "$T/out"
    assert_line "$T/out: 3 videos: 2 done, 1 failed, 0 to do"
}

@test "--encode-device: the text encoder runs there, the other stages on --device (no GPU here: its encode fails)" {
    printf 'a red fox\n' >"$T/p1.txt"
    run -1 --separate-stderr sf-batch "${B[@]}" --data_path "$T/p1.txt" --encode_device cuda:0
    # (a build without nvcc says so instead: the GPU is asked for either way)
    local gpu='sf-encode: error: (no usable CUDA GPU|this build has no CUDA support)'
    grep -qE "failed: 0-0_ema.mp4: $gpu" <<<"$stderr"
    grep -qE "$gpu" "$T/out/.sf-batch/logs/prefill-local_0.log"
    run -0 sf-batch "${B[@]}" --data_path "$T/p1.txt" --encode-device cpu
    [ -s "$T/out/0-0_ema.mp4" ]
}

@test "--vae: sf-decode decodes with that checkpoint (a TAEHV); recorded: a rerun without it is refused" {
    printf 'a red fox\n' >"$T/p1.txt"
    G="${SF_GOLDEN:-$BATS_TEST_DIRNAME/../golden}"
    run -1 --separate-stderr sf-batch "${B[@]}" --data_path "$T/p1.txt" --vae "$T/none.pth"
    [[ "$stderr" == *"--vae $T/none.pth: cannot read it"* ]]
    run -0 sf-batch "${B[@]}" --data_path "$T/p1.txt" --vae "$G/model/taehv_tiny.pth" --log-level info
    [ -s "$T/out/0-0_ema.mp4" ]
    grep -q "sf-decode: info: TAEHV $G/model/taehv_tiny.pth" "$T/out/.sf-batch/logs/0-0_ema.log"
    grep -qx "vae=$G/model/taehv_tiny.pth" "$T/out/.sf-batch/flags"
    run -2 --separate-stderr sf-batch "${B[@]}" --data_path "$T/p1.txt"
    [[ "$stderr" == *"made with other flags: --vae $G/model/taehv_tiny.pth (now none)"* ]]
}

@test "--fp8: sf-denoise runs its block linears in float8; recorded: a rerun without it is refused" {
    printf 'a red fox\n' >"$T/p1.txt"
    run -0 sf-batch "${B[@]}" --data_path "$T/p1.txt" --fp8 --log-level info
    [ -s "$T/out/0-0_ema.mp4" ]
    grep -q "sf-denoise: info: fp8: [0-9]* of [0-9]* block linears in float8" "$T/out/.sf-batch/logs/0-0_ema.log"
    grep -qx "fp8=1" "$T/out/.sf-batch/flags"
    run -2 --separate-stderr sf-batch "${B[@]}" --data_path "$T/p1.txt"
    [[ "$stderr" == *"made with other flags: --fp8 1 (now 0)"* ]]
}

@test "--sink-ablate K --sink-ablate-layers L: passed to sf-denoise (its weights say so), recorded; a rerun without it is refused" {
    printf 'a red fox\n' >"$T/p1.txt"
    run -0 sf-batch "${B[@]}" --data_path "$T/p1.txt" --sink-ablate 1 --sink-ablate-layers 1-2 --log-level info
    [ -s "$T/out/0-0_ema.mp4" ]
    grep -q "sf-denoise: info: sink ablation: layers 1-2 skip the first 1 key frame of their context" "$T/out/.sf-batch/logs/0-0_ema.log"
    grep -qx "sink_ablate=1 layers 1-2" "$T/out/.sf-batch/flags"
    run -2 --separate-stderr sf-batch "${B[@]}" --data_path "$T/p1.txt"
    [[ "$stderr" == *"made with other flags: --sink_ablate 1 layers 1-2 (now 0)"* ]]
    # sf-denoise's own check of the layers, before any video
    run -2 --separate-stderr sf-batch "${B[@]}" --data_path "$T/p1.txt" --output_folder "$T/out2" --sink-ablate 1 --sink-ablate-layers 7
    [[ "$stderr" == *"sf-denoise --check: --sink-ablate-layers: layer 7 out of range"* ]]
}

@test "--deep-forcing, --Budget, --Recent, --is_ds_only: Deep Forcing's inference.py (its compression, or its Deep Sink alone), recorded; its 126 frames by default; refused beside --kv-compress or --sink-rope" {
    printf 'a red fox\n' >"$T/p1.txt"
    roll_config 1
    run -0 sf-batch "${B[@]}" --data_path "$T/p1.txt" --config_path "$T/roll.yaml" --num_output_frames 9 \
        --Budget 5 --Recent 3 --log-level info
    [ -s "$T/out/0-0_ema.mp4" ]
    grep -q "sf-denoise: info: KV compress (Deep Forcing's release): when a block would overflow the cache every layer keeps the sink, the 1 frames' worth of tokens" "$T/out/.sf-batch/logs/0-0_ema.log"
    grep -qx "deep_forcing=pc 5 3" "$T/out/.sf-batch/flags"
    run -2 --separate-stderr sf-batch "${B[@]}" --data_path "$T/p1.txt" --config_path "$T/roll.yaml" --num_output_frames 9
    [[ "$stderr" == *"made with other flags: --seed 1356145 (now 0), "*"--deep_forcing pc 5 3 (now 0)"* ]] # its seed too
    # Deep Sink alone: the sink a block's frames before the oldest recent frame
    run -0 sf-batch "${B[@]}" --data_path "$T/p1.txt" --output_folder "$T/ds" --config_path "$T/roll.yaml" \
        --num_output_frames 9 --is_ds_only 1 --log-level info
    [ -s "$T/ds/0-0_ema.mp4" ]
    grep -q "sink RoPE realign: once eviction opens a gap, the 1 sink frame moves in time to 3 frames before the oldest recent frame" "$T/ds/.sf-batch/logs/0-0_ema.log"
    grep -qx "deep_forcing=ds" "$T/ds/.sf-batch/flags"
    # its inference.py makes 126 latent frames unless told, with its configs' 21-frame window and deep sink (the video
    # there already: the flags checked and recorded, nothing made)
    sed -e 's/local_attn_size: 6/local_attn_size: 21/' -e 's/sink_size: 1/sink_size: 10/' "$T/roll.yaml" >"$T/sink10.yaml"
    mkdir -p "$T/o126" && : >"$T/o126/0-0_ema.mp4"
    run -0 sf-batch --data_path "$T/p1.txt" --output_folder "$T/o126" --model-dir "$M" --config_path "$T/sink10.yaml" \
        --deep-forcing --use_ema --save_with_index --height 32 --width 48 --threads 1
    grep -qx "num_output_frames=126" "$T/o126/.sf-batch/flags"
    grep -qx "seed=1356145" "$T/o126/.sf-batch/flags"
    grep -qx "deep_forcing=pc 16 4" "$T/o126/.sf-batch/flags"
    # the rule is its own: not beside ours; sizes sf-denoise --check refuses, before any video
    run -2 --separate-stderr sf-batch "${B[@]}" --data_path "$T/p1.txt" --output_folder "$T/out2" --config_path "$T/roll.yaml" \
        --deep-forcing --kv-compress 1
    [[ "$stderr" == *"sets the cache's rule itself: leave --kv-compress and --sink-rope out"* ]]
    run -2 --separate-stderr sf-batch "${B[@]}" --data_path "$T/p1.txt" --output_folder "$T/out2" --config_path "$T/roll.yaml" \
        --num_output_frames 9 --Budget 3
    [[ "$stderr" == *"sf-denoise --check: --pc-budget 3: the sink (1 frame) and the recent frames (4) need 5"* ]]
    [ ! -e "$T/out2/0-0_ema.mp4" ]
}

@test "--kv-compress N: passed to sf-denoise with a rolling-cache config (its log says so), recorded; refused without one" {
    printf 'a red fox\n' >"$T/p1.txt"
    roll_config 1
    run -0 sf-batch "${B[@]}" --data_path "$T/p1.txt" --config_path "$T/roll.yaml" --num_output_frames 9 \
        --kv-compress 2 --log-level info
    [ -s "$T/out/0-0_ema.mp4" ]
    grep -q "sf-denoise: info: KV compress: at each eviction every layer keeps, per head," "$T/out/.sf-batch/logs/0-0_ema.log"
    grep -qx "kv_compress=2" "$T/out/.sf-batch/flags"
    run -2 --separate-stderr sf-batch "${B[@]}" --data_path "$T/p1.txt" --config_path "$T/roll.yaml" --num_output_frames 9
    [[ "$stderr" == *"made with other flags: --kv_compress 2 (now 0)"* ]]
    # sf-denoise's own check, before any video: the default config has no rolling cache; a count that is not one
    run -2 --separate-stderr sf-batch "${B[@]}" --data_path "$T/p1.txt" --output_folder "$T/out2" --kv-compress 2
    [[ "$stderr" == *"sf-denoise --check: --kv-compress needs a rolling KV cache"* ]]
    run -2 --separate-stderr sf-batch "${B[@]}" --data_path "$T/p1.txt" --output_folder "$T/out2" --kv-compress x
    [[ "$stderr" == *"--kv-compress"* ]]
    [ ! -e "$T/out2/0-0_ema.mp4" ]
}

@test "--sink-rope realign --sink-rope-gap N: passed to sf-denoise with a rolling-cache config (its weights say so), recorded; refused without one" {
    printf 'a red fox\n' >"$T/p1.txt"
    roll_config 3
    run -0 sf-batch "${B[@]}" --data_path "$T/p1.txt" --config_path "$T/roll.yaml" --num_output_frames 9 \
        --sink-rope realign --sink-rope-gap 1 --log-level info
    [ -s "$T/out/0-0_ema.mp4" ]
    grep -q "sf-denoise: info: sink RoPE realign: once eviction opens a gap, the 3 sink frames move in time to 1 frame before" "$T/out/.sf-batch/logs/0-0_ema.log"
    grep -qx "sink_rope=realign gap 1" "$T/out/.sf-batch/flags"
    run -2 --separate-stderr sf-batch "${B[@]}" --data_path "$T/p1.txt" --config_path "$T/roll.yaml" --num_output_frames 9
    [[ "$stderr" == *"made with other flags: --sink_rope realign gap 1 (now absolute)"* ]]
    # sf-denoise's own check, before any video: the default config has no rolling cache
    run -2 --separate-stderr sf-batch "${B[@]}" --data_path "$T/p1.txt" --output_folder "$T/out2" --sink-rope realign
    [[ "$stderr" == *"sf-denoise --check: --sink-rope realign needs a rolling KV cache with a sink"* ]]
    [ ! -e "$T/out2/0-0_ema.mp4" ]
}

@test "the reason is the failing stage's line, even when the stage after it reports first" {
    # an sf-encode that speaks late: its error frame reaches sf-denoise, whose "upstream error: ..."
    # line is in the log a second before the encoder's own (what a loaded machine did once in CI)
    mkdir "$T/shim"
    printf '#!/bin/sh\n"%s" "$@" 2>"%s/enc.err"; rc=$?\nexec >&-\nsleep 1; cat "%s/enc.err" >&2; exit $rc\n' \
        "$(command -v sf-encode)" "$T" "$T" >"$T/shim/sf-encode"
    chmod +x "$T/shim/sf-encode"
    cp "$(command -v sf-batch)" "$T/shim/"   # sf-batch puts its own folder first on PATH
    printf 'bad \xff\xfe bytes\n' >"$T/bad.txt"
    run -1 --separate-stderr "$T/shim/sf-batch" "${B[@]}" --data_path "$T/bad.txt"
    log="$T/out/.sf-batch/logs/0-0_ema.log"
    [ "$(grep -n 'upstream error: .*UTF-8' "$log" | cut -d: -f1)" -lt "$(grep -n 'sf-encode: error:' "$log" | cut -d: -f1)" ]
    grep -q 'failed: 0-0_ema.mp4: sf-encode: error: .*UTF-8' <<<"$stderr"
}

@test "taps: --layer_indices writes the reference's tap dict beside each video" {
    head -n 2 "$T/prompts.txt" >"$T/p2.txt"
    run -0 sf-batch "${B[@]}" --data_path "$T/p2.txt" --layer_indices 0 2
    [ -f "$T/out/0-0_ema.pt" ]
    [ -f "$T/out/1-0_ema.pt" ]
    sf-tensor ls "$T/out/1-0_ema.pt" | grep -q 'attention_weights'
}

@test "taps: --tap-mode tokens / probs write the workbench's .safetensors beside each video; a folder keeps its tap flags" {
    head -n 1 "$T/prompts.txt" >"$T/p1.txt"
    run -0 sf-batch "${B[@]}" --data_path "$T/p1.txt" --layer_indices 0-1 --tap-mode tokens --tap-token-frames 1
    [ -f "$T/out/0-0_ema.mp4" ]
    [ ! -e "$T/out/0-0_ema.pt" ]
    # 3 frames: one block, its first forward (the seed selection) for layers 0 and 1; a 2×3 token grid
    assert_equal "$(sf-tensor ls "$T/out/0-0_ema.safetensors" | grep -c '^tokens\.L[01]\.b0\.s0	f32	\[2, 3, 6\]$')" 2
    grep -qx 'tap_mode=tokens' "$T/out/.sf-batch/flags"
    grep -qx 'tap_token_frames=1' "$T/out/.sf-batch/flags"
    # done means the video and its taps file: a rerun skips it, --status counts it
    run -0 sf-batch "${B[@]}" --data_path "$T/p1.txt" --layer_indices 0-1 --tap-mode tokens
    assert_output --partial "0 done, 1 skipped (already there)"
    run -0 sf-batch --status "$T/out"
    assert_output --partial "1 video: 1 done, 0 failed, 0 to do"
    rm "$T/out/0-0_ema.safetensors"
    run -0 sf-batch --status "$T/out"
    assert_output --partial "0 done, 0 failed, 1 to do"
    # another mode is another folder's
    run -2 --separate-stderr sf-batch "${B[@]}" --data_path "$T/p1.txt" --layer_indices 0-1 --tap-mode probs
    assert_equal "$stderr" "sf-batch: error: $T/out has videos made with other flags: --tap_mode tokens (now probs); use another --output_folder (or empty this one)"
    # probs with the cross-attention, every forward, in a new folder
    run -0 sf-batch "${B[@]}" --data_path "$T/p1.txt" --output_folder "$T/out2" --layer_indices 1 --tap-mode probs \
        --tap-cross --tap-select all
    assert_equal "$(sf-tensor ls "$T/out2/0-0_ema.safetensors" | grep -c '^\(probs\|cross\)\.L1\.b0\.s[0-4]	')" 10
    # the tap flags need layers; their values are sf-denoise's (its --check)
    run -2 --separate-stderr sf-batch "${B[@]}" --output_folder "$T/out3" --tap-mode probs
    assert_equal "$stderr" "sf-batch: error: --tap-mode, --tap-select, --tap-token-frames and --tap-cross go with --layer_indices (the layers to tap)"
    run -2 --separate-stderr sf-batch "${B[@]}" --output_folder "$T/out3" --layer_indices 0 --tap-mode prob
    assert_equal "$stderr" "sf-batch: error: sf-denoise --check: --tap-mode: expected logits, frames, probs or tokens, got 'prob'"
    [ ! -e "$T/out3" ]
}

@test "bad flags and inputs: one line, nothing written" {
    run -2 --separate-stderr sf-batch --output_folder "$T/o"
    assert_equal "$stderr" "sf-batch: error: --data_path PROMPTS.txt is required (see --help)"
    run -2 --separate-stderr sf-batch "${B[@]}" --num_samples 0
    assert_equal "$stderr" "sf-batch: error: --num_samples must be at least 1"
    run -2 --separate-stderr sf-batch "${B[@]}" --bogus
    assert_equal "$stderr" "sf-batch: error: unknown option '--bogus' (see --help)"
    run -1 --separate-stderr sf-batch "${B[@]}" --i2v # --data_path is then the reference's image folder
    assert_equal "$stderr" "sf-batch: error: --i2v --data_path $T/prompts.txt: no such folder (the reference's i2v data: target_crop_info_<ratio>.json and <ratio>/)"
    run -2 --separate-stderr sf-batch "${B[@]}" --layer_indices --workers 1
    assert_equal "$stderr" "sf-batch: error: --layer_indices needs at least one value"
    run -1 --separate-stderr sf-batch "${B[@]}" --checkpoint_path "$T/nope.pt"
    assert_equal "$stderr" "sf-batch: error: --checkpoint_path $T/nope.pt: no such file (without --checkpoint_path the base weights are used)"
    run -1 --separate-stderr sf-batch "${B[@]}" --data_path "$T/nope.txt"
    assert_equal "$stderr" "sf-batch: error: --data_path $T/nope.txt: no such file"
    [ ! -e "$T/out" ]
    run -0 sf-batch --help
    assert_output --partial "--data_path PROMPTS.txt --output_folder DIR"
    for f in --mem --cpus-per-task --job-name --nodelist --exclude --progress; do assert_output --partial -- "[$f "; done
}

@test "--help names every flag sf-batch takes: its own case labels and the shared reference flags" {
    run -0 sf-batch --help
    local src="$BATS_TEST_DIRNAME/../../tools/batch/sf-batch.sh" flags f u
    # the option loop's labels, less the refused ones (bad ...) and the job script's own (--worker, --task*)
    flags=$(sed -n '/^while \[ \$# -gt 0 \]/,/^done/p' "$src" | grep -v 'bad "' |
        grep -oE '^ +(-{1,2}[a-z-]+\|)*-{1,2}[a-z-]+\)' | tr -d ' )' | tr '|' '\n' | grep -E '^--' |
        grep -vxE -- '--(worker|task|tasks|help)')
    flags+=$'\n'$(sed -n '/^ref_flag() {/,/^}/p' "$BATS_TEST_DIRNAME/../../pipelines/reference_flags.sh" |
        grep -oE '^ +--[a-z-]+\)' | tr -d ' )' | grep -vx -- --prompt) # sf-batch refuses --prompt (--data_path)
    [ "$(wc -w <<<"$flags")" -gt 30 ]
    for f in $flags; do
        u=${f//-/_}
        [[ "$output" == *"$f"* || "$output" == *"--${u#__}"* ]] || { echo "# --help lacks $f" >&2; false; }
    done
}

@test "names: multi-byte prompts cut to 200 bytes on a character, control characters replaced; a log that cannot be opened fails that video only" {
    { printf '狐%.0s' $(seq 90); printf '\nred \033[31mfox\n'; } >"$T/p.txt"   # 90 characters, 270 bytes
    mkdir -p "$T/out/.sf-batch/logs/red _[31mfox-0.log"   # a folder where the log should be
    run -1 --separate-stderr sf-batch --data_path "$T/p.txt" --output_folder "$T/out" --model-dir "$M" --num_output_frames 3 \
        --height 32 --width 32 --cache-dir "$T/cache" --threads 1
    [ -f "$T/out/$(printf '狐%.0s' $(seq 66))-0.mp4" ]   # 198 bytes: a 67th character would make 201
    grep -q "FAILED red _\[31mfox-0.mp4: cannot write its log .*/red _\[31mfox-0.log: Is a directory" <<<"$stderr"
    grep -q "summary: 2 videos in $T/out: 1 done, 0 skipped (already there), 1 failed, 0 not done (1 worker)" <<<"$stderr"
    [[ "$stderr" != *$'\033'* ]]
    # a reason is printed with its control characters escaped, as the stages print theirs
    printf 'boom \033[2J\n' >"$T/out/.sf-batch/failed/red _[31mfox-0.mp4"
    run -0 sf-batch --status "$T/out"
    assert_line 'sf-batch: failed: red _[31mfox-0.mp4: boom \x1b[2J'
}

@test "a rerun with other flags or prompts is refused while the folder has videos; a missing tap file is not done; --status sees a dead worker" {
    head -n 2 "$T/prompts.txt" >"$T/p2.txt"
    run -0 sf-batch "${B[@]}" --data_path "$T/p2.txt" --layer_indices 0 --progress lines
    grep -q 'sf-denoise: block 1/1 step 1/' "$T/out/.sf-batch/logs/0-0_ema.log"   # --progress reaches the stages
    run -2 --separate-stderr sf-batch "${B[@]}" --data_path "$T/p2.txt" --seed 1 --layer_indices 0-1 --num_output_frames 6
    assert_equal "$stderr" "sf-batch: error: $T/out has videos made with other flags: --seed 0 (now 1), --num_output_frames 3 (now 6), --layer_indices 0 (now 0-1); use another --output_folder (or empty this one)"
    run -2 --separate-stderr sf-batch "${B[@]}" --data_path "$T/p2.txt" --dry-run
    assert_equal "$stderr" "sf-batch: error: $T/out has videos made with other flags: --layer_indices 0 (now none); use another --output_folder (or empty this one)"
    run -2 --separate-stderr sf-batch "${B[@]}" --data_path "$T/p2.txt" --layer_indices 0 --noise-rng sfpipe --dry-run
    assert_equal "$stderr" "sf-batch: error: $T/out has videos made with other flags: --noise_rng torch-cuda (now sfpipe); use another --output_folder (or empty this one)"
    # a folder from before --noise-rng (no noise_rng line) was made with sfpipe's stream
    cp "$T/out/.sf-batch/flags" "$T/flags.keep"
    grep -v '^noise_rng=' "$T/flags.keep" >"$T/out/.sf-batch/flags"
    run -2 --separate-stderr sf-batch "${B[@]}" --data_path "$T/p2.txt" --layer_indices 0 --dry-run
    assert_equal "$stderr" "sf-batch: error: $T/out has videos made with other flags: --noise_rng sfpipe (now torch-cuda); use another --output_folder (or empty this one)"
    cp "$T/flags.keep" "$T/out/.sf-batch/flags"
    sed '2s/boat/ship/' "$T/p2.txt" >"$T/p2b.txt"
    run -2 --separate-stderr sf-batch "${B[@]}" --data_path "$T/p2b.txt" --layer_indices 0
    assert_equal "$stderr" "sf-batch: error: $T/out/1-0_ema.mp4 was made from another prompt or seed (its line of --data_path or --extended_prompt_path changed or moved); remove it, or use another --output_folder"
    rm "$T/out/1-0_ema.pt"
    run -0 sf-batch --status "$T/out"
    assert_line --index 0 "$T/out: 2 videos: 1 done, 0 failed, 1 to do"
    run -0 sf-batch "${B[@]}" --data_path "$T/p2.txt" --layer_indices 0
    assert_output --partial "summary: 2 videos in $T/out: 1 done, 1 skipped (already there), 0 failed, 0 not done (1 worker)"
    [ -f "$T/out/1-0_ema.pt" ]
    sleep 0 & dead=$!
    wait "$dead"
    echo "running on $(hostname -s) pid $dead since 10:00:00" >"$T/out/.sf-batch/tasks/local_0"
    run -0 sf-batch --status "$T/out"
    assert_line "  worker 0: gone: pid $dead is not running (killed or crashed); its last record: running on $(hostname -s) pid $dead since 10:00:00"
}

@test "flags are checked before any video (sf-denoise --check): one line, exit 2, nothing written; layer ranges pass; no temp folder left" {
    run -2 --separate-stderr sf-batch "${B[@]}" --num_output_frames 4
    assert_equal "$stderr" "sf-batch: error: sf-denoise --check: num_frames 4 is not a multiple of num_frame_per_block 3"
    run -2 --separate-stderr sf-batch "${B[@]}" --num_output_frames 0
    assert_equal "$stderr" "sf-batch: error: --num_output_frames must be at least 1 (latent frames: 21 makes 81 video frames)"
    run -2 --separate-stderr sf-batch "${B[@]}" --height 40
    assert_equal "$stderr" "sf-batch: error: sf-denoise --check: --height/--width must be multiples of 16 (latent /8, patch 2)"
    run -2 --separate-stderr sf-batch "${B[@]}" --layer_indices 0 7
    assert_equal "$stderr" "sf-batch: error: sf-denoise --check: --layer_indices: layer 7 out of range (the model has 3 layers: 0..2)"
    run -2 --separate-stderr sf-batch "${B[@]}" --progress sometimes
    assert_equal "$stderr" "sf-batch: error: sf-denoise --check: --progress: expected auto, bar, lines or none, got 'sometimes'"
    run -2 --separate-stderr sf-batch "${B[@]}" --device gpu
    assert_equal "$stderr" "sf-batch: error: --device gpu: expected cpu, cuda or cuda:N"
    cp -r "$M" "$T/m2"
    rm "$T/m2/Wan2.1_VAE.pth"
    run -1 --separate-stderr sf-batch "${B[@]}" --model-dir "$T/m2"
    assert_equal "$stderr" "sf-batch: error: --model-dir $T/m2 has no Wan2.1_VAE.pth (sf-encode and sf-decode need it)"
    [ ! -e "$T/out" ]
    # the tokenizer: spiece.model, or tokenizer.json in its place (sf-encode reads either)
    cp "$M/Wan2.1_VAE.pth" "$T/m2/"
    mv "$T/m2/google/umt5-xxl/spiece.model" "$T/m2/google/umt5-xxl/x"
    mv "$T/m2/google/umt5-xxl/tokenizer.json" "$T/m2/google/umt5-xxl/y"
    run -1 --separate-stderr sf-batch "${B[@]}" --model-dir "$T/m2"
    assert_equal "$stderr" "sf-batch: error: --model-dir $T/m2 has no google/umt5-xxl/spiece.model (sf-encode and sf-decode need it)"
    mv "$T/m2/google/umt5-xxl/y" "$T/m2/google/umt5-xxl/tokenizer.json"
    run -0 --separate-stderr sf-batch "${B[@]}" --model-dir "$T/m2" --dry-run
    rm -r "$T/m2"
    mkdir "$T/tmp"
    for l in all 0-2; do
        TMPDIR="$T/tmp" run -0 --separate-stderr sf-batch "${B[@]}" --layer_indices "$l" --dry-run
        assert_line --regexp "^.*/sf-batch --worker .* --layer_indices $l( |$)"
    done
    [ -z "$(ls -A "$T/tmp")" ]   # the dry run's job list went with it
    [ ! -e "$T/out" ]
    # a folder that cannot hold the run's state: one line
    mkdir "$T/ro"
    touch "$T/ro/.sf-batch"
    run -1 --separate-stderr sf-batch "${B[@]}" --output_folder "$T/ro"
    assert_equal "$stderr" "sf-batch: error: cannot create $T/ro/.sf-batch: Not a directory"
}

@test "numbers are read as Python's int() reads them: --num_samples 010 is 10 videos a prompt, 09 is 9 (not octal)" {
    head -n 1 "$T/prompts.txt" >"$T/p1.txt"
    run -0 --separate-stderr sf-batch "${B[@]}" --data_path "$T/p1.txt" --num_samples 010 --workers 02 --dry-run
    assert_equal "${stderr##*$'\n'}" "sf-batch: dry run: 10 of 10 videos to do on 2 workers"
    run -0 --separate-stderr sf-batch "${B[@]}" --data_path "$T/p1.txt" --num_samples 09 --dry-run
    assert_equal "${stderr##*$'\n'}" "sf-batch: dry run: 9 of 9 videos to do on 1 worker"
    # the same number however it is spelled: a rerun with --num_samples 2 --height 32 finds the folder's flags unchanged
    run -0 sf-batch "${B[@]}" --data_path "$T/p1.txt" --num_samples 02 --num_output_frames 03 --height 032
    run -0 --separate-stderr sf-batch "${B[@]}" --data_path "$T/p1.txt" --num_samples 2 --height 32
    [[ "$stderr" == *"nothing to do: all 2 videos are in $T/out"* ]]
}

@test "prompt lines split as Python's text mode splits them: \\n, \\r\\n and a lone \\r (the reference's idx)" {
    # TextDataset's `for line in f`: universal newlines, so "a\rb" is two prompts, idx 0 and 1
    printf 'p zero\r\np one\rp two\r\r\np four\n' >"$T/cr.txt"
    run -0 sf-batch "${B[@]}" --data_path "$T/cr.txt" --output_folder "$T/cr"
    run ls "$T/cr"
    assert_output "$(printf '%s\n' 0-0_ema.mp4 1-0_ema.mp4 2-0_ema.mp4 4-0_ema.mp4)"   # idx 3 is the blank line
    by_hand "p four" "--seed 0 --noise-rng torch-cuda --noise-sequence 4" "$T/hand4.mp4"
    cmp "$T/hand4.mp4" "$T/cr/4-0_ema.mp4"
}

@test "--slurm --dry-run: one array, the pass-through flags as #SBATCH lines, a worker per task" {
    run -0 --separate-stderr sf-batch "${B[@]}" --slurm --workers 4 --partition gpu --account proj1 --time 2:00:00 \
        --gres=gpu:1 --sbatch-arg=--mail-type=END --dry-run
    assert_line "#SBATCH --array=0-3"
    assert_line "#SBATCH --requeue"
    assert_line "#SBATCH --partition=gpu"
    assert_line "#SBATCH --account=proj1"
    assert_line "#SBATCH --time=2:00:00"
    assert_line "#SBATCH --gres=gpu:1"
    assert_line "#SBATCH --mail-type=END"
    assert_line --regexp '^exec .*/sf-batch --worker .*/out/\.sf-batch/jobs/.*\.tsv --task "\$SLURM_ARRAY_TASK_ID" --tasks 4 --data_path .* --output_folder .*/out$'
    refute_output --partial -- "--partition gpu"   # the submitter's flags stay out of the worker's
    assert_equal "$stderr" "sf-batch: dry run: 12 of 12 videos to do in 4 array tasks"
}

@test "--i2v: the reference's image folder → videos that start with each image's latent frame, as the stages by hand make them" {
    G="${SF_GOLDEN:-$BATS_TEST_DIRNAME/../golden}"
    mkdir -p "$T/ds/16-9"
    sf-decode --latents "$G/expect/vae.safetensors:z" --vae "$G/model/Wan2.1_VAE.pth" -o "$T/frames/" --progress none \
        --log-level error --threads 1
    cp "$T/frames/frame_00000.png" "$T/ds/16-9/boat.png"
    cp "$T/frames/frame_00020.png" "$T/ds/16-9/kite.png"
    printf '%s' '[{"file_name": "boat.png", "caption": "a paper boat"}, {"file_name": "kite.png", "caption": "a kite"}]' \
        >"$T/ds/target_crop_info_16-9.json"
    printf '%s\n' "denoising_step_list: [1000, 750, 500, 250]" "warp_denoising_step: true" "num_frame_per_block: 3" \
        "independent_first_frame: true" >"$T/i2v.yaml"
    local I=("${B[@]}" --i2v --data_path "$T/ds" --config_path "$T/i2v.yaml" --seed 3)
    # 3 output frames: the image's and 2 generated, which do not fill a block of 3 (the reference asserts)
    run -2 --separate-stderr sf-batch "${I[@]}"
    [[ "$stderr" == "sf-batch: error: sf-denoise --check: "*"(--i2v: the image's latent frame, then --num_output_frames - 1 = 2 generated)" ]]
    cd "$T" # a relative --data_path: the list holds absolute image paths (below)
    run -0 sf-batch "${I[@]}" --data_path ds --num_output_frames 4 --workers 2
    run ls "$T/out"
    assert_output "$(printf '%s\n' 0-0_ema.mp4 1-0_ema.mp4)"
    # video 1 by hand: the image's latent, then 3 frames with the reference's noise for item 1
    sf-vae-encode --model-dir "$M" --image "$T/ds/16-9/kite.png" --height 32 --width 48 --out "$T/kite.safetensors" \
        --threads 1 --log-level error
    sf-encode --model-dir "$M" --prompt "a kite" --cache-dir "$T/cache" --threads 1 --out - 2>/dev/null |
        sf-denoise --model-dir "$M" --config_path "$T/i2v.yaml" --checkpoint_path "$M/ckpt.pt" --use_ema --num_frames 3 \
            --height 32 --width 48 --seed 3 --noise-rng torch-cuda --noise-sequence 1 --initial-latents "$T/kite.safetensors" \
            --progress none --threads 1 2>/dev/null |
        sf-decode --model-dir "$M" --progress none --threads 1 -o "$T/hand.mp4" 2>/dev/null
    cmp "$T/hand.mp4" "$T/out/1-0_ema.mp4"
    # the videos' list holds each image by its absolute path (workers and reruns elsewhere find it)
    grep -qF "$(printf '\t%s\t%s' "$(readlink -f "$T/ds/16-9/kite.png")" "a kite")" "$T/out/.sf-batch/all.tsv"
    ! cmp -s "$T/out/0-0_ema.mp4" "$T/out/1-0_ema.mp4" || false
    [ -z "$(ls "$T/out/.sf-batch/tmp")" ]
    # --num_samples 2: an image is encoded once for its samples when one worker makes them (they follow each
    # other); the same videos as workers that each encode it (2 workers: sample 0 on one, sample 1 on the other)
    run -0 sf-batch "${I[@]}" --data_path ds --num_output_frames 4 --num_samples 2 --workers 1 --output_folder "$T/s1"
    run -0 sf-batch "${I[@]}" --data_path ds --num_output_frames 4 --num_samples 2 --workers 2 --output_folder "$T/s2"
    for v in 0-0 0-1 1-0 1-1; do cmp "$T/s1/${v}_ema.mp4" "$T/s2/${v}_ema.mp4"; done
    grep -q "latent frame as made for the previous video" "$T/s1/.sf-batch/logs/1-1_ema.log"
    ! grep -q "latent frame as made for the previous video" "$T/s1/.sf-batch/logs/1-0_ema.log" || false
    ! grep -q "latent frame as made for the previous video" "$T/s2/.sf-batch/logs/1-1_ema.log" || false
    ! cmp -s "$T/s1/1-0_ema.mp4" "$T/s1/1-1_ema.mp4" || false
    [ -z "$(ls "$T/s1/.sf-batch/tmp" "$T/s2/.sf-batch/tmp")" ]
    # a folder of --i2v videos is not resumed as text-to-video (the recorded flags)
    printf '%s\n' "a paper boat" >"$T/p1.txt"
    run -2 --separate-stderr sf-batch "${B[@]}" --data_path "$T/p1.txt" --config_path "$T/i2v.yaml" --seed 3 --num_output_frames 4
    [[ "$stderr" == *"--i2v 1 (now 0)"* ]]
    # a caption that a prompt list cannot carry: refused before any work
    printf '%s' '[{"file_name": "boat.png", "caption": "a\tb"}]' >"$T/ds/target_crop_info_16-9.json"
    run -1 --separate-stderr sf-batch "${I[@]}" --num_output_frames 4 --output_folder "$T/o2"
    assert_equal "$stderr" "sf-batch: error: --i2v --data_path: $(readlink -f "$T/ds")/target_crop_info_16-9.json: item 0: the caption holds a tab or line break, which a prompt list cannot carry"
    [ ! -e "$T/o2" ]
}
