#!/usr/bin/env bats
# The network edge (issue 12): receivers that outlive stray and hostile peers and fail only on
# their own --timeout, writers that fail when their reader never comes or never acknowledges the
# end, binds that are exactly what was asked, CURVE between a run's stages, sf-run spec values
# that stay data. Hostile peers are plain bash /dev/tcp connections.
bats_require_minimum_version 1.5.0
load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'

# two CURVE secret keys (Z85) made with zmq_curve_keypair: test constants, not secrets
K1='i@10qW&TFv^r6cjgzZsaj32@n.T<C1VG?$=3tpy6'
K2=']mlkbgj}m>Kbvagajg?ST^RUrz#3Cma]rFDBYTXC'

setup() {
    G="${SF_GOLDEN:-$BATS_TEST_DIRNAME/../golden}"
    T="$BATS_TEST_TMPDIR"
    F="$G/expect/vae.safetensors" # 11 tensors, 3.3 MB
    PORT=$((20000 + (RANDOM * 7 + BATS_TEST_NUMBER * 101) % 12000))
    PIDS=()
    unset SF_WIRE_CURVE_KEY
}

teardown() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
}

# wait up to 5 s until something listens on tcp port $1
wait_listen() {
    local i
    for ((i = 0; i < 100; i++)); do
        ss -Hltn "sport = :$1" | grep -q . && return 0
        sleep 0.05
    done
    echo "# nothing listens on $1" >&2
    return 1
}

# the local addresses listening on tcp port $1, one per line
listen_addrs() { ss -Hltn "sport = :$1" | awk '{print $4}' | sed 's/:[0-9]*$//'; }

@test "a receiver outlives peers that connect and leave, or send garbage; the real sender is then read" {
    sf-wire recv "tcp://127.0.0.1:$PORT" --save "$T/out.safetensors" --timeout 30 3>&- 2>"$T/err" &
    PIDS+=($!)
    wait_listen "$PORT"
    exec 5<>"/dev/tcp/127.0.0.1/$PORT" && exec 5>&-                        # connect and close
    printf 'GET / HTTP/1.0\r\n\r\n' >"/dev/tcp/127.0.0.1/$PORT"            # not ZeroMQ at all
    head -c 4096 /dev/urandom >"/dev/tcp/127.0.0.1/$PORT" || true           # noise
    printf '\xff\0\0\0\0\0\0\0\x01\x7f\x03\0NULL' >"/dev/tcp/127.0.0.1/$PORT" || true # a ZMTP greeting, cut short
    sleep 0.5
    kill -0 "${PIDS[0]}" # still waiting
    run --separate-stderr sf-wire send --from "$F" "tcp://127.0.0.1:$PORT"
    assert_success
    wait "${PIDS[0]}"
    run sf-tensor diff "$F" "$T/out.safetensors"
    assert_success
}

@test "a waiting receiver fails on its own --timeout, with one line; stray peers do not end it early" {
    # --timeout 4: the check that it still waits must come before it, also on a loaded machine
    sf-decode --in "tcp://127.0.0.1:$PORT" --timeout 4 --vae "$G/model/Wan2.1_VAE.pth" -o "$T/v.y4m" 3>&- 2>"$T/err" &
    local p=$!
    PIDS+=($p)
    wait_listen "$PORT"
    exec 5<>"/dev/tcp/127.0.0.1/$PORT" && exec 5>&-
    sleep 0.5
    kill -0 "$p" # a connect-and-close used to end it at once
    local rc=0
    wait "$p" || rc=$?
    assert_equal "$rc" 1
    run cat "$T/err"
    # one error line (a warning about the stray peer may come before it)
    assert_line --regexp "^sf-decode: error: wire: tcp://127.0.0.1:$PORT: no writer connected for 4 s \(--timeout\)"
    assert_equal "$(grep -c 'error:' "$T/err")" 1
    [ ! -e "$T/v.y4m" ]
    run -2 --separate-stderr sf-decode --in "tcp://127.0.0.1:$PORT" --timeout -1 -o "$T/v.y4m"
    assert_regex "$stderr" "--timeout"
}

