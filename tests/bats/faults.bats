#!/usr/bin/env bats
# Fault injection (issue 12, "clean-up after crashes"): every stage stopped mid-work by SIGINT or
# SIGTERM exits 130/143 within 1 s and leaves nothing half-written; SIGKILLed writers leave no
# temp file (O_TMPFILE) and a dead writer's named temp files are swept by the next writer of the
# same output; sf-run leaves no socket or shm file however its run ends (a stage SIGKILLed per
# transport, SIGINT/SIGTERM/SIGHUP, sf-run itself SIGKILLed); a full disk is a one-line error
# with nothing left. The tiny model at 160x256 keeps every stage busy for seconds on the CPU, so
# the signals land inside the DiT / umT5 / VAE loops.
bats_require_minimum_version 1.5.0
load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
load tiny_model

setup_file() {
    # the exact CPU kernels: oneDNN's fast mode finishes the tiny model at 160x256 in a fraction of
    # a second, before a signal could land inside the work
    export SF_CPU_EXACT=1
    export FX="$BATS_FILE_TMPDIR/fx"
    mkdir -p "$FX"
    tiny_model_make
    for i in $(seq 20000); do echo "prompt $i: a red fox trotting through fresh snow"; done >"$FX/prompts.txt"
    echo "a red fox trotting through fresh snow" >"$FX/one.txt"
    sf-encode --model-dir "$M" --prompt "a red fox" --no-cache --save-embeds "$FX/e.safetensors" 2>/dev/null
    # latents for the decoder: 6 latent frames at 160x256 (seconds of VAE work)
    sf-denoise --model-dir "$M" --prompt-embeds "$FX/e.safetensors:emb.0" --num_frames 6 --height 160 --width 256 \
        --progress none --save-latents "$FX/lat.safetensors" 2>/dev/null
}

setup() {
    T="$BATS_TEST_TMPDIR"
    O="$T/out" # the only folder the outputs go to: must be empty after a stopped run
    mkdir -p "$O"
    PIDS=()
    setup_cmds
}

teardown() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
}

# the stage command lines (arrays, not functions: a signal must reach the stage, not a subshell)
DEC_STARTED="VAE .* threads" # sf-decode's last line before its VAE work
setup_cmds() {
    denoise=(sf-denoise --model-dir "$M" --prompt-embeds "$FX/e.safetensors:emb.0" --num_frames 9 --height 160 --width 256
        --progress lines)
    decode=(sf-decode --model-dir "$M" --latents "$FX/lat.safetensors" --progress lines)
    encode=(sf-encode --model-dir "$M" --prompts "$FX/prompts.txt" --progress lines)
}

# wait (up to 60 s) for regex $1 in file $2 while pid $3 runs
wait_for() {
    local i
    for ((i = 0; i < 1200; i++)); do
        grep -qE "$1" "$2" 2>/dev/null && return 0
        kill -0 "$3" 2>/dev/null || break
        sleep 0.05
    done
    echo "# never saw '$1':" >&2
    cat "$2" >&2
    return 1
}

# stop_mid_work SIGNAL MARKER CMD...: run CMD, send SIGNAL once MARKER is in its stderr ($T/err);
# sets rc (exit status) and ms (milliseconds from the signal to the exit)
stop_mid_work() {
    local sig=$1 mark=$2
    shift 2
    "$@" 3>&- 2>"$T/err" &
    local p=$!
    PIDS+=("$p")
    wait_for "$mark" "$T/err" "$p"
    sleep 0.2 # inside the work, not at its edge
    local t0=$EPOCHREALTIME
    kill -"$sig" "$p"
    rc=0
    wait "$p" || rc=$?
    ms=$(((${EPOCHREALTIME/./} - ${t0/./}) / 1000))
    echo "# $1: exit $rc after $ms ms" >&3
}

