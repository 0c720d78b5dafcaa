#!/usr/bin/env bats
# Live (README "Live"): an endless sf-denoise holds its memory flat and stops on SIGINT within 1 s;
# sf-decode --out sends raw frames; a stop message ends an endless run cleanly; sf-view refuses bad
# input; pipelines/live.yaml on a tiny model in headless Chromium: frames arrive (two screenshots of
# the video differ, neither is blank), a prompt posted by the page is switched to and reported.
# Background runs have fd 3 closed (3>&-) and are killed by saved PID in teardown.
bats_require_minimum_version 1.5.0
load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'

setup() {
    T="$BATS_TEST_TMPDIR"
    M="$T/model"
    sf-mkmodel tiny "$M" --seed 1 2>/dev/null
    sf-encode --model-dir "$M" --no-cache --prompt "a red fox" --out "$T/emb.wire" 2>/dev/null
    PIDS=()
    PORT=$((20000 + (RANDOM % 12000)))
}

teardown() {
    for p in "${PIDS[@]}"; do { kill -9 "$p" && wait "$p"; } 2>/dev/null || true; done
}

# wait up to $2 seconds for PID $1 to exit; fails when it is still running
wait_exit() {
    for _ in $(seq $(($2 * 50))); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.02
    done
    return 1
}

# wait up to 60 s for the page on $PORT to show a frame past the first
wait_frames() {
    for _ in $(seq 600); do
        curl -s "http://127.0.0.1:$PORT/status" 2>/dev/null | grep -q '"frame":[1-9]' && return 0
        sleep 0.1
    done
}

# run "$@" in the background (its output in $T/run.log; run_pid, killed by teardown) and wait for the page on $PORT
# to play
start_live() {
    "$@" >"$T/run.log" 2>&1 3>&- &
    run_pid=$!
    PIDS+=("$run_pid")
    wait_frames
}

# the latest finished block of an endless run's progress lines in $1 (0 when none)
blocks_done() {
    local n
    n=$(grep -a -c 'step 5/5' "$1" 2>/dev/null)
    echo "${n:-0}"
}

ENDLESS=(--num_frames 0 --local_attn_size 6 --sink_size 3 --height 16 --width 16 --threads 1 --progress lines)

# an endless sf-denoise with ENDLESS and "$@" in the background (pid, its log $T/den.log); under make asan a small
# quarantine, or freed chunks held by ASan would look like growth
endless_start() {
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=1" \
        sf-denoise --model-dir "$M" --in "$T/emb.wire" "${ENDLESS[@]}" "$@" --out - 2>"$T/den.log" 3>&- >/dev/null &
    pid=$!
    PIDS+=("$pid")
}

# the endless run pid's RSS at block $1 and at block $2: within 1 MiB (nothing grows with the block count)
rss_flat() {
    local a b
    for _ in $(seq 3000); do [ "$(blocks_done "$T/den.log")" -ge "$1" ] && break; sleep 0.05; done
    a=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
    for _ in $(seq 6000); do [ "$(blocks_done "$T/den.log")" -ge "$2" ] && break; sleep 0.05; done
    [ "$(blocks_done "$T/den.log")" -ge "$2" ]
    b=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
    echo "RSS at block $1: $a kB, at block $2: $b kB" >&3
    [ $((b - a)) -le 1024 ]
}

@test "endless: memory flat over 200 blocks (the sink realigned at each), SIGINT stops it within 1 s with exit 0" {
    # --sink-rope realign moves the sink's keys again at every block from its first eviction on, from one copy made once
    endless_start --sink-rope realign
    rss_flat 20 200
    kill -INT "$pid"
    t0=$(date +%s%N)
    wait_exit "$pid" 1
    wait "$pid"
    [ $(( ($(date +%s%N) - t0) / 1000000 )) -le 1000 ]
    grep -q "stopped" "$T/den.log"
}

