#!/usr/bin/env bats
# Stages on two "hosts": two network namespaces of this machine joined by a veth pair, sf-run's
# remote launcher entering them (fixtures/netns-ssh stands in for ssh). encode and denoise run in
# one, decode in the other; the latents cross the veth over tcp, and the video is byte-identical
# to a one-host run. Needs root and `ip netns` (SKIPs with the reason otherwise).
bats_require_minimum_version 1.5.0
load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
load tiny_model

setup_file() {
    export NA="sfa$$" NB="sfb$$" NET="10.$((100 + $$ % 100)).$((RANDOM % 250)).0"
    export A=${NET%.0}.1 B=${NET%.0}.2 VA="va$$" VB="vb$$" WHY="$BATS_FILE_TMPDIR/why"
    tiny_model_make
    if ! out=$(ip netns add "$NA" 2>&1 && ip netns add "$NB" 2>&1 &&
        ip link add "$VA" netns "$NA" type veth peer name "$VB" netns "$NB" 2>&1 &&
        ip -n "$NA" addr add "$A/24" dev "$VA" && ip -n "$NB" addr add "$B/24" dev "$VB" &&
        ip -n "$NA" link set "$VA" up && ip -n "$NB" link set "$VB" up &&
        ip -n "$NA" link set lo up && ip -n "$NB" link set lo up 2>&1); then
        echo "network namespaces not permitted here: $(head -n1 <<<"$out")" >"$WHY"
    fi
}

teardown_file() {
    ip netns del "$NA" 2>/dev/null || true   # the veth pair goes with it
    ip netns del "$NB" 2>/dev/null || true
}

setup() {
    [ ! -f "$WHY" ] || skip "$(cat "$WHY")"
    T="$BATS_TEST_TMPDIR"
    mkdir -p "$T/bin"
    ln -s "$SF_ROOT/tests/bats/fixtures/netns-ssh" "$T/bin/ssh"
    export SF_TEST_NETNS="$A=$NA $B=$NB"
    VARS=(model_dir="$M" checkpoint="$M/ckpt.pt" num_frames=3 height=32 width=48 cache_dir="$T/cache")
}

tx_bytes() { ip -n "$NA" -s -j link show "$VA" | sed -nE 's/.*"tx":\{"bytes":([0-9]+).*/\1/p'; }

@test "encode+denoise on one host, decode on another: tcp across the veth, same video as one host" {
    sf-run "$SF_ROOT/pipelines/t2v.yaml" "${VARS[@]}" output="$T/one.y4m" 2>/dev/null
    before=$(tx_bytes)
    port=$((20000 + RANDOM % 12000))
    run -0 env PATH="$T/bin:$PATH" sf-run "$SF_ROOT/pipelines/t2v.yaml" "${VARS[@]}" output="$T/two.y4m" \
        encode.host="$A" denoise.host="$A" decode.host="$B" --tcp-port "$port"
    assert_output --partial "pipeline 't2v' finished"
    cmp "$T/one.y4m" "$T/two.y4m"
    # the latents (1x3x16x4x6 f32 = 4.6 kB plus headers) went out through namespace A's veth end
    [ $(($(tx_bytes) - before)) -gt 4608 ]
    # and the plan was: decode binds in B, denoise (in A) connects to B's address
    run -0 env PATH="$T/bin:$PATH" sf-run --dry-run "$SF_ROOT/pipelines/t2v.yaml" "${VARS[@]}" \
        encode.host="$A" denoise.host="$A" decode.host="$B" --tcp-port "$port"
    assert_line --index 1 --partial "--out '\\''>tcp://$B:$((port + 1))'\\''"
    # decode binds the interface that reaches denoise's host (route=), never every interface
    assert_line --index 2 --partial "--in @tcp://route=$A:$((port + 1))"
}
