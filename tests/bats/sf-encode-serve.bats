#!/usr/bin/env bats
# sf-encode --serve / --server (resident encoder over ZeroMQ REQ/REP), --cache-only, and the
# default output (wire on stdout when it is not a terminal, refusal when it is).
# Servers run in the background with fd 3 closed (3>&-) and are killed by saved PID in teardown.
bats_require_minimum_version 1.5.0
load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'

setup() {
    G="${SF_GOLDEN:-$BATS_TEST_DIRNAME/../golden}"
    T="$BATS_TEST_TMPDIR"
    M="$G/model"
    export SF_LOG_LEVEL=info
    PIDS=()
}

teardown() {
    for p in "${PIDS[@]}"; do { kill -9 "$p" && wait "$p"; } 2>/dev/null || true; done
}

# start_server URL [extra flags...]: background server, PID in SRV, log in $T/srv.log
start_server() {
    local url=$1
    shift
    sf-encode --model-dir "$M" --serve "$url" "$@" 2>>"$T/srv.log" 3>&- &
    SRV=$!
    PIDS+=("$SRV")
}

# wait up to 5 s for the ipc socket file $1
wait_sock() {
    for _ in $(seq 100); do
        [ -S "$1" ] && return 0
        kill -0 "$SRV" 2>/dev/null || { cat "$T/srv.log" >&2; return 1; }
        sleep 0.05
    done
    return 1
}

# wait up to $2 seconds for PID $1 to exit; fails when it is still running
wait_exit() {
    for _ in $(seq $(($2 * 20))); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.05
    done
    return 1
}

@test "serve: two clients get the bytes of a direct run (save-embeds and wire), second asks hit the cache" {
    S="$T/enc.sock"
    start_server "ipc://$S" --cache-dir "$T/sc"
    wait_sock "$S"
    sf-encode --model-dir "$M" --no-cache --prompt "a red fox" --prompt "a dog" --save-embeds "$T/direct.safetensors" 2>/dev/null
    sf-encode --model-dir "$M" --cache-dir "$T/dc" --prompt "a red fox" --prompt "a dog" --out "$T/direct.sft" 2>/dev/null
    # two clients at once; the client loads nothing (no model dir at all)
    sf-encode --server "ipc://$S" --prompt "a red fox" --prompt "a dog" --save-embeds "$T/c1.safetensors" 2>"$T/c1.log" 3>&- &
    c1=$!
    sf-encode --server "ipc://$S" --prompt "a red fox" --prompt "a dog" --save-embeds "$T/c2.safetensors" 2>"$T/c2.log" 3>&- &
    c2=$!
    wait $c1
    wait $c2
    cmp "$T/direct.safetensors" "$T/c1.safetensors"
    cmp "$T/direct.safetensors" "$T/c2.safetensors"
    # wire output through the server equals a direct run's, meta (cache_key) included
    sf-encode --server "ipc://$S" --prompt "a red fox" --prompt "a dog" --out "$T/viaserver.sft" 2>/dev/null
    cmp "$T/direct.sft" "$T/viaserver.sft"
    # default output (stdout is a pipe here) through the server
    sf-encode --connect "ipc://$S" --prompt "a dog" | sf-wire cat - >"$T/cat.txt"
    grep -q '^tensor prompt_embeds f32 \[512, 64\] {prompt: "a dog", n_tokens: 3, index: 0' "$T/cat.txt"
    assert_equal "$(tail -1 "$T/cat.txt")" 'end -'
    # the server encoded each prompt once (under concurrency at most twice), the rest were hits
    [ "$(grep -c 'served .*(cache hit)' "$T/srv.log")" -ge 5 ]
    [ "$(ls "$T/sc" | wc -l)" -eq 2 ]
    kill -TERM "$SRV"
    wait_exit "$SRV" 5
}