@test "endless with --kv-compress (and the sink realigned): memory flat over 100 blocks of compressions, SIGINT stops it" {
    # every block from the first eviction on scores and compresses every layer's cache: nothing may grow with it
    endless_start --local_attn_size 8 --sink_size 1 --kv-compress 2 --sink-rope realign
    rss_flat 10 100
    grep -q "KV compress: at each eviction" "$T/den.log"
    kill -INT "$pid"
    wait_exit "$pid" 1
    wait "$pid"
    grep -q "stopped" "$T/den.log"
}

@test "endless with --pc-budget (Deep Forcing's released compression, its sink moving): memory flat over 100 blocks of compressions, SIGINT stops it; live.yaml passes it on" {
    # every block from the first overflow on sums each layer's query window, scores, selects and compacts its cache
    endless_start --local_attn_size 8 --sink_size 1 --pc-budget 6 --pc-recent 3
    rss_flat 10 100
    grep -q "KV compress (Deep Forcing's release)" "$T/den.log"
    kill -INT "$pid"
    wait_exit "$pid" 1
    wait "$pid"
    grep -q "stopped" "$T/den.log"
    run -0 sf-run --dry-run "$SF_ROOT/pipelines/live.yaml" model_dir="$M" sink_size=10 pc_budget=16 pc_recent=5
    assert_output --partial "--pc-budget 16 --pc-recent 5"
}

@test "endless to a file: SIGINT ends the video, exit 0, and the file holds every finished block, committed" {
    sf-denoise --model-dir "$M" --in "$T/emb.wire" "${ENDLESS[@]}" --out "$T/lat.wire" 2>"$T/den.log" 3>&- &
    pid=$!
    PIDS+=("$pid")
    for _ in $(seq 600); do [ "$(blocks_done "$T/den.log")" -ge 3 ] && break; sleep 0.05; done
    kill -INT "$pid"
    wait_exit "$pid" 1
    wait "$pid"
    grep -q "stopped" "$T/den.log"
    run sf-wire cat "$T/lat.wire" # committed: it was dropped, with exit 0, before
    assert_success
    done=$(blocks_done "$T/den.log")
    n=$(grep -c "tensor latents f32 \[1, 3, 16, 2, 2\]" <<<"$output")
    [ "$n" -ge 3 ] || false
    [ "$n" -ge $((done - 1)) ] || false # every block finished before the stop (the last may have been cut short)
}

@test "endless: the live route's stop ends it cleanly (end downstream, exit 0); bad flags are one line" {
    S="$T/enc.sock"
    sf-encode --model-dir "$M" --cache-dir "$T/c" --serve "ipc://$S" --prompt "a red fox" --out "ipc://$T/d.sock" \
        2>"$T/enc.log" 3>&- &
    enc=$!
    PIDS+=("$enc")
    sf-denoise --model-dir "$M" --in "ipc://$T/d.sock" "${ENDLESS[@]}" --out "$T/lat.wire" 2>"$T/den.log" 3>&- &
    den=$!
    PIDS+=("$den")
    for _ in $(seq 600); do [ "$(blocks_done "$T/den.log")" -ge 3 ] && break; sleep 0.05; done
    run sf-encode --server "ipc://$S" --stop-route
    assert_success
    wait_exit "$den" 5
    wait "$den"
    wait_exit "$enc" 5
    wait "$enc"
    run sf-wire cat "$T/lat.wire" # committed: the end went downstream
    assert_success
    assert_output --partial "tensor latents f32 [1, 3, 16, 2, 2]"
    assert_output --partial 'prompt: "a red fox"'
    assert_line --index 0 --partial "tensor progress u8 [0]" # the viewer's generation progress
    assert_output --partial "step: 4"
    assert_output --partial "n_steps: 4"
    run sf-denoise --model-dir "$M" --in "$T/emb.wire" --num_frames 0 --out - </dev/null
    assert_failure 2
    assert_output --partial "needs a rolling KV cache"
    [ "${#lines[@]}" -eq 1 ]
}

