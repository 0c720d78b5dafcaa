#!/usr/bin/env bats
# sf-run: spec parsing (--dry-run), log prefixes, fail-fast with no orphaned processes.
bats_require_minimum_version 1.5.0
load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'

teardown() { # the stages a failed remote-stage test left behind
    [ ! -f "$BATS_TEST_TMPDIR/remote-pids" ] || xargs kill -9 <"$BATS_TEST_TMPDIR/remote-pids" 2>/dev/null || true
}

setup() {
    unset SF_LOG_LEVEL SF_CPU_EXACT SF_CPU_PRECISION # the command lines of remote stages carry them
    FAKE="$SF_ROOT/tests/bats/fixtures/fake-stage"
    SPEC="$BATS_TEST_TMPDIR/p.yaml"
}

write_spec() { # $1 = transport, then stage lines
    local tr=$1; shift
    {
        echo "name: test"
        echo "transport: $tr"
        echo "vars:"
        echo "  greeting: hello world"
        echo "stages:"
        printf '%s\n' "$@"
    } >"$SPEC"
}

# wait up to $2 seconds until none of the PIDs listed in file $1 runs; fails naming the survivors
# (a bounded poll instead of a fixed sleep: fast when they are gone, patient under a slow build)
all_gone() {
    local i p left
    for ((i = 0; i < $2 * 20; i++)); do
        left=""
        while read -r p; do kill -0 "$p" 2>/dev/null && left+=" $p"; done <"$1"
        [ -z "$left" ] && return 0
        sleep 0.05
    done
    echo "# still running:$left" >&2
    return 1
}

@test "dry run expands vars, args, device and ipc urls" {
    write_spec ipc \
        "  - name: a" "    program: $FAKE" "    args: {message: '\${greeting}', flag: true, off: false, layers: [0, 4]}" \
        "  - name: b" "    program: $FAKE" "    device: cuda:1"
    run -0 sf-run --dry-run "$SPEC"
    # the sockets live in the run's own folder (tools/run/cleanup.c)
    assert_line --index 0 --regexp "fake-stage --message 'hello world' --flag --layers 0 4 --out ipc://${TMPDIR:-/tmp}/sf-run-[0-9]+\.d/sf-run-[0-9]+-0.sock$"
    assert_line --index 1 --regexp "fake-stage --device cuda:1 --in ipc://${TMPDIR:-/tmp}/sf-run-[0-9]+\.d/sf-run-[0-9]+-0.sock$"
}

@test "overrides: var=value and stage.arg=value" {
    write_spec tcp \
        "  - name: a" "    program: $FAKE" "    args: {message: '\${greeting}', seed: 1}" \
        "  - name: b" "    program: $FAKE"
    run -0 sf-run --dry-run --tcp-port 40000 "$SPEC" greeting=bye a.seed=7 b.extra=x
    assert_line --index 0 "$FAKE --message bye --seed 7 --out '>tcp://127.0.0.1:40000'"
    assert_line --index 1 "$FAKE --extra x --in @tcp://127.0.0.1:40000"
}