@test "serve: a bad request gets an error reply and the server keeps serving" {
    S="$T/enc.sock"
    start_server "ipc://$S" --no-cache
    wait_sock "$S"
    run --separate-stderr sf-encode --server "ipc://$S" --prompt "$(printf 'caf\xe9')" --save-embeds "$T/bad.safetensors"
    assert_failure 1
    assert_equal "$stderr" 'sf-encode: error: prompt 0: encode server: prompt is not valid UTF-8 (bad byte 0xe9 at offset 3)'
    [ ! -e "$T/bad.safetensors" ]
    # an error mid-stream: the wire output carries the error, not a partial file
    run --separate-stderr sf-encode --server "ipc://$S" --prompt ok --prompt "$(printf 'x\xff')" --out "$T/bad.sft"
    assert_failure 1
    [ ! -e "$T/bad.sft" ]
    run --separate-stderr sf-encode --server "ipc://$S" --prompt "a dog" --text-len 16 --save-embeds "$T/ok.safetensors"
    assert_success
    run sf-tensor ls "$T/ok.safetensors"
    assert_line --partial $'emb.0\tf32\t[16, 64]'
    grep -qE "request failed: prompt is not valid UTF-8 \(bad byte 0xe9 at offset 3\) \(client pid [0-9]+, uid $(id -u)\)" "$T/srv.log"
    # more tokens than the server was started for (its --text-len, 512): refused, not encoded
    run --separate-stderr sf-encode --server "ipc://$S" --prompt "a dog" --text-len 1024 --save-embeds "$T/long.safetensors"
    assert_failure 1
    assert_regex "$stderr" 'text_len 1024 not in 1\.\.512 \(this server.s --text-len\)'
    [ ! -e "$T/long.safetensors" ]
    kill -0 "$SRV"
}

@test "serve: SIGTERM stops it promptly with exit 0 and removes the socket file; one server per socket" {
    S="$T/enc.sock"
    start_server "ipc://$S" --no-cache
    wait_sock "$S"
    # a second server on a live socket is refused (and does not steal it)
    run --separate-stderr sf-encode --model-dir "$M" --no-cache --serve "ipc://$S"
    assert_failure 1
    assert_regex "$stderr" 'another server is already listening'
    [ -S "$S" ]
    kill -TERM "$SRV"
    wait_exit "$SRV" 2
    rc=0
    wait "$SRV" || rc=$?
    assert_equal "$rc" 0
    [ ! -e "$S" ]
    # SIGINT too, and a stale socket file left by a killed server is replaced
    start_server "ipc://$S" --no-cache
    wait_sock "$S"
    kill -9 "$SRV"
    wait_exit "$SRV" 2 || true
    [ -S "$S" ]
    start_server "ipc://$S" --no-cache
    for _ in $(seq 100); do [ "$(grep -c 'serving on' "$T/srv.log")" -ge 2 ] && break; sleep 0.05; done
    run --separate-stderr sf-encode --server "ipc://$S" --prompt "a dog" --save-embeds "$T/d.safetensors"
    assert_success
    kill -INT "$SRV"
    wait_exit "$SRV" 2
    rc=0
    wait "$SRV" || rc=$?
    assert_equal "$rc" 0
    [ ! -e "$S" ]
}

