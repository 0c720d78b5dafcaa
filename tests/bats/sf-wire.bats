#!/usr/bin/env bats
# sf-wire: tensors through a shell pipe, tcp / ipc / shm between separately started processes,
# upstream errors, EOF without end, malformed streams, SIGTERM on a blocked receiver.
bats_require_minimum_version 1.5.0
load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'

setup() {
    G="${SF_GOLDEN:-$BATS_TEST_DIRNAME/../golden}"
    T="$BATS_TEST_TMPDIR"
    F="$G/expect/vae.safetensors"        # 10 f32 + 1 u8 tensors, 3.3 MB
    F2="$G/expect/dit_pipeline_base.safetensors" # f32 + i64
    PORT=$((20000 + (RANDOM * 7 + BATS_TEST_NUMBER * 101) % 12000))
    PIDS=()
}

teardown() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    rm -f "/tmp/sf-shm-sfbats$$"*.ctl 2>/dev/null || true
}

# one line "sf-wire: error: ..." on stderr
assert_one_error_line() {
    assert_equal "$(printf '%s\n' "$stderr" | wc -l)" 1
    assert_regex "$stderr" '^sf-wire: error: '
}

# wait up to $2 seconds for PID $1 to exit; fails when it is still running
wait_gone() {
    local i
    for ((i = 0; i < $2 * 20; i++)); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.05
    done
    return 1
}

# wait up to 5 s until PID $1 has its SIGTERM handler installed and sleeps in a blocking call
# (/proc/PID/status: SigCgt has bit 15, State S), and, with $2, something listens on tcp port $2:
# the readiness a fixed sleep only guessed at. Fails (with the status) when that never happens.
wait_blocked() {
    local i st cgt
    for ((i = 0; i < 100; i++)); do
        st=$(cat "/proc/$1/status" 2>/dev/null) || return 1
        cgt=$(sed -n 's/^SigCgt:[[:space:]]*//p' <<<"$st")
        if (((0x${cgt:-0} & 0x4000) != 0)) && grep -q '^State:[[:space:]]*S' <<<"$st" &&
            { [ -z "${2:-}" ] || ss -Hltn "sport = :$2" | grep -q .; }; then
            return 0
        fi
        sleep 0.05
    done
    echo "# PID $1 never blocked: $(grep -E '^(State|SigCgt)' <<<"$st" | tr '\n' ' ')" >&2
    return 1
}

@test "shell pipe: send | recv --save reproduces the file" {
    run bash -c "sf-wire send - --from '$F' | sf-wire recv - --save '$T/out.safetensors'"
    assert_success
    run sf-tensor diff "$F" "$T/out.safetensors"
    assert_success
    assert_output --partial "11 compared, 0 mismatched"
}