# the checks of a stop: exit code, within 1 s, stopped by the checks (not the watchdog), one
# error line naming the signal, nothing in the output folder
assert_stopped() { # $1 = signal name, $2 = exit code
    [ "$rc" -eq "$2" ] || { cat "$T/err" >&2; false; }
    [ "$ms" -lt 1000 ]
    run grep -c "error:" "$T/err"
    assert_output 1
    run grep "error:" "$T/err"
    assert_output --regexp "error: (.*: )?interrupted by $1"
    refute_output --partial "stopped hard"
    run ls -A "$O"
    assert_output ""
}

@test "sf-denoise --out FILE: SIGINT mid-block stops it within 1 s, exit 130, nothing written" {
    stop_mid_work INT "block 1/3 step 1/5" "${denoise[@]}" --out "$O/x.sft" --save-latents "$O/lat.safetensors"
    assert_stopped SIGINT 130
}

@test "sf-denoise with taps and latents: SIGTERM mid-run stops it within 1 s, exit 143, nothing written" {
    stop_mid_work TERM "block 1/3 step 2/5" "${denoise[@]}" --save-latents "$O/lat.safetensors" --layer_indices 0 1 \
        --output_path "$O/taps.pt"
    assert_stopped SIGTERM 143
}

@test "sf-decode (y4m, mp4, PNG folder): SIGTERM mid-decode stops it within 1 s, exit 143, nothing written" {
    for out in "$O/v.y4m" "$O/v.mp4" "$O/frames/"; do
        stop_mid_work TERM "$DEC_STARTED" "${decode[@]}" -o "$out"
        assert_stopped SIGTERM 143
    done
}

@test "sf-encode --out FILE with the cache: SIGINT/SIGTERM mid-prompts, exit 130/143 within 1 s, no partial file" {
    stop_mid_work INT "prompt 3/20000" "${encode[@]}" --out "$O/e.sft" --no-cache
    assert_stopped SIGINT 130
    stop_mid_work TERM "prompt 3/20000" "${encode[@]}" --save-embeds "$O/e.safetensors" --cache-dir "$T/cache"
    assert_stopped SIGTERM 143
    # the cache holds only complete entries (each one loads), no temp file
    run bash -c "find '$T/cache' -name '*.tmp.*' | wc -l"
    assert_output 0
    for f in $(find "$T/cache" -type f); do sf-tensor ls "$f" >/dev/null; done
}

@test "SIGKILLed writers leave no temp file (y4m, mp4, wire file, latents); a PNG folder's is swept next time" {
    for out in "$O/v.y4m" "$O/v.mp4"; do
        "${decode[@]}" -o "$out" 3>&- 2>"$T/err" &
        p=$!
        PIDS+=("$p")
        wait_for "$DEC_STARTED" "$T/err" "$p"
        kill -9 "$p"
        wait "$p" || true
    done
    "${denoise[@]}" --out "$O/x.sft" 3>&- 2>"$T/err" &
    p=$!
    PIDS+=("$p")
    wait_for "block 1/3 step 2/5" "$T/err" "$p"
    kill -9 "$p"
    wait "$p" || true
    sleep 0.3 # ffmpeg sees its input end and exits
    run ls -A "$O"
    assert_output ""
    # the PNG folder is made under a temp name (a folder cannot be anonymous): the next
    # sf-decode to the same folder removes what the killed one left
    "${decode[@]}" -o "$O/frames/" 3>&- 2>"$T/err" &
    p=$!
    PIDS+=("$p")
    wait_for "$DEC_STARTED" "$T/err" "$p"
    kill -9 "$p"
    wait "$p" || true
    run ls -A "$O"
    assert_output --regexp "^frames\.tmp\.$p\$"
    sf-decode --vae "$SF_GOLDEN/model/Wan2.1_VAE.pth" --latents "$SF_GOLDEN/expect/vae.safetensors:z" --progress none \
        -o "$O/frames/" 2>/dev/null
    run ls -A "$O"
    assert_output "frames"
}