@test "--pace: blocks go out no faster than the video plays, with the same latents; bad values are one line" {
    RUN=(sf-denoise --model-dir "$M" --in "$T/emb.wire" --num_frames 9 --height 16 --width 16 --threads 1 --progress lines)
    # when the third block starts, counted from the run's first forward (its progress line)
    third() { sed -n 's/.*block 3\/3 step 1\/5: elapsed \([0-9.]*\)s.*/\1/p' "$1"; }
    "${RUN[@]}" --out "$T/fast.wire" --save-latents "$T/fast.safetensors" 2>"$T/fast.log"
    # 8 fps, no lead: block 2 waits until blocks 0 and 1 (9 + 12 frames, 21/8 = 2.6 s) are about to have
    # played, less its expected generation time (block 1's: a fraction of a second here, even under ASan)
    "${RUN[@]}" --out "$T/paced.wire" --save-latents "$T/paced.safetensors" --pace 8 --pace-ahead 0 2>"$T/paced.log"
    echo "third block at $(third "$T/fast.log") s unpaced, $(third "$T/paced.log") s paced" >&3
    awk -v t="$(third "$T/paced.log")" 'BEGIN { exit !(t >= 2.0) }'
    cmp "$T/fast.safetensors" "$T/paced.safetensors"
    run -2 --separate-stderr sf-denoise --model-dir "$M" --in "$T/emb.wire" --num_frames 9 --pace -1 --out "$T/x.wire"
    assert_equal "$stderr" "sf-denoise: error: --pace must be a frame rate in 0..1000 (0: no pacing), got '-1'"
    run -2 --separate-stderr sf-denoise --model-dir "$M" --in "$T/emb.wire" --num_frames 9 --pace 16 --pace-ahead x \
        --out "$T/x.wire"
    assert_equal "${#stderr_lines[@]}" 1
    assert_output ""
    [ ! -e "$T/x.wire" ]
}

@test "sf-decode --out URL: one frames message u8 [n, H, W, 3] per latent frame (1, then 4), with the block's prompt, generation rate, weights and decoder" {
    sf-denoise --model-dir "$M" --in "$T/emb.wire" --num_frames 6 --height 16 --width 16 --threads 1 --fp8 \
        --out "$T/lat.wire" 2>/dev/null
    run sf-decode --model-dir "$M" --in "$T/lat.wire" --out "$T/frames.wire" --threads 1
    assert_success
    run sf-wire cat "$T/frames.wire"
    assert_success
    # 6 latent frames in 2 blocks: the first decodes to 1 video frame, each later one to 4
    assert_line --index 0 --partial "tensor frames u8 [1, 16, 16, 3]"
    for i in 1 2 3 4 5; do assert_line --index $i --partial "tensor frames u8 [4, 16, 16, 3]"; done
    [ "$(grep -c 'tensor frames' <<<"$output")" = 6 ]
    assert_output --partial 'prompt: "a red fox"'
    assert_output --partial "start_frame: 1,"
    assert_output --partial "start_frame: 17"
    # each block's generation rate (its video frames over its generation time), from sf-denoise, passed on
    [ "$(grep -cE 'gen_fps: [0-9]+(\.[0-9]+)?' <<<"$output")" = 6 ]
    # what made them, for the page: sf-denoise's weights (fp8 said) and sf-decode's decoder
    [ "$(grep -cE 'weights: "base .*, fp8 block linears \([0-9]+\)"' <<<"$output")" = 6 ]
    [ "$(grep -c 'decoder: "Wan VAE Wan2.1_VAE.pth on the CPU"' <<<"$output")" = 6 ]
    run sf-wire cat "$T/lat.wire"
    [ "$(grep -cE '^tensor latents .*gen_fps: [0-9]' <<<"$output")" = 2 ]
}