# a safetensors file written by hand (sf-wire send takes names from a file): f32 [1] tensors A = 1 and
# B = 2, in that order. two_f32 A B FILE
two_f32() {
    local hdr="{\"$1\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"$2\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}"
    { printf "$(printf '\\x%02x' "${#hdr}" 0 0 0 0 0 0 0)"; printf '%s' "$hdr"; printf '\x00\x00\x80\x3f\x00\x00\x00\x40'; } >"$3"
}

@test "recv --save: a repeated or taken name gets the first free #k (as sf-tensor reads streams); meta kept" {
    # a file holding x.1 then x, written by hand: recv --save used to name the second x.1 too
    # (counting "x." prefixes), a file with two tensors of one name that no reader accepts
    two_f32 x.1 x "$T/x.safetensors"
    { sf-wire send - --from "$T/x.safetensors" --name x.1 x | head -c -41; sf-wire send - --from "$T/x.safetensors" --name x --meta block=3; } >"$T/x.sft"
    run --separate-stderr sf-wire recv "$T/x.sft" --save "$T/x.out.safetensors"
    assert_success
    run --separate-stderr sf-tensor ls "$T/x.out.safetensors"
    assert_success
    assert_equal "$output" "$(printf 'x.1\tf32\t[1]\nx\tf32\t[1]\nx#1\tf32\t[1]')"
    assert_equal "$(sf-tensor ls "$T/x.sft")" "$output"
    assert_equal "$(sf-tensor cat "$T/x.out.safetensors" 'x#1' | tail -n +2)" "$(sf-tensor cat "$T/x.safetensors" x | tail -n +2)"
    grep -a -q '"x#1.block":"3"' "$T/x.out.safetensors"
}

@test "recv --save: a name whose meta keys another tensor's took, or __metadata__, gets #k; the file reads back" {
    # x's meta b.c and x.b's meta c are both the key x.b.c; a tensor called __metadata__ is
    # safetensors' own key: either way the saved file was one sf-tensor refused
    two_f32 x x.b "$T/x.safetensors"
    { sf-wire send - --from "$T/x.safetensors" --name x --meta b.c=1 | head -c -41; sf-wire send - --from "$T/x.safetensors" --name x.b --meta c=2; } >"$T/a.sft"
    { sf-wire send - --from "$T/x.safetensors" --name x.b --meta c=2 | head -c -41; sf-wire send - --from "$T/x.safetensors" --name x --meta b.c=1 | head -c -41; } >"$T/b.sft"
    # a frame by hand: tensor __metadata__ f32 [1] (sf-wire send takes names from a file, which cannot hold it)
    { printf 'SFT1\x34\x00\x00\x00\x85\xa1v\x01\xa4type\xa6tensor\xa4name\xac__metadata__\xa5dtype\xa3f32\xa5shape\x91\x01'
      printf '\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x40\x40'; sf-wire send - --from "$T/x.safetensors" --name x; } >>"$T/b.sft"
    run --separate-stderr sf-wire recv "$T/a.sft" --save "$T/a.safetensors"
    assert_success
    run --separate-stderr sf-tensor ls "$T/a.safetensors"
    assert_success
    assert_equal "$output" "$(printf 'x\tf32\t[1]\nx.b#1\tf32\t[1]')"
    grep -a -q '"x.b.c":"1","x.b#1.c":"2"' "$T/a.safetensors"
    run --separate-stderr sf-wire recv "$T/b.sft" --save "$T/b.safetensors"
    assert_success
    run --separate-stderr sf-tensor ls "$T/b.safetensors"
    assert_success
    assert_equal "$output" "$(printf 'x.b\tf32\t[1]\nx#1\tf32\t[1]\n__metadata__#1\tf32\t[1]\nx\tf32\t[1]')"
    assert_equal "$(sf-tensor ls "$T/b.sft")" "$output"
}

@test "recv --save: meta no safetensors reader takes (a control character in a key, a value not UTF-8): one error line, no file" {
    # the file was written, exit 0, and then refused by sf-tensor
    sf-wire send - --from "$F" --name z --meta $'a\x01b=1' >"$T/k.sft"
    run --separate-stderr sf-wire recv "$T/k.sft" --save "$T/k.safetensors"
    assert_failure 1
    assert_one_error_line
    assert_regex "$stderr" "metadata key 'z.a.x01b' is not UTF-8 or holds control characters"
    [ ! -e "$T/k.safetensors" ]
    sf-wire send - --from "$F" --name z --meta $'a=v\xff' >"$T/v.sft"
    run --separate-stderr sf-wire recv "$T/v.sft" --save "$T/v.safetensors"
    assert_failure 1
    assert_one_error_line
    assert_regex "$stderr" "metadata 'z.a' has a value that is not UTF-8"
    [ ! -e "$T/v.safetensors" ]
    ! ls "$T" | grep -q safetensors || false # no temporary file left either
}

@test "recv --save: a file that cannot be written is refused before the stream is read" {
    # a silent sender: the refusal must not wait for the stream (it waited out --timeout, or for ever)
    run --separate-stderr timeout 10 sf-wire recv "ipc://$T/silent.sock" --save "$T/no/such/x.safetensors"
    assert_failure 1
    assert_equal "$stderr" "sf-wire: error: --save $T/no/such/x.safetensors: folder $T/no/such does not exist (mkdir -p $T/no/such)"
    run --separate-stderr timeout 10 sf-wire recv "ipc://$T/silent.sock" --save ''
    assert_failure 2
    assert_equal "$stderr" "sf-wire: error: --save needs a file name (.safetensors)"
    [ ! -e "$T/no" ]
}

@test "cat prints one header line per message, meta included" {
    run --separate-stderr bash -c "sf-wire send - --from '$F' --name z video --meta block=2 prompt='a red fox' | sf-wire cat -"
    assert_success
    assert_equal "${#lines[@]}" 3
    assert_regex "${lines[0]}" '^tensor z f32 \[[0-9, ]+\] \{block: 2, prompt: "a red fox"\}$'
    assert_regex "${lines[1]}" '^tensor video f32 \['
    assert_equal "${lines[2]}" "end -"
}

@test "tcp: receiver and sender as separate processes" {
    sf-wire recv "tcp://127.0.0.1:$PORT" --save "$T/tcp.safetensors" 3>&- &
    PIDS+=($!)
    run sf-wire send --from "$F2" "tcp://127.0.0.1:$PORT"
    assert_success
    wait "${PIDS[0]}"
    run sf-tensor diff "$F2" "$T/tcp.safetensors"
    assert_success
    assert_output --partial "0 mismatched"
}

@test "ipc: the sender may start before the receiver" {
    sf-wire send --from "$F" "ipc://$T/s.sock" 3>&- &
    PIDS+=($!)
    wait_blocked "${PIDS[0]}" # the sender is up and waiting before the receiver starts
    run sf-wire recv "ipc://$T/s.sock" --save "$T/ipc.safetensors"
    assert_success
    wait "${PIDS[0]}"
    run sf-tensor diff "$F" "$T/ipc.safetensors"
    assert_success
}

@test "shm: a ring smaller than the stream, separate processes" {
    local url="shm://sfbats$$-$BATS_TEST_NUMBER?slots=2&slot_mb=1"
    sf-wire recv "$url" --save "$T/shm.safetensors" 3>&- &
    PIDS+=($!)
    run sf-wire send --from "$F2" "$url"
    assert_success
    wait "${PIDS[0]}"
    run sf-tensor diff "$F2" "$T/shm.safetensors"
    assert_success
    assert_output --partial "0 mismatched"
    run bash -c "ls /dev/shm | grep -c 'sf-sfbats$$-$BATS_TEST_NUMBER-'"
    assert_output 0
    # nor the ipc control socket (checked before teardown's clean-up)
    [ -z "$(ls "${TMPDIR:-/tmp}" | grep "^sf-shm-sfbats$$-$BATS_TEST_NUMBER")" ]
}

@test "a second reader of a live ipc path or shm name is refused, the first keeps its stream; a dead reader's is taken" {
    # libzmq unlinks an ipc path before binding it: the second reader used to take it silently
    sf-wire recv "ipc://$T/r.sock" --save "$T/ipc.safetensors" 3>&- &
    PIDS+=($!)
    wait_blocked "${PIDS[0]}"
    run --separate-stderr sf-wire recv "ipc://$T/r.sock" --timeout 2
    assert_failure 1
    assert_one_error_line
    assert_regex "$stderr" "cannot bind $T/r.sock: another process is listening there"
    [ -S "$T/r.sock" ] # not removed by the refused one
    run sf-wire send --from "$F2" "ipc://$T/r.sock" --timeout 10
    assert_success
    wait "${PIDS[0]}"
    run sf-tensor diff "$F2" "$T/ipc.safetensors"
    assert_success
    # shm: its control socket
    local name="sfbats$$-$BATS_TEST_NUMBER" ctl="${TMPDIR:-/tmp}/sf-shm-sfbats$$-$BATS_TEST_NUMBER.ctl"
    sf-wire recv "shm://$name" 3>&- &
    local p1=$!
    PIDS+=($p1)
    wait_blocked "$p1"
    run --separate-stderr sf-wire recv "shm://$name" --timeout 2
    assert_failure 1
    assert_one_error_line
    assert_regex "$stderr" "cannot bind $ctl: another process is listening there"
    # a SIGKILLed reader leaves its control socket; nobody listens there, so the next reader takes it
    kill -9 "$p1"
    run wait "$p1"
    [ -S "$ctl" ]
    sf-wire recv "shm://$name" --save "$T/shm.safetensors" 3>&- &
    local p2=$!
    PIDS+=($p2)
    run sf-wire send --from "$F2" "shm://$name" --timeout 10
    assert_success
    wait "$p2"
    [ ! -e "$ctl" ]
}

@test "an upstream error propagates: exit 1 with its text" {
    run --separate-stderr bash -c "sf-wire send - --from '$F' --error 'encoder exploded' | sf-wire recv - --save '$T/e.safetensors'"
    assert_failure 1
    assert_one_error_line
    assert_regex "$stderr" 'upstream error: encoder exploded'
    [ ! -e "$T/e.safetensors" ]
    # the same over tcp
    sf-wire send --error "denoiser died" "tcp://127.0.0.1:$PORT" 3>&- &
    PIDS+=($!)
    run --separate-stderr sf-wire cat "tcp://127.0.0.1:$PORT"
    assert_failure 1
    assert_regex "$stderr" 'upstream error: denoiser died'
}

@test "EOF without end-of-stream is an error, not a silent success" {
    sf-wire send --from "$F" "$T/s.sft"
    # the end message is exactly 41 bytes: 8 (magic, length) + 25 (msgpack map) + 8 (payload length)
    head -c -41 "$T/s.sft" >"$T/noend.sft"
    run --separate-stderr sf-wire cat "$T/noend.sft"
    assert_failure 1
    assert_regex "$stderr" 'upstream closed without end-of-stream'
    assert_equal "${#lines[@]}" 11
    run --separate-stderr sf-wire cat "$T/s.sft"
    assert_success
    assert_equal "${lines[11]}" "end -"
}

@test "malformed streams: one error line, exit 1" {
    run --separate-stderr bash -c "echo hello world | sf-wire cat -"
    assert_failure 1
    assert_one_error_line
    assert_regex "$stderr" 'bad magic'
    sf-wire send --from "$F" "$T/s.sft"
    head -c 100000 "$T/s.sft" >"$T/trunc.sft"
    run --separate-stderr sf-wire cat "$T/trunc.sft"
    assert_failure 1
    assert_regex "$stderr" 'truncated'
}

@test "file output is atomic: a failed send leaves no file" {
    run --separate-stderr sf-wire send "$T/x.sft" --from "$F" --name no_such_tensor
    assert_failure 1
    assert_one_error_line
    [ ! -e "$T/x.sft" ]
    run bash -c "ls '$T' | grep -c x.sft"
    assert_output 0
}

@test "SIGTERM stops a blocked receiver promptly (tcp and shm)" {
    sf-wire recv "tcp://127.0.0.1:$PORT" 3>&- 2>"$T/err1" &
    local p1=$!
    PIDS+=($p1)
    sf-wire recv "shm://sfbats$$-$BATS_TEST_NUMBER" 3>&- 2>"$T/err2" &
    local p2=$!
    PIDS+=($p2)
    wait_blocked "$p1" "$PORT" # really blocked (handlers installed, listening) before the signal
    wait_blocked "$p2"
    kill -TERM "$p1" "$p2"
    wait_gone "$p1" 2
    wait_gone "$p2" 2
    run wait "$p1"
    assert_failure 143 # 128 + SIGTERM, as a shell reports a process the signal ended
    run cat "$T/err1" "$T/err2"
    assert_line "sf-wire: error: interrupted by SIGTERM"
    assert_equal "${#lines[@]}" 2
}

@test "bad usage exits 2" {
    run --separate-stderr sf-wire frobnicate
    assert_failure 2
    run --separate-stderr sf-wire cat
    assert_failure 2
    run --separate-stderr sf-wire cat "foo://bar"
    assert_failure 2
    assert_regex "$stderr" 'unknown URL scheme'
    run --separate-stderr sf-wire bench --transport carrier-pigeon
    assert_failure 2
}

@test "bench prints throughput beside memcpy" {
    run sf-wire bench --transport pipe --size-mb 1 --count 5
    assert_success
    assert_regex "$output" '^transport pipe size 1.0 MiB count 5: [0-9.]+ GB/s, [0-9.]+ ms/message; 64 B messages [0-9.]+ us/message; memcpy [0-9.]+ GB/s$'
}

@test "--help: the send form runs as written (URL before the multi-valued options)" {
    run --separate-stderr sf-wire --help
    assert_success
    local send
    send=$(printf '%s\n' "${lines[0]}" | grep -o 'send [^|]*')
    [ -n "$send" ]
    send=${send//FILE/$F}
    send=${send//URL/$T/h.sft}
    send=${send/\[--name N...\]/--name z video}
    send=${send/\[--meta K=V...\]/--meta block=2}
    send=${send/\[--error TEXT\]/}
    # shellcheck disable=SC2086 # word splitting is the point: the synopsis as a command line
    run --separate-stderr sf-wire $send
    assert_success
    run --separate-stderr sf-wire cat "$T/h.sft"
    assert_success
    assert_equal "${#lines[@]}" 3
    assert_regex "${lines[0]}" '^tensor z f32 .*\{block: 2\}$'
}