@test "serve over tcp; client errors: no server, timeout, bad combinations" {
    port=$((20000 + RANDOM % 12000))
    start_server "tcp://127.0.0.1:$port" --no-cache
    for _ in $(seq 100); do grep -q 'serving on' "$T/srv.log" 2>/dev/null && break; sleep 0.05; done
    run --separate-stderr sf-encode --server "tcp://127.0.0.1:$port" --server-timeout 10 --prompt "a red fox" --save-embeds "$T/t.safetensors"
    assert_success
    sf-encode --model-dir "$M" --no-cache --prompt "a red fox" --save-embeds "$T/d.safetensors" 2>/dev/null
    cmp "$T/t.safetensors" "$T/d.safetensors"
    # the server's log names the prompt (as cleaned) and the client
    grep -qE '^sf-encode: info: served "a red fox" to client 127\.0\.0\.1: [0-9]+ tokens \(encoded\) in' "$T/srv.log"
    kill -TERM "$SRV"
    wait_exit "$SRV" 2
    # nothing listens: ipc fails at once, tcp after --server-timeout
    run --separate-stderr sf-encode --server "ipc://$T/none.sock" --prompt x --cache-only
    assert_failure 1
    assert_regex "$stderr" 'no encode server at ipc://'
    run --separate-stderr timeout 10 sf-encode --server "tcp://127.0.0.1:$port" --server-timeout 0.3 --prompt x --cache-only
    assert_failure 1
    assert_regex "$stderr" 'no reply from encode server .* within 0.3 s'
    run --separate-stderr sf-encode --serve "ipc://$T/x.sock" --prompt x
    assert_failure 2
    run --separate-stderr sf-encode --serve "shm://x"
    assert_failure 2
    assert_regex "$stderr" 'tcp://HOST:PORT or ipc://PATH'
    run --separate-stderr sf-encode --server "ipc://$T/x.sock" --tokens-only --prompt x
    assert_failure 2
    [ ! -e "$T/x.sock" ]
}