@test "sf-view --record: every frame of the stream, published at the end: sf-decode's own y4m byte for byte; an .mp4 survives a Ctrl-C to the whole process group" {
    sf-denoise --model-dir "$M" --in "$T/emb.wire" --num_frames 6 --height 16 --width 16 --threads 1 \
        --out "$T/lat.wire" 2>/dev/null
    sf-decode --model-dir "$M" --in "$T/lat.wire" --out "$T/frames.wire" -o "$T/dec.y4m" --threads 1 --progress none 2>/dev/null
    for ext in y4m mp4; do
        # a session of its own, as a terminal's job: Ctrl-C reaches every process of its group (ffmpeg's too, were
        # it there: it is not, so the .mp4 is finished, not cut)
        setsid sf-view --in "$T/frames.wire" --port "$((PORT + ${#ext}))" --record "$T/rec.$ext" 2>"$T/view.$ext.log" 3>&- &
        pid=$!
        PIDS+=("$pid")
        for _ in $(seq 200); do grep -q "the stream ended" "$T/view.$ext.log" && break; sleep 0.05; done
        run curl -s "http://127.0.0.1:$((PORT + ${#ext}))/status"
        assert_output --partial '"recorded":21,'
        kill -INT -- "-$pid"
        wait_exit "$pid" 5
        run wait "$pid"
        assert_success
        grep -q "recorded 21 frames to $T/rec.$ext" "$T/view.$ext.log"
    done
    cmp "$T/dec.y4m" "$T/rec.y4m"
    run ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames,width,height -of csv=p=0 \
        "$T/rec.mp4"
    assert_output "16,16,21"
    # refused before anything runs: an unknown kind; a folder that does not exist
    run -2 --separate-stderr sf-view --in "$T/frames.wire" --port "$PORT" --record "$T/rec.avi"
    assert_equal "${#stderr_lines[@]}" 1
    [[ "$stderr" == "sf-view: error: "*".avi"* ]]
    run -1 --separate-stderr sf-view --in "$T/frames.wire" --port "$PORT" --record "$T/no/such/rec.y4m"
    assert_equal "$stderr" "sf-view: error: --record $T/no/such/rec.y4m: folder $T/no/such does not exist (mkdir -p $T/no/such)"
    ls "$T"/*.tmp.* 2>/dev/null && false
    true
}

@test "sf-view: local only, one-line errors, bad prompts refused with 400" {
    run sf-view --in "$T/emb.wire" --port 0
    assert_failure 2
    run sf-view --in "$T/emb.wire" --port "$PORT" --bind not-an-ip
    assert_failure
    assert_output --partial "not an IPv4 address"
    run sf-view --in "$T/emb.wire" --port "$PORT" --stall-timeout 0
    assert_failure 2
    assert_output --partial "stall-timeout must be in (0, 86400]"
    run sf-view --in "$T/emb.wire" --port "$PORT" --encoder-timeout x
    assert_failure 2
    mkfifo "$T/fifo"
    sf-view --in "$T/fifo" --port "$PORT" --encoder "ipc://$T/none.sock" --allow-host studio.lan 2>"$T/view.log" 3>&- &
    PIDS+=("$!")
    exec 4>"$T/fifo" # keep the stream open: no frames yet
    for _ in $(seq 100); do curl -s "http://127.0.0.1:$PORT/status" >/dev/null && break; sleep 0.05; done
    run curl -s "http://127.0.0.1:$PORT/status"
    assert_output --partial '"ended":false'
    code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
    [ "$(code "http://127.0.0.1:$PORT/")" = 200 ]
    [ "$(code "http://127.0.0.1:$PORT/nope")" = 404 ]
    [ "$(code -X DELETE "http://127.0.0.1:$PORT/")" = 405 ]
    [ "$(code -X POST -d 'prompt=x' "http://127.0.0.1:$PORT/prompt")" = 400 ]
    [ "$(code -X POST -d '{"prompt": ""}' "http://127.0.0.1:$PORT/prompt")" = 400 ]
    [ "$(code -X POST -d '{"prompt": "a\u0001b"}' "http://127.0.0.1:$PORT/prompt")" = 400 ]
    [ "$(code -X POST --data-binary $'{"prompt": "\xff"}' "http://127.0.0.1:$PORT/prompt")" = 400 ]
    # an escaped NUL (cJSON's string ended there: "a" was queued), a C1 CSI, a bidi override, trailing bytes
    [ "$(code -X POST -d '{"prompt": "a\u0000b"}' "http://127.0.0.1:$PORT/prompt")" = 400 ]
    [ "$(code -X POST --data-binary $'{"prompt": "a\xc2\x9b31m"}' "http://127.0.0.1:$PORT/prompt")" = 400 ]
    [ "$(code -X POST -d '{"prompt": "a\u202eb"}' "http://127.0.0.1:$PORT/prompt")" = 400 ]
    [ "$(code -X POST -d '{"prompt": "abc"} garbage' "http://127.0.0.1:$PORT/prompt")" = 400 ]
    [ "$(code -X POST -H 'Origin: http://evil.example' -d '{"prompt": "x"}' "http://127.0.0.1:$PORT/prompt")" = 403 ]
    # DNS rebinding: a page whose own name now points here is refused, its Origin matching its Host or not
    [ "$(code -H "Host: evil.example:$PORT" "http://127.0.0.1:$PORT/frame.jpg")" = 403 ]
    [ "$(code -H "Host: evil.example:$PORT" "http://127.0.0.1:$PORT/status")" = 403 ]
    [ "$(code -X POST -H "Host: evil.example:$PORT" -H "Origin: http://evil.example:$PORT" -d '{"prompt": "x"}' \
        "http://127.0.0.1:$PORT/prompt")" = 403 ]
    [ "$(code "http://localhost:$PORT/status")" = 200 ]
    # no other page may frame it (clickjacking the prompt box)
    curl -sI "http://127.0.0.1:$PORT/" | grep -qi "^X-Frame-Options: DENY"
    curl -sI "http://127.0.0.1:$PORT/" | grep -qi "frame-ancestors 'none'"
    # nor load the stream (an <img> of it on any site held a viewer); it has the page's headers
    curl -sI "http://127.0.0.1:$PORT/stream.mjpg" | grep -qi "^Cross-Origin-Resource-Policy: same-origin"
    curl -sI "http://127.0.0.1:$PORT/stream.mjpg" | grep -qi "^X-Content-Type-Options: nosniff"
    [ "$(code -H "Host: studio.lan:$PORT" "http://127.0.0.1:$PORT/status")" = 200 ]
    grep -q "Host 'evil.example:$PORT' refused" "$T/view.log"
    head -c 20000 /dev/zero | tr '\0' 'a' >"$T/big"
    [ "$(code -X POST --data-binary @"$T/big" "http://127.0.0.1:$PORT/prompt")" = 413 ]
    # a valid prompt with no encoder server running: 503, the view keeps serving
    [ "$(code -X POST -d '{"prompt": "a cat"}' "http://127.0.0.1:$PORT/prompt")" = 503 ]
    [ "$(code "http://127.0.0.1:$PORT/status")" = 200 ]
    # only the loopback interface listens
    ! ss -ltn | grep ":$PORT " | grep -v "127.0.0.1:$PORT" || false
    exec 4>&-
}

# gray pixels of the video area of a screenshot (crop inside the <img>)
video_gray() { ffmpeg -v error -i "$1" -vf crop=560:300:40:70 -f rawvideo -pix_fmt gray -; }

@test "pipelines/live.yaml takes every variable of t2v.yaml but output (README, Live: the same vars)" {
    local v
    for v in $(sed -n '/^vars:/,/^stages:/p' "$SF_ROOT/pipelines/t2v.yaml" | grep -oE '^  [a-z_]+:' | tr -d ' :'); do
        [ "$v" != output ] || continue
        run -0 --separate-stderr sf-run --dry-run "$SF_ROOT/pipelines/live.yaml" "$v=x1"
    done
    run -0 sf-run --dry-run "$SF_ROOT/pipelines/live.yaml" low_memory=true
    assert_line --partial "sf-encode --model-dir wan_models/Wan2.1-T2V-1.3B"
    assert_output --regexp "sf-encode [^"$'\n'"]*--low-memory"
}

@test "pipelines/live.yaml: frames in headless Chromium, a prompt from the page is switched to and reported" {
    command -v chromium >/dev/null || skip "chromium is not installed"
    CHROME=(chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=700,900)
    start_live sf-run pipelines/live.yaml model_dir="$M" port="$PORT" height=16 width=16 checkpoint=none local_attn_size=6 \
        encoder_socket="$T/enc" cache_dir="$T/cache" denoise.threads=1 decode.threads=1 idle_exit=0
    run curl -s "http://127.0.0.1:$PORT/status"
    assert_output --regexp '"frame":[1-9]'
    # played at the video's rate (16 fps; pipelines/live.yaml paces the generator), not fast-forwarded to
    # keep up with a generator faster than real time (it played ~60 fps on this model before)
    f1=$(curl -s "http://127.0.0.1:$PORT/status" | sed 's/.*"frame":\([0-9]*\).*/\1/')
    sleep 3
    f2=$(curl -s "http://127.0.0.1:$PORT/status" | sed 's/.*"frame":\([0-9]*\).*/\1/')
    echo "frames shown in 3 s: $((f2 - f1))" >&3
    [ $((f2 - f1)) -ge 1 ]
    [ $((f2 - f1)) -le 80 ]
    # the generator's own rate is reported beside it: far above 16 on this model, paced to 16 on the page
    gf=$(curl -s "http://127.0.0.1:$PORT/status" | sed 's/.*"gen_fps":\([0-9.e+-]*\).*/\1/')
    echo "generated at $gf fps" >&3
    awk -v g="$gf" 'BEGIN { exit !(g > 16) }'
    cd "$T"
    "${CHROME[@]}" --virtual-time-budget=1500 --screenshot="$T/a.png" "http://127.0.0.1:$PORT/" 2>/dev/null
    sleep 1
    "${CHROME[@]}" --virtual-time-budget=1500 --screenshot="$T/b.png" "http://127.0.0.1:$PORT/" 2>/dev/null
    video_gray a.png >a.gray
    video_gray b.png >b.gray
    [ -s a.gray ]
    [ -s b.gray ]
    ! cmp -s a.gray b.gray || false # frames arrive
    for g in a.gray b.gray; do # neither is blank: many gray levels in the video area
        [ "$(od -An -v -tu1 "$g" | tr -s ' ' '\n' | sort -u | wc -l)" -ge 16 ]
    done
    # the page posts ?prompt=...; its status line reports the switch once the new prompt's frames show
    "${CHROME[@]}" --virtual-time-budget=2000 --dump-dom "http://127.0.0.1:$PORT/?prompt=a%20cat%20on%20the%20moon" \
        >dom1.html 2>/dev/null
    for _ in $(seq 600); do
        curl -s "http://127.0.0.1:$PORT/status" | grep -q '"switches":1' && break
        sleep 0.1
    done
    run curl -s "http://127.0.0.1:$PORT/status"
    assert_output --partial '"prompt":"a cat on the moon"'
    assert_output --partial '"switches":1'
    "${CHROME[@]}" --virtual-time-budget=2000 --dump-dom "http://127.0.0.1:$PORT/" >dom2.html 2>/dev/null
    grep -q '<span id="prompt">a cat on the moon</span>' dom2.html
    grep -q '<span id="sw">switches 1' dom2.html
    grep -q '<span id="model">base .* · Wan VAE Wan2.1_VAE.pth on the CPU</span>' dom2.html # what makes the frames
    grep -q '<span id="gen">generating block [0-9]* step [1-5]/5</span>' dom2.html
    grep -q "prompt switched" "$T/run.log"
    # Ctrl-C: every stage stops
    kill -INT "$run_pid"
    wait_exit "$run_pid" 10
}