@test "a writer whose reader never comes fails, saying so, instead of dropping the stream" {
    local t0=$SECONDS
    run --separate-stderr sf-wire send --from "$F" "tcp://127.0.0.1:$PORT" --timeout 2
    assert_failure 1
    assert_regex "$stderr" "no reader connected within 2 s"
    [ $((SECONDS - t0)) -lt 15 ]
    # a reader that is there but frozen (never completes the handshake) and then dies
    sf-wire recv "tcp://127.0.0.1:$PORT" 3>&- 2>/dev/null &
    local r=$!
    PIDS+=($r)
    wait_listen "$PORT"
    kill -STOP "$r"
    (sleep 1 && kill -9 "$r") &
    run --separate-stderr sf-wire send --from "$F" "tcp://127.0.0.1:$PORT" --timeout 3
    assert_failure 1
    assert_regex "$stderr" "no reader connected within 3 s"
}

@test "binds are exactly what was asked: names resolve, nothing widens; * warns" {
    sf-wire recv "tcp://localhost:$PORT" 3>&- 2>"$T/err1" &
    PIDS+=($!)
    wait_listen "$PORT"
    run listen_addrs "$PORT"
    refute_output --partial "0.0.0.0"
    refute_output --regexp '^\*$'
    assert_line --regexp '^127\.0\.0\.1$|^\[::1\]$'
    # the host's own name: its resolved addresses, never every interface
    local h=$(hostname) p2=$((PORT + 1))
    if getent hosts "$h" >/dev/null; then
        sf-wire recv "tcp://$h:$p2" 3>&- 2>"$T/err2" &
        PIDS+=($!)
        wait_listen "$p2"
        run listen_addrs "$p2"
        refute_output --partial "0.0.0.0"
        refute_output --regexp '^\*$'
    fi
    # a name that does not resolve is an error, not a bind on every interface
    run --separate-stderr sf-wire recv "tcp://no-such-host.invalid:$((PORT + 2))" --timeout 1
    assert_failure 1
    assert_regex "$stderr" "cannot bind tcp://no-such-host.invalid:[0-9]+: 'no-such-host.invalid' is neither a host name nor an interface"
    # every interface only when told, with a warning
    sf-wire recv "tcp://*:$((PORT + 3))" --timeout 5 3>&- 2>"$T/err4" &
    PIDS+=($!)
    wait_listen $((PORT + 3))
    run cat "$T/err4"
    assert_output --partial "binds every network interface"
}