@test "serve over tcp with CURVE: the key's clients are answered, others refused and the server goes on; '*' warns" {
    # two CURVE secret keys (Z85, made with zmq_curve_keypair; test constants, not secrets)
    K1='i@10qW&TFv^r6cjgzZsaj32@n.T<C1VG?$=3tpy6'
    K2=']mlkbgj}m>Kbvagajg?ST^RUrz#3Cma]rFDBYTXC'
    port=$((20000 + RANDOM % 12000))
    SF_WIRE_CURVE_KEY="$K1" start_server "tcp://127.0.0.1:$port" --no-cache
    for _ in $(seq 100); do grep -q 'serving on' "$T/srv.log" 2>/dev/null && break; sleep 0.05; done
    sf-encode --model-dir "$M" --no-cache --prompt "a red fox" --save-embeds "$T/d.safetensors" 2>/dev/null
    SF_WIRE_CURVE_KEY="$K1" run --separate-stderr sf-encode --server "tcp://127.0.0.1:$port" --server-timeout 10 \
        --prompt "a red fox" --save-embeds "$T/k1.safetensors"
    assert_success
    cmp "$T/k1.safetensors" "$T/d.safetensors"
    # another key, or none: the CURVE handshake never completes, so no request reaches the encoder;
    # the client says so within seconds, not after --server-timeout (by default it waited forever)
    SF_WIRE_CURVE_KEY="$K2" run --separate-stderr timeout 20 sf-encode --server "tcp://127.0.0.1:$port" --prompt x --cache-only
    assert_failure 1
    assert_equal "$stderr" "sf-encode: error: prompt 0: wire: tcp://127.0.0.1:$port: the encode server closed 10 connections in a row during the CURVE handshake: its \$SF_WIRE_CURVE_KEY is not this side's, or it has none (both need the same key)"
    run --separate-stderr timeout 20 sf-encode --server "tcp://127.0.0.1:$port" --prompt x --cache-only
    assert_failure 1
    # libzmq reports the mechanism mismatch, or only the dropped connections, as the greetings race
    assert_regex "$stderr" "^sf-encode: error: prompt 0: wire: tcp://127.0.0.1:$port: (the encode server uses CURVE \(it has a \\\$SF_WIRE_CURVE_KEY\), this side has none: both need the same key, or neither|the encode server closed 10 connections in a row during the ZeroMQ handshake: it uses CURVE \(\\\$SF_WIRE_CURVE_KEY\) where this side has none, or it is not a wire endpoint)\$"
    # still serving the key's clients
    SF_WIRE_CURVE_KEY="$K1" run --separate-stderr sf-encode --server "tcp://127.0.0.1:$port" --server-timeout 10 \
        --prompt "a red fox" --save-embeds "$T/k1b.safetensors"
    assert_success
    cmp "$T/k1b.safetensors" "$T/d.safetensors"
    [ "$(grep -c ': served ' "$T/srv.log")" = 2 ] # the two keyed requests, nothing else reached the encoder
    # and the server said so, once
    [ "$(grep -c "refused a peer that failed the ZeroMQ handshake (without this run's CURVE key)" "$T/srv.log")" = 1 ]
    kill -TERM "$SRV"
    wait_exit "$SRV" 2
    # every interface, no key: said loudly
    start_server "tcp://*:$((port + 1))" --no-cache
    for _ in $(seq 100); do grep -q "serving on tcp://\*" "$T/srv.log" 2>/dev/null && break; sleep 0.05; done
    grep -q "binds every network interface.*no CURVE key: unauthenticated and unencrypted" "$T/srv.log"
    # a keyed client of that keyless server (a client in an sf-run tcp run, which hands its stages a
    # key of their own): one line at once, no hang
    SF_WIRE_CURVE_KEY="$K1" run --separate-stderr timeout 20 sf-encode --server "tcp://127.0.0.1:$((port + 1))" --prompt x --cache-only
    assert_failure 1
    assert_regex "$stderr" "^sf-encode: error: prompt 0: wire: tcp://127.0.0.1:$((port + 1)): (this side uses CURVE \(\\\$SF_WIRE_CURVE_KEY is set\), the encode server does not: both need the same key, or neither|the encode server closed 10 connections in a row during the CURVE handshake: its \\\$SF_WIRE_CURVE_KEY is not this side's, or it has none \(both need the same key\))\$"
}

@test "cache-only: fills the cache, writes nothing; later runs hit without the encoder" {
    printf 'a red fox\na dog\n' >"$T/p.txt"
    run --separate-stderr sf-encode --model-dir "$M" --cache-dir "$T/c" --prompts "$T/p.txt" --cache-only
    assert_success
    assert_equal "$output" ""
    assert_regex "$stderr" '2 prompt\(s\) done \(cache filled, no output\)'
    [ "$(ls "$T/c" | wc -l)" -eq 2 ]
    run --separate-stderr sf-encode --model-dir "$M" --cache-dir "$T/c" --prompts "$T/p.txt" --save-embeds "$T/e.safetensors"
    assert_success
    assert_equal "$(grep -c 'encoder not loaded' <<<"$stderr")" 2
    sf-encode --model-dir "$M" --no-cache --prompts "$T/p.txt" --save-embeds "$T/d.safetensors" 2>/dev/null
    cmp "$T/e.safetensors" "$T/d.safetensors"
    # --cache-only conflicts with outputs and needs the cache
    run --separate-stderr sf-encode --model-dir "$M" --cache-dir "$T/c" --prompt x --cache-only --out "$T/o.sft"
    assert_failure 2
    run --separate-stderr sf-encode --model-dir "$M" --no-cache --prompt x --cache-only
    assert_failure 2
    assert_regex "$stderr" 'needs the cache'
}

@test "default output: wire stream on stdout when it is not a terminal, refusal when it is" {
    sf-encode --model-dir "$M" --no-cache --prompt "a red fox" 2>/dev/null >"$T/stdout.sft"
    sf-encode --model-dir "$M" --no-cache --prompt "a red fox" --out "$T/file.sft" 2>/dev/null
    cmp "$T/stdout.sft" "$T/file.sft"
    run --separate-stderr sf-tensor ls "$T/stdout.sft"
    assert_output $'prompt_embeds\tf32\t[512, 64]'
    # a terminal on stdout (script(1) gives one): one-line hint, exit 2, nothing encoded
    run script -qec "sf-encode --model-dir '$M' --no-cache --prompt x" /dev/null
    assert_failure 2
    assert_output --partial 'sf-encode: error: stdout is a terminal: give --out URL, --save-embeds FILE or --cache-only'
    refute_output --partial 'loading umT5'
}