@test "pipelines/demo.sh: demo.py's flags and defaults become the live pipeline; the page plays, Ctrl-C stops it" {
    D="$SF_ROOT/pipelines/demo.sh"
    run -0 bash "$D" --dry-run
    assert_line --regexp '^sf-view --port 5001 --bind 127\.0\.0\.1 --encoder ipc://.*/sf-demo-encoder-5001\.sock '
    assert_line --regexp '^sf-denoise .*--config_path configs/self_forcing_dmd\.yaml --checkpoint_path checkpoints/self_forcing_dmd\.pt --seed 42 .*--device cpu '
    run -0 --separate-stderr bash "$D" --dry-run --host=0.0.0.0 --port 5002 --trt --fp8 --gpu_id 0 --no_checkpoint \
        --config_path configs/x.yaml --vae "$T/t.pth" --encode-device cpu
    [[ "$stderr" == *"--trt (demo.py's TensorRT VAE) has no counterpart"* ]]
    assert_line --regexp "^sf-view --port 5002 --bind 0\.0\.0\.0 --allow-host $(hostname) "
    assert_line --regexp '^sf-denoise .*--config_path configs/x\.yaml --seed 42 --fp8 .*--no-checkpoint --device cuda:0 '
    refute_output --partial "--checkpoint_path"
    assert_line --regexp "^sf-decode .*--vae $T/t\.pth .*--device cuda:0 "
    assert_line --regexp '^sf-encode .*--device cpu '
    run -2 --separate-stderr bash "$D" --port 0
    [[ "$stderr" == "demo.sh: error: --port must be in 1..65535, got 0" ]]
    run -2 --separate-stderr bash "$D" --share
    [[ "$stderr" == "demo.sh: error: unknown option '--share' (see --help)" ]]
    # a run on the tiny model: the page plays; Ctrl-C ends every stage
    start_live bash "$D" --model-dir "$M" --no_checkpoint --height 16 --width 16 --port "$PORT" --cache-dir "$T/cache"
    run curl -s "http://127.0.0.1:$PORT/status"
    assert_output --regexp '"frame":[1-9]'
    assert_output --partial '"prompt":"A majestic eagle soaring through a cloudy sky, cinematic lighting"'
    # the page says what makes the frames
    assert_output --regexp '"weights":"base [^"]*diffusion_pytorch_model.safetensors[^"]*","decoder":"Wan VAE Wan2.1_VAE.pth on the CPU"'
    kill -INT "$run_pid"
    wait_exit "$run_pid" 10
}