@test "CURVE: a peer without the run's key is refused, the stream still completes" {
    SF_WIRE_CURVE_KEY="$K1" sf-wire recv "tcp://127.0.0.1:$PORT" --save "$T/out.safetensors" --timeout 30 3>&- 2>"$T/err" &
    PIDS+=($!)
    wait_listen "$PORT"
    # no key at all, then another key: neither completes the handshake, nothing is delivered; the
    # writer says why within seconds instead of waiting out --timeout as if no reader were there
    run --separate-stderr sf-wire send --from "$F" "tcp://127.0.0.1:$PORT" --timeout 20
    assert_failure 1
    # libzmq reports the mechanism mismatch, or only the dropped connections, as the greetings race
    assert_regex "$stderr" "^sf-wire: error: wire: tcp://127.0.0.1:$PORT: (the reader uses CURVE \(it has a \\\$SF_WIRE_CURVE_KEY\), this side has none: both need the same key, or neither|the reader closed 10 connections in a row during the ZeroMQ handshake: it uses CURVE \(\\\$SF_WIRE_CURVE_KEY\) where this side has none, or it is not a wire endpoint)\$"
    t0=$SECONDS
    SF_WIRE_CURVE_KEY="$K2" run --separate-stderr sf-wire send --from "$F" "tcp://127.0.0.1:$PORT" --timeout 20
    assert_failure 1
    assert_equal "$stderr" "sf-wire: error: wire: tcp://127.0.0.1:$PORT: the reader closed 10 connections in a row during the CURVE handshake: its \$SF_WIRE_CURVE_KEY is not this side's, or it has none (both need the same key)"
    [ $((SECONDS - t0)) -lt 15 ]
    kill -0 "${PIDS[0]}"
    SF_WIRE_CURVE_KEY="$K1" run --separate-stderr sf-wire send --from "$F" "tcp://127.0.0.1:$PORT" --timeout 10
    assert_success
    wait "${PIDS[0]}"
    run sf-tensor diff "$F" "$T/out.safetensors"
    assert_success
    run cat "$T/err"
    assert_output --partial "refused a peer that failed the ZeroMQ handshake (without this run's CURVE key)"
    SF_WIRE_CURVE_KEY="not-a-key" run --separate-stderr sf-wire recv "tcp://127.0.0.1:$PORT"
    assert_failure
    assert_regex "$stderr" "SF_WIRE_CURVE_KEY is not a Z85 CURVE secret key"
}

@test "sf-run over tcp hands each stage the run's key in its environment, on no command line" {
    cat >"$T/show-key" <<'EOF'
#!/usr/bin/env bash
# prints the length of its key and whether the key shows in any process's command line
k=${SF_WIRE_CURVE_KEY:-}
seen=no
for f in /proc/[0-9]*/cmdline; do grep -qF -- "$k" "$f" 2>/dev/null && [ -n "$k" ] && seen=yes; done
echo "key ${#k} cmdline $seen $k" >&2
EOF
    chmod +x "$T/show-key"
    printf '%s\n' "name: k" "transport: tcp" "stages:" "  - name: a" "    program: $T/show-key" \
        "  - name: b" "    program: $T/show-key" >"$T/p.yaml"
    SF_WIRE_CURVE_KEY="$K2" run --separate-stderr sf-run "$T/p.yaml" --tcp-port "$PORT"
    assert_success
    assert_regex "$stderr" "\[a\] key 40 cmdline no "
    assert_regex "$stderr" "\[b\] key 40 cmdline no "
    # one key for the run, made fresh (not sf-run's own environment)
    local ka kb
    ka=$(grep -o '\[a\] key 40 cmdline no .*' <<<"$stderr" | awk '{print $6}')
    kb=$(grep -o '\[b\] key 40 cmdline no .*' <<<"$stderr" | awk '{print $6}')
    assert_equal "$ka" "$kb"
    [ "$ka" != "$K2" ]
    # an ipc run gets none
    sed -i 's/transport: tcp/transport: ipc/' "$T/p.yaml"
    run --separate-stderr sf-run "$T/p.yaml"
    assert_success
    assert_regex "$stderr" "\[a\] key 0 "
}