@test "a dead writer's named temp files are swept when the same output or cache entry is next written" {
    dead=$(bash -c 'echo $$') # a PID that is gone
    sf-encode --model-dir "$M" --prompt "a red fox" --cache-dir "$T/cache" --save-embeds "$O/e.safetensors" 2>/dev/null
    entry=$(find "$T/cache" -type f | head -1)
    [ -n "$entry" ]
    rm "$entry" "$O/e.safetensors"
    : >"$entry.tmp.$dead.0"
    : >"$O/e.safetensors.tmp.$dead.3"
    : >"$O/other.safetensors.tmp.$dead.0" # another output's: not this writer's to sweep
    : >"$O/e.safetensors.tmp.$$.0"        # a live writer's: kept
    run -0 sf-encode --model-dir "$M" --prompt "a red fox" --cache-dir "$T/cache" --save-embeds "$O/e.safetensors"
    [ -f "$entry" ]
    [ ! -e "$entry.tmp.$dead.0" ]
    run ls "$O"
    assert_output "$(printf '%s\n' e.safetensors e.safetensors.tmp.$$.0 other.safetensors.tmp.$dead.0)"
}

# ---- sf-run ---------------------------------------------------------------------------------

run_spec() { # $1 = transport, $2 = the prompts file (default: 20000 prompts, seconds of umT5 work even at ~1000 prompts/s)
    SPEC="$T/faults.yaml"
    cat >"$SPEC" <<EOF
name: faults
transport: $1
stages:
  - name: encode
    program: sf-encode
    args: {model-dir: $M, prompts: ${2:-$FX/prompts.txt}, no-cache: true}
  - name: denoise
    program: sf-denoise
    args: {model-dir: $M, num_frames: 9, height: 160, width: 256}
  - name: decode
    program: sf-decode
    args: {model-dir: $M, output: $O/v.y4m}
EOF
    TMPD="$T/tmp" # the run folder goes here; it must be empty after every run
    mkdir -p "$TMPD"
}

# start sf-run on $SPEC; waits until the denoiser works; sets runner
start_run() { # $1 = the log line to wait for (default: the DiT's first forward is done; its "KV cache" line
    # comes before it waits for its embedding, perhaps before sf-run has started the last stage)
    TMPDIR="$TMPD" sf-run "$SPEC" --log-level info 3>&- 2>"$T/log" &
    runner=$!
    PIDS+=("$runner")
    wait_for "${1:-\[denoise\].*block 1/[0-9]+ step 1/}" "$T/log" "$runner"
}

# the children of PID $1 (named $2 when given), from /proc (no procps needed)
children() {
    local f pid comm state ppid rest
    for f in /proc/[0-9]*/stat; do
        { read -r pid comm state ppid rest <"$f"; } 2>/dev/null || continue # gone since the glob: skipped, quietly
        [ "$ppid" = "$1" ] && { [ -z "${2:-}" ] || [ "$comm" = "($2)" ]; } && echo "$pid"
    done
    return 0
}

assert_nothing_left() { # $1 = the sf-run PID
    run ls -A "$TMPD"
    assert_output ""
    run bash -c "ls /dev/shm | grep -c '^sf-sf-run-$1-'"
    assert_output 0
    run ls -A "$O"
    assert_output ""
}

@test "sf-run: a SIGKILLed stage (each stage, ipc and shm) fails the run and leaves no socket or shm file" {
    for tr in ipc shm; do
        for stage in encode denoise decode; do
            # sf-denoise reads the encoder's stream to its end (the writer waits for that
            # acknowledgement) before the DiT starts: the encoder is killed while it encodes its
            # 20000 prompts, the others with one prompt once the DiT runs
            if [ "$stage" = encode ]; then
                run_spec "$tr"
                start_run "\[encode\].*prompt [0-9]+/20000"
            else
                run_spec "$tr" "$FX/one.txt"
                start_run
            fi
            for _ in $(seq 40); do # a stage sf-run has forked but not yet exec'd is still named sf-run
                sp=$(children "$runner" "sf-$stage")
                [ -z "$sp" ] || break
                sleep 0.05
            done
            [ -n "$sp" ]
            kill -9 "$sp"
            rc=0
            wait "$runner" || rc=$?
            [ "$rc" -eq 1 ] || { cat "$T/log" >&2; false; }
            grep -q "stage '$stage' failed (killed by signal 9)" "$T/log"
            assert_nothing_left "$runner"
        done
    done
}