@test "pipelines/live.yaml: closing the page ends the whole run cleanly (idle_exit), its recording published" {
    command -v chromium >/dev/null || skip "chromium is not installed"
    start_live sf-run pipelines/live.yaml model_dir="$M" port="$PORT" height=16 width=16 checkpoint=none local_attn_size=6 \
        encoder_socket="$T/enc" cache_dir="$T/cache" denoise.threads=1 decode.threads=1 idle_exit=1 \
        record="$T/session.y4m"
    chromium --headless --no-sandbox --disable-gpu --virtual-time-budget=1000 --dump-dom "http://127.0.0.1:$PORT/" \
        >/dev/null 2>&1 # a page watches, then is closed
    wait_exit "$run_pid" 30
    run wait "$run_pid"
    assert_success # every stage exited 0
    grep -q "no viewer for 1 s: stopping the live run" "$T/run.log"
    grep -q "pipeline 'live' finished" "$T/run.log"
    # the session as a video: every frame the stream carried (1 for the first latent frame, 4 per later one)
    n=$(grep -o 'recorded [0-9]* frames' "$T/run.log" | grep -o '[0-9]*')
    [ "$n" -ge 5 ] && [ $(((n - 1) % 4)) -eq 0 ]
    [ "$(head -c 9 "$T/session.y4m")" = "YUV4MPEG2" ]
    [ "$(stat -c %s "$T/session.y4m")" -ge $((n * (16 * 16 * 3 + 6))) ]
}