@test "sf-run --curve-key-env: the run's key is the one in its environment, so its stages reach a server started with it" {
    # a resident reader started outside the run with K1 (as a resident sf-encode --serve tcp://... would be)
    SF_WIRE_CURVE_KEY="$K1" sf-wire recv "tcp://127.0.0.1:$PORT" --save "$T/out.safetensors" --timeout 60 3>&- 2>"$T/err" &
    PIDS+=($!)
    wait_listen "$PORT"
    printf '#!/usr/bin/env bash\nexec sf-wire send --from "%s" "tcp://127.0.0.1:%s" --timeout 20\n' "$F" "$PORT" >"$T/send"
    chmod +x "$T/send"
    printf '%s\n' "name: k" "transport: tcp" "stages:" "  - name: a" "    program: $T/send" >"$T/p.yaml"
    # the run's own fresh key: the server refuses it, the stage says why
    SF_WIRE_CURVE_KEY="$K1" run --separate-stderr sf-run "$T/p.yaml" --tcp-port $((PORT + 1))
    assert_failure
    assert_regex "$stderr" "CURVE handshake: its .SF_WIRE_CURVE_KEY is not this side's"
    # the shared key: delivered
    SF_WIRE_CURVE_KEY="$K1" run --separate-stderr sf-run "$T/p.yaml" --tcp-port $((PORT + 1)) --curve-key-env
    assert_success
    wait "${PIDS[0]}"
    run sf-tensor diff "$F" "$T/out.safetensors"
    assert_success
    # refused in one line (a usage error, exit 2), before any stage starts: no key, a bad key, a run without tcp
    run --separate-stderr sf-run "$T/p.yaml" --curve-key-env
    assert_failure 2
    assert_equal "$stderr" "sf-run: error: --curve-key-env: \$SF_WIRE_CURVE_KEY is not set"
    run --separate-stderr sf-run "$T/p.yaml" --curve-key-env --dry-run # a dry run says what the run would
    assert_failure 2
    assert_equal "$stderr" "sf-run: error: --curve-key-env: \$SF_WIRE_CURVE_KEY is not set"
    SF_WIRE_CURVE_KEY="not-a-key" run --separate-stderr sf-run "$T/p.yaml" --curve-key-env
    assert_failure 2
    assert_equal "$stderr" "sf-run: error: --curve-key-env: \$SF_WIRE_CURVE_KEY is not a Z85 CURVE secret key (40 characters)"
    sed -i 's/transport: tcp/transport: ipc/' "$T/p.yaml"
    SF_WIRE_CURVE_KEY="$K1" run --separate-stderr sf-run "$T/p.yaml" --curve-key-env
    assert_failure 2
    assert_equal "$stderr" "sf-run: error: --curve-key-env needs a tcp run with CURVE (transport: tcp, libzmq with CURVE)"
    SF_WIRE_CURVE_KEY="$K1" run --separate-stderr sf-run "$T/p.yaml" --curve-key-env -n
    assert_failure 2
    assert_equal "$stderr" "sf-run: error: --curve-key-env needs a tcp run with CURVE (transport: tcp, libzmq with CURVE)"
}

@test "sf-run spec values are data: control characters, flag-like values and bad hosts are refused" {
    printf '%s\n' "name: v" "transport: ipc" "stages:" "  - name: enc" "    program: sf-encode" \
        "    args: {prompt: hello}" "  - name: dec" "    program: sf-decode" >"$T/p.yaml"
    run --separate-stderr sf-run --dry-run "$T/p.yaml" $'enc.prompt=x\nprogram: sh'
    assert_failure
    assert_regex "$stderr" "control character 0x0a"
    refute_output --partial "sh"
    run --separate-stderr sf-run --dry-run "$T/p.yaml" 'enc.prompt=--out=/tmp/x'
    assert_failure
    assert_regex "$stderr" "would be read as a flag"
    run --separate-stderr sf-run --dry-run "$T/p.yaml" 'dec.host=-oProxyCommand=touch /tmp/pwned'
    assert_failure
    assert_regex "$stderr" "is not a host name"
    printf '%s\n' "name: v" "stages:" "  - name: enc" "    program: sf-encode" \
        "    host: \"-oProxyCommand=touch $T/pwned\"" >"$T/h.yaml"
    run --separate-stderr sf-run "$T/h.yaml"
    assert_failure
    assert_regex "$stderr" "stage 'enc': host: '-oProxyCommand=touch .*' is not a host name"
    [ ! -e "$T/pwned" ]
    # a good host still goes to ssh after "--"
    run -0 sf-run --dry-run "$T/p.yaml" dec.host=user@gpu-2.example.org
    assert_line --index 1 --partial "ssh -o BatchMode=yes -- user@gpu-2.example.org "
}