@test "sf-run: SIGINT, SIGTERM, SIGHUP stop the run with 130, 143, 129 and leave nothing" {
    run_spec shm "$FX/one.txt"
    for sig in INT:130 TERM:143 HUP:129; do
        start_run
        sleep 0.3
        kill -"${sig%:*}" "$runner"
        rc=0
        wait "$runner" || rc=$?
        [ "$rc" -eq "${sig#*:}" ] || { cat "$T/log" >&2; false; }
        grep -q "interrupted by SIG${sig%:*}" "$T/log"
        assert_nothing_left "$runner"
    done
}

@test "sf-run SIGKILLed: its stages stop and the next sf-run sweeps the names it left" {
    run_spec ipc "$FX/one.txt"
    start_run
    kids=$(children "$runner" | tr '\n' ' ')
    [ -n "$kids" ]
    kill -9 "$runner"
    wait "$runner" || true
    for _ in $(seq 100); do
        alive=0
        for k in $kids; do kill -0 "$k" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.05
    done
    [ "$alive" = 0 ]
    [ -d "$TMPD/sf-run-$runner.d" ] # left behind: nobody was there to remove it
    : >"$TMPD/sf-run-$runner-7.sock" # and the names of older sf-runs
    : >"$TMPD/sf-shm-sf-run-$runner-0.ctl"
    : >"$TMPD/sf-run-$$-0.sock" # a live run's (this shell's PID): kept
    printf 'name: quick\nstages:\n  - name: a\n    program: true\n' >"$T/quick.yaml"
    TMPDIR="$TMPD" run -0 sf-run "$T/quick.yaml"
    run ls -A "$TMPD"
    assert_output "sf-run-$$-0.sock"
}

@test "full disk: /dev/full and a full filesystem give a one-line error, exit 1, no partial file" {
    # the golden VAE and latents (64x96, 33 frames): a fast decode
    gdec=(sf-decode --vae "$SF_GOLDEN/model/Wan2.1_VAE.pth" --latents "$SF_GOLDEN/expect/vae.safetensors:z" --progress none)
    run -1 --separate-stderr bash -c '"$@" -o - >/dev/full' _ "${gdec[@]}"
    assert_equal "$(grep -c 'error:' <<<"$stderr")" 1
    assert_regex "$stderr" "No space left on device"
    run -1 --separate-stderr sf-encode --model-dir "$M" --prompt "a fox" --no-cache --out /dev/full
    assert_equal "$(grep -c 'error:' <<<"$stderr")" 1
    assert_regex "$stderr" "No space left on device"
    mnt="$T/small"
    mkdir -p "$mnt"
    mount -t tmpfs -o size=64k tmpfs "$mnt" 2>/dev/null || skip "cannot mount a small tmpfs here (needs root)"
    head -c 56k /dev/zero >"$mnt/.fill" # 8 KiB left: less than any of the outputs below
    fails=""
    for out in v.y4m v.mp4 frames/; do
        run --separate-stderr "${gdec[@]}" -o "$mnt/$out"
        [ "$status" -eq 1 ] && [ "$(ls -A "$mnt")" = .fill ] && [ "$(grep -c 'error:' <<<"$stderr")" -eq 1 ] ||
            fails+="$out: exit $status, left: $(ls -A "$mnt"), $stderr; "
    done
    run --separate-stderr sf-encode --model-dir "$M" --prompt "a fox" --no-cache --save-embeds "$mnt/e.safetensors"
    [ "$status" -eq 1 ] && [ "$(ls -A "$mnt")" = .fill ] && [[ "$stderr" == *"No space left on device"* ]] ||
        fails+="save-embeds: exit $status, left: $(ls -A "$mnt"), $stderr"
    umount "$mnt"
    assert_equal "$fails" ""
}