@test "overrides: every var of a spec may be given at once (live.yaml's 30; it once stopped at 16)" {
    local v ovs=()
    for v in $(sed -n '/^vars:/,/^stages:/p' "$SF_ROOT/pipelines/live.yaml" | grep -oE '^  [a-z_]+:' | tr -d ' :'); do
        ovs+=("$v=$v-x")
    done
    [ ${#ovs[@]} -gt 16 ]
    run -0 sf-run --dry-run "$SF_ROOT/pipelines/live.yaml" "${ovs[@]}" denoise.threads=1 port=9999
    assert_line --regexp "^sf-view --port 9999 --bind bind-x --allow-host allow_host-x "
    assert_line --regexp "^sf-denoise --model-dir model_dir-x .*--threads 1 "
    # a spec's var count and an override's name are bounded, each with one line
    run -2 --separate-stderr sf-run --dry-run "$SF_ROOT/pipelines/live.yaml" "$(printf 'v%.0s' {1..200})=1"
    [[ "$stderr" == *"the name is too long"* ]]
}

@test "unknown variables and stages are refused, naming the closest valid one, before anything starts" {
    pids="$BATS_TEST_TMPDIR/pids"
    write_spec ipc \
        "  - name: denoise" "    program: $FAKE" "    args: {pidfile: $pids, seed: 1, message: '\${greeting}', out: '\${output}'}"
    run -2 --separate-stderr sf-run "$SPEC" greting=hi
    assert_equal "$stderr" "sf-run: error: $SPEC: unknown variable 'greting' (did you mean 'greeting'?)"
    run -2 --separate-stderr sf-run "$SPEC" outptu=x.mp4   # used by the spec, not declared: still valid
    assert_equal "$stderr" "sf-run: error: $SPEC: unknown variable 'outptu' (did you mean 'output'?)"
    run -2 --separate-stderr sf-run "$SPEC" sede=7          # only a stage has it: say which
    assert_equal "$stderr" "sf-run: error: $SPEC: unknown variable 'sede' (did you mean 'denoise.seed'?)"
    run -2 --separate-stderr sf-run "$SPEC" denoize.seed=7
    assert_equal "$stderr" "sf-run: error: $SPEC: unknown stage 'denoize' in 'denoize.seed=7' (did you mean 'denoise'?)"
    run -2 --separate-stderr sf-run --dry-run "$SPEC" greeting=hi denoize.seed=7
    assert_equal "$output" ""
    [ ! -e "$pids" ]                                       # nothing was started
    run -0 sf-run --dry-run "$SPEC" greeting=hi output=x.mp4 denoise.seed=7 denoise.new_flag=1
    assert_output "$FAKE --pidfile $pids --seed 7 --message hi --out x.mp4 --new_flag 1"
}

@test "the issue's typos on pipelines/t2v.yaml are refused" {
    run -2 sf-run --dry-run "$SF_ROOT/pipelines/t2v.yaml" num_frame=9
    assert_output --partial "unknown variable 'num_frame' (did you mean 'num_frames'?)"
    run -2 sf-run --dry-run "$SF_ROOT/pipelines/t2v.yaml" denoize.seed=7
    assert_output --partial "unknown stage 'denoize' in 'denoize.seed=7' (did you mean 'denoise'?)"
    run -2 sf-run --dry-run "$SF_ROOT/pipelines/t2v.yaml" outptu=fox.mp4
    assert_output --partial "unknown variable 'outptu' (did you mean 'output'?)"
}

@test "stage.device and stage.host set the stage's fields; a '-'/'_' respelling replaces the arg" {
    write_spec ipc "  - name: a" "    program: $FAKE" "    device: cpu" "    args: {checkpoint_path: a.pt}"
    run -0 sf-run --dry-run "$SPEC" a.device=cuda:1 a.checkpoint-path=b.pt
    assert_output "$FAKE --checkpoint_path b.pt --device cuda:1"
    run -0 sf-run --dry-run --tcp-port 42000 "$SPEC" a.host=gpu2
    assert_output --regexp "^ssh -o BatchMode=yes -- gpu2 'IFS= read -r SF_WIRE_CURVE_KEY; .*"
    assert_output --partial "exec $FAKE --checkpoint_path a.pt --device cpu </dev/null 3<&-'"
}

@test "build/bin/sf-run finds its sibling programs without build/bin on PATH" {
    bin="$SF_ROOT/${SF_BUILD:-build}/bin"
    bare=$(printf '%s\n' "${PATH//:/$'\n'}" | grep -vxF -e "$bin" -e "$bin/" | paste -sd: -)
    if PATH=$bare command -v sf-tensor >/dev/null; then skip "sf-tensor is installed on PATH"; fi
    write_spec ipc "  - name: t" "    program: sf-tensor" "    args: {help: true}"
    PATH=$bare run -0 "$bin/sf-run" "$SPEC"
    assert_output --partial "usage: sf-tensor"
    write_spec ipc "  - name: t" "    program: sf-nonesuch"
    PATH=$bare run -1 "$bin/sf-run" "$SPEC"
    assert_output --partial "cannot run sf-nonesuch"
}

@test "remote stage goes through ssh and forces tcp" {
    write_spec ipc "  - name: a" "    program: sf-encode" "  - name: b" "    program: sf-denoise" "    host: user@gpu2"
    run -0 sf-run --dry-run --tcp-port 41000 "$SPEC"
    assert_line --index 0 "sf-encode --out '>tcp://gpu2:41000'"
    # the host after "--"; the receiver binds the interface ssh reached it on, not every one; the
    # run's CURVE key comes on stdin (tools/run/keys.c), never on a command line; then the shell
    # watches its stdin and stops the stage at its end (the run is over: no signal crosses ssh)
    assert_line --index 1 "ssh -o BatchMode=yes -- user@gpu2 'IFS= read -r SF_WIRE_CURVE_KEY; export SF_WIRE_CURVE_KEY; exec 3<&0; { while read -r _; do :; done; read -r _ _ _ p _ </proc/self/stat && [ \"\$p\" != \$\$ ] || kill -TERM \$\$; } <&3 >/dev/null 2>&1 & exec sf-denoise --in @tcp://route=ssh-client:41000 </dev/null 3<&-'"
}

@test "a remote stage does not outlive the run: a failure, sf-run SIGKILLed; a clean remote stage still exits 0" {
    # fixtures/sshd-like behaves as ssh without a tty does: the remote command gets no signal when
    # the client is killed, only EOF on its stdin when the connection drops
    mkdir -p "$BATS_TEST_TMPDIR/bin"
    ln -s "$SF_ROOT/tests/bats/fixtures/sshd-like" "$BATS_TEST_TMPDIR/bin/ssh"
    pids="$BATS_TEST_TMPDIR/remote-pids" # teardown kills what is left in it
    export PATH="$BATS_TEST_TMPDIR/bin:$PATH"
    # a local stage fails: the remote one is stopped with the run (output to a file: an orphan
    # holding run's pipe would keep it waiting)
    write_spec ipc \
        "  - name: a" "    program: $FAKE" "    args: {pidfile: $pids.a, sleep: 1, fail: 'no weights'}" \
        "  - name: b" "    program: $FAKE" "    host: gpu2" "    args: {pidfile: $pids, sleep: 60}"
    rc=0
    sf-run "$SPEC" >"$BATS_TEST_TMPDIR/log" 2>&1 3>&- || rc=$?
    [ "$rc" -eq 1 ]
    grep -q "stage 'a' failed (exit 3): error: no weights" "$BATS_TEST_TMPDIR/log"
    [ -s "$pids" ]
    all_gone "$pids" 5
    # sf-run SIGKILLed while a remote stage runs
    rm -f "$pids"
    write_spec ipc "  - name: b" "    program: $FAKE" "    host: gpu2" "    args: {pidfile: $pids, sleep: 60}"
    sf-run "$SPEC" 3>&- 2>"$BATS_TEST_TMPDIR/log" &
    runner=$!
    for _ in $(seq 100); do [ -s "$pids" ] && break; sleep 0.1; done
    [ -s "$pids" ]
    kill -9 "$runner"
    wait "$runner" || true
    all_gone "$pids" 5
    # a remote stage that ends by itself is not cut short: its exit status is the run's
    write_spec ipc "  - name: b" "    program: $FAKE" "    host: gpu2" "    args: {sleep: 1, message: remote-done}"
    run -0 sf-run "$SPEC"
    assert_line "[b] remote-done"
    write_spec ipc "  - name: b" "    program: $FAKE" "    host: gpu2" "    args: {sleep: 0.5, fail: 'remote broke'}"
    run -1 sf-run "$SPEC"
    assert_output --partial "stage 'b' failed (exit 3): error: remote broke"
}

@test "a remote stage's watcher signals nothing once the stage has ended, not a process that took its PID" {
    # sshd runs the remote command as a session leader, which pins its PID while the watcher (in its
    # session) lives; a launcher that does not (here: bash -c in this session) frees it at the
    # stage's exit, and the channel's end comes after: a decoy takes the PID in between
    [ -w /proc/sys/kernel/ns_last_pid ] || skip "cannot choose the next PID (ns_last_pid) here"
    mkdir -p "$BATS_TEST_TMPDIR/bin"
    cat >"$BATS_TEST_TMPDIR/bin/ssh" <<'EOF'
#!/usr/bin/env bash
# ssh [-o OPT]... -- HOST COMMAND: COMMAND in this session, its stdin a FIFO fed from ours and held
# open until a decoy (sleep, its pid in $DECOY) has taken COMMAND's PID after it ended
while [ $# -gt 0 ]; do case "$1" in -o) shift 2 ;; --) shift 2; break ;; *) shift ;; esac; done
fifo=$(mktemp -u "${TMPDIR:-/tmp}/decoy-ssh.XXXXXX")
mkfifo -m 600 "$fifo" || exit 255
bash -c "$*" <"$fifo" &
remote=$!
exec 3>"$fifo" 4<&0
rm -f "$fifo"
(while IFS= read -r line; do printf '%s\n' "$line" >&3; done) <&4 & # the channel (the run's key)
relay=$!
exec 4<&-
wait "$remote"
rc=$?
decoy=none
for _ in $(seq 100); do
    echo $((remote - 1)) >/proc/sys/kernel/ns_last_pid
    sleep 30 </dev/null >/dev/null 2>&1 3>&- &
    [ "$!" = "$remote" ] && { decoy=$!; break; }
    kill "$!"
done
echo "$decoy" >"$DECOY"
kill "$relay"
exec 3>&- # the channel ends: the watcher reads EOF
sleep 1
exit "$rc"
EOF
    chmod +x "$BATS_TEST_TMPDIR/bin/ssh"
    export PATH="$BATS_TEST_TMPDIR/bin:$PATH" DECOY="$BATS_TEST_TMPDIR/remote-pids"
    write_spec ipc "  - name: b" "    program: $FAKE" "    host: gpu2" "    args: {sleep: 0.2, message: remote-done}"
    run -0 sf-run "$SPEC"
    assert_line "[b] remote-done"
    decoy=$(cat "$DECOY")
    [ "$decoy" != none ] || skip "no process could take the ended stage's PID"
    kill -0 "$decoy" # alive: not signalled by the ended stage's watcher
}

@test "--log-level and the CPU numerics reach remote stages too (ssh carries no environment)" {
    mkdir -p "$BATS_TEST_TMPDIR/bin"
    ln -s "$SF_ROOT/tests/bats/fixtures/sshd-like" "$BATS_TEST_TMPDIR/bin/ssh"
    export PATH="$BATS_TEST_TMPDIR/bin:$PATH"
    printf '#!/bin/sh\necho "level=${SF_LOG_LEVEL:-unset} exact=${SF_CPU_EXACT:-unset} prec=${SF_CPU_PRECISION:-unset}" >&2\n' \
        >"$BATS_TEST_TMPDIR/env.sh"
    chmod +x "$BATS_TEST_TMPDIR/env.sh"
    write_spec ipc "  - name: l" "    program: $BATS_TEST_TMPDIR/env.sh" \
        "  - name: r" "    program: $BATS_TEST_TMPDIR/env.sh" "    host: gpu2"
    SF_CPU_EXACT=1 SF_CPU_PRECISION=bf16 run -0 sf-run --log-level debug "$SPEC"
    assert_line "[l] level=debug exact=1 prec=bf16"
    assert_line "[r] level=debug exact=1 prec=bf16" # the same numerics, so the same bytes, on every host
    run -0 sf-run "$SPEC"
    assert_line "[r] level=unset exact=unset prec=unset"
    # values go into the remote shell's command line: only plain ones
    SF_CPU_PRECISION='bf16; touch x' run -0 sf-run "$SPEC" --log-level warn
    assert_line "[r] level=warn exact=unset prec=unset"
    assert_line --partial "SF_CPU_PRECISION is not passed to remote stages: not a plain value"
}

@test "bad specs are one-line errors" {
    echo "stages: []" >"$SPEC"
    run -1 sf-run "$SPEC"
    assert_output --partial "non-empty list"
    write_spec carrier-pigeon "  - program: x"
    run -1 sf-run "$SPEC"
    assert_output --partial "unknown transport"
    write_spec ipc "  - program: x" "    args: {a: '\${nope}'}"
    run -1 sf-run "$SPEC"
    assert_output --partial 'undefined variable ${nope}'
    run -2 sf-run
    run -1 sf-run "$BATS_TEST_TMPDIR/missing.yaml"
    assert_output --partial "cannot open"
}

@test "logs are prefixed and a clean run exits 0" {
    write_spec pipe "  - name: first" "    program: $FAKE" "    args: {message: one}" \
        "  - name: second" "    program: $FAKE" "    args: {message: two}"
    run -0 sf-run "$SPEC"
    assert_line "[first] one"
    assert_line "[second] two"
    assert_line "[first] --out -"
}

@test "the folders of a spec's outputs are created before the stages start" {
    write_spec pipe "  - name: first" "    program: $FAKE" \
        "    args: {output: $BATS_TEST_TMPDIR/videos/sub/x.mp4, output_path: $BATS_TEST_TMPDIR/cache/t.pt}"
    run -0 sf-run "$SPEC"
    [ -d "$BATS_TEST_TMPDIR/videos/sub" ]
    [ -d "$BATS_TEST_TMPDIR/cache" ]
    # a folder that cannot be made: one line, before any stage starts
    touch "$BATS_TEST_TMPDIR/file"
    write_spec pipe "  - name: first" "    program: $FAKE" "    args: {message: started, output: $BATS_TEST_TMPDIR/file/x.mp4}"
    run -1 --separate-stderr sf-run "$SPEC"
    [[ "$stderr" == *"not a folder"* ]]
    [[ "$stderr" != *started* ]]
}

@test "a failing stage ends the run fast with its message and leaves no process" {
    pids="$BATS_TEST_TMPDIR/pids"
    write_spec ipc \
        "  - name: slow" "    program: $FAKE" "    args: {pidfile: $pids, sleep: 60}" \
        "  - name: broken" "    program: $FAKE" "    args: {pidfile: $pids, sleep: 1, fail: 'weights are missing'}" \
        "  - name: slow2" "    program: $FAKE" "    args: {pidfile: $pids, sleep: 60}"
    start=$(date +%s)
    run -1 sf-run "$SPEC"
    end=$(date +%s)
    assert_output --partial "stage 'broken' failed (exit 3): error: weights are missing"
    [ $((end - start)) -lt 10 ]
    all_gone "$pids" 5
    [ "$(wc -l <"$pids")" -eq 3 ]
}

@test "a stage that only relays an upstream failure is not blamed for it" {
    pids="$BATS_TEST_TMPDIR/pids"
    # the cause speaks and exits after the stage it told (through the wire's error frame) is gone
    # (reaped by sf-run: a zombie still answers kill -0)
    write_spec ipc \
        "  - name: encode" "    program: $FAKE" "    args: {pidfile: $pids, after-gone: $pids.relay, fail: 'prompt is not valid UTF-8'}" \
        "  - name: denoise" "    program: $FAKE" "    args: {pidfile: $pids.relay, sleep: 0.1, fail: 'upstream error: prompt is not valid UTF-8'}" \
        "  - name: decode" "    program: $FAKE" "    args: {pidfile: $pids, sleep: 60}"
    run -1 sf-run "$SPEC"
    cat "$pids.relay" >>"$pids"
    assert_output --partial "stage 'encode' failed (exit 3): error: prompt is not valid UTF-8"
    refute_output --partial "stage 'denoise' failed"
    all_gone "$pids" 5
    # no cause comes: the relaying stage is named after a short wait, and nothing is left
    write_spec ipc \
        "  - name: encode" "    program: $FAKE" "    args: {pidfile: $pids, sleep: 60}" \
        "  - name: decode" "    program: $FAKE" "    args: {pidfile: $pids, sleep: 0.1, fail: 'wire: x: upstream closed without end-of-stream'}"
    start=$(date +%s)
    run -1 sf-run "$SPEC"
    assert_output --partial "stage 'decode' failed (exit 3): error: wire: x: upstream closed without end-of-stream"
    [ $(($(date +%s) - start)) -lt 10 ]
    all_gone "$pids" 5
}

@test "a stage killed mid-run fails the run and nothing is left" {
    pids="$BATS_TEST_TMPDIR/pids"
    write_spec ipc \
        "  - name: a" "    program: $FAKE" "    args: {pidfile: $pids, sleep: 60}" \
        "  - name: b" "    program: $FAKE" "    args: {pidfile: $pids.b, sleep: 60}"
    sf-run "$SPEC" 3>&- 2>"$BATS_TEST_TMPDIR/log" &
    runner=$!
    for _ in $(seq 100); do [ -s "$pids" ] && [ -s "$pids.b" ] && break; sleep 0.1; done
    victim=$(cat "$pids.b")
    cat "$pids.b" >>"$pids"
    kill -9 "$victim"
    rc=0
    wait "$runner" || rc=$?
    [ "$rc" -eq 1 ]
    run cat "$BATS_TEST_TMPDIR/log"
    assert_output --partial "stage 'b' failed (killed by signal 9)"
    all_gone "$pids" 5
}

@test "--timeout stops every stage: one error line, exit 1, nothing left" {
    pids="$BATS_TEST_TMPDIR/pids"
    write_spec ipc \
        "  - name: a" "    program: $FAKE" "    args: {pidfile: $pids, sleep: 60}" \
        "  - name: b" "    program: $FAKE" "    args: {pidfile: $pids, sleep: 60}"
    start=$(date +%s)
    run -1 --separate-stderr sf-run "$SPEC" --timeout 1
    [ $(($(date +%s) - start)) -lt 10 ]
    assert_equal "$(grep -c 'error:' <<<"$stderr")" 1
    assert_equal "${stderr##*$'\n'}" "sf-run: error: stopped after the timeout (--timeout 1 s)"
    all_gone "$pids" 5
}

@test "a missing program is reported" {
    write_spec ipc "  - name: ghost" "    program: /nonexistent/sf-ghost"
    run -1 sf-run "$SPEC"
    assert_output --partial "stage 'ghost' failed (exit 127)"
    assert_output --partial "cannot run /nonexistent/sf-ghost"
}

@test "progress updates become one status line on a terminal and are dropped in logs" {
    command -v script >/dev/null || skip "script(1) is not installed"
    prog="$BATS_TEST_TMPDIR/progress-stage"
    # updates 0.3 s apart: one read holding two of them draws only the later (a loaded machine's
    # sf-run may wake that late; at 0.05 s step 2 could go undrawn)
    printf '#!/usr/bin/env bash\nfor i in 1 2 3; do printf "\\rstage: step %%d/3   " $i >&2; sleep 0.3; done\nprintf "\\n" >&2\necho "done: SF_PROGRESS=$SF_PROGRESS" >&2\n' >"$prog"
    chmod +x "$prog"
    write_spec ipc "  - name: p" "    program: $prog"
    run -0 sf-run "$SPEC"
    assert_output --partial "[p] done: SF_PROGRESS="
    refute_output --partial "step 1/3"   # updates are dropped when stderr is not a terminal
    assert_output --partial "[p] stage: step 3/3"  # the final one ends with a newline: kept
    script -qec "sf-run '$SPEC'" "$BATS_TEST_TMPDIR/tty.out" >/dev/null
    run cat "$BATS_TEST_TMPDIR/tty.out"
    assert_output --partial "[p] step 2/3"
    assert_output --partial "[p] stage: step 3/3"
    assert_output --partial "[p] done: SF_PROGRESS=1"
    run grep -a "done: SF_PROGRESS" "$BATS_TEST_TMPDIR/tty.out"
    refute_output --partial "step 2/3"   # the status line ended with the final update
}

@test "Ctrl-C: sf-run says it was interrupted, not that a stage failed with its shutdown error" {
    command -v setsid >/dev/null || skip "setsid(1) is not installed"
    pids="$BATS_TEST_TMPDIR/pids"
    # like sf-decode when the terminal's SIGINT has also reached its ffmpeg (or sf-run's SIGTERM
    # comes first): an error, exit 1
    prog="$BATS_TEST_TMPDIR/writer-stage"
    cat >"$prog" <<STAGE
#!/usr/bin/env bash
trap 'echo "sf-decode: error: ffmpeg pipe (ffmpeg failed?): Broken pipe" >&2; exit 1' INT TERM
echo \$\$ >>"$pids"
echo decoding >&2
for i in \$(seq 600); do sleep 0.1; done
STAGE
    chmod +x "$prog"
    write_spec ipc \
        "  - name: denoise" "    program: $FAKE" "    args: {pidfile: $pids, sleep: 60}" \
        "  - name: decode" "    program: $prog"
    # its own process group, which gets the SIGINT as a terminal's foreground job does
    setsid sf-run "$SPEC" 3>&- 2>"$BATS_TEST_TMPDIR/log" &
    runner=$!
    for _ in $(seq 100); do
        [ "$(wc -l 2>/dev/null <"$pids")" = 2 ] && grep -q decoding "$BATS_TEST_TMPDIR/log" && break
        sleep 0.1
    done
    kill -INT -- -"$(ps -o pgid= "$runner" | tr -d ' ')"
    rc=0
    wait "$runner" || rc=$?
    run cat "$BATS_TEST_TMPDIR/log"
    [ "$rc" -eq 130 ]
    assert_output --regexp "sf-run: error: interrupted by SIGINT: all stages stopped \([12] error lines? of stages"
    refute_output --partial "failed"
    refute_output --partial "Broken pipe"
    while read -r p; do run ! kill -0 "$p"; done <"$pids"
}

@test "a relative program path is relative to the spec's folder, from any working folder; a missing one is one sf-run line" {
    mkdir -p "$BATS_TEST_TMPDIR/specs/bin" "$BATS_TEST_TMPDIR/elsewhere"
    cp "$FAKE" "$BATS_TEST_TMPDIR/specs/stage.sh"
    cp "$FAKE" "$BATS_TEST_TMPDIR/specs/bin/stage2"
    SPEC="$BATS_TEST_TMPDIR/specs/p.yaml"
    write_spec pipe "  - name: first" "    program: ./stage.sh" "    args: {message: one}" \
        "  - name: second" "    program: bin/stage2" "    args: {message: two}"
    cd "$BATS_TEST_TMPDIR/elsewhere"
    run -0 sf-run --dry-run ../specs/p.yaml
    assert_line --index 0 --regexp '^\.\./specs/stage\.sh --message one '
    assert_line --index 1 --regexp '^\.\./specs/bin/stage2 --message two '
    run -0 sf-run ../specs/p.yaml
    assert_line "[first] one"
    assert_line "[second] two"
    write_spec pipe "  - name: gone" "    program: ./missing.sh"
    run -1 sf-run "$SPEC" --log-level warn
    assert_equal "${#lines[@]}" 2
    assert_line --index 0 --regexp '^\[gone\] sf-run: error: cannot run .*/specs/missing\.sh: No such file or directory$'
    assert_line --index 1 --regexp "^sf-run: error: stage 'gone' failed \(exit 127\): sf-run: error: cannot run .*/specs/missing\.sh: No such file or directory$"
}

@test "--log-level reaches the stages (SF_LOG_LEVEL in their environment)" {
    printf '#!/bin/sh\necho "level=${SF_LOG_LEVEL:-unset}" >&2\n' >"$BATS_TEST_TMPDIR/lvl.sh"
    chmod +x "$BATS_TEST_TMPDIR/lvl.sh"
    write_spec pipe "  - name: one" "    program: $BATS_TEST_TMPDIR/lvl.sh"
    run -0 env -u SF_LOG_LEVEL sf-run --log-level warn "$SPEC"
    assert_line "[one] level=warn"
    run -0 env -u SF_LOG_LEVEL sf-run "$SPEC"
    assert_line "[one] level=unset"
}

@test "the README's pipelines table names every var of t2v.yaml, and only those" {
    local spec readme
    spec=$(sed -n '/^vars:/,/^stages:/p' "$SF_ROOT/pipelines/t2v.yaml" | grep -oE '^  [a-z_]+:' | tr -d ' :' | sort)
    readme=$(grep -F '| `pipelines/t2v.yaml` |' "$SF_ROOT/README.md" | sed 's/.*its vars//' | grep -oE '`[a-z_]+`' | tr -d '`' | sort)
    [ -n "$spec" ]
    assert_equal "$readme" "$spec"
}
