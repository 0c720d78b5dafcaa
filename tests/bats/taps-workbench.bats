#!/usr/bin/env bats
# sf-denoise's attention-sink workbench flags on the golden tiny model: layer ranges and lists, probs
# and cross taps of one forward (the refresh pass), the run's facts in the file, and the flag errors
# (exit 2, one line, before any work, nothing written).

bats_require_minimum_version 1.5.0
load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'

setup() {
    G="${SF_GOLDEN:-$BATS_TEST_DIRNAME/../golden}"
    P="$G/expect/dit_pipeline_base.safetensors"
    COMMON=(--model-dir "$G/model" --num_frames 9 --height 64 --width 96 --progress none --threads 2
            --prompt-embeds "$P:context.prompt_embeds" --noise "$P")
}

meta() { python3 -c 'import json,struct,sys; f=open(sys.argv[1],"rb"); n=struct.unpack("<Q",f.read(8))[0]; print(json.loads(f.read(n))["__metadata__"].get(sys.argv[2],""))' "$1" "$2"; }

@test "probs + cross of the refresh pass of layers 0-1,2: tensors, shapes and facts" {
    O="$BATS_TEST_TMPDIR/p.safetensors"
    run -0 sf-denoise "${COMMON[@]}" --layer_indices 0-1,2 --tap-mode probs --tap-cross --tap-select b:2,s:4 \
        --output_path "$O" --prompt "a fox"
    run -0 sf-tensor ls "$O"
    assert_equal "${#lines[@]}" 12 # (probs + lse + cross + cross_lse) × 3 layers
    assert_line --regexp '^probs\.L1\.b2\.s4	f32	\[2, 3, 9\]$'
    assert_line --regexp '^lse\.L2\.b2\.s4	f32	\[2, 3, 4\]$'
    assert_line --regexp '^cross\.L0\.b2\.s4	f32	\[2, 3, [0-9]+\]$'
    assert_equal "$(meta "$O" layers)" "[0,1,2]"
    assert_equal "$(meta "$O" tap_mode)" probs
    assert_equal "$(meta "$O" tap_cross)" 1
    assert_equal "$(meta "$O" seed)" replayed
    assert_equal "$(meta "$O" prompt)" "a fox"
    [[ "$(meta "$O" config)" == *configs/self_forcing_dmd.yaml ]] || false # the default run config, as found
    assert_equal "$(meta "$O" forwards)" '[{"block":2,"step":4,"start_frame":6,"query_frames":3,"key_frames":[0,1,2,3,4,5,6,7,8]}]'
    # each query frame's key-frame masses sum to 1
    run -0 python3 - "$O" <<'PY'
import json, struct, sys
f = open(sys.argv[1], "rb"); n = struct.unpack("<Q", f.read(8))[0]; h = json.loads(f.read(n)); base = 8 + n
for name in ("probs.L0.b2.s4", "cross.L2.b2.s4"):
    e = h[name]; a, b = e["data_offsets"]; f.seek(base + a); v = struct.unpack("<%df" % ((b - a) // 4), f.read(b - a))
    k = e["shape"][2]
    for r in range(len(v) // k):
        assert abs(sum(v[r * k:(r + 1) * k]) - 1) < 1e-5, (name, r)
PY
}

@test "tokens mode: each sink-frame token's mass, [heads, query frames, K·tokens], the token grid in the facts; rolling cache keeps the sinks" {
    O="$BATS_TEST_TMPDIR/t.safetensors"
    run -0 sf-denoise "${COMMON[@]}" --layer_indices 1 --tap-mode tokens --tap-token-frames 2 --local_attn_size 6 \
        --sink-size 1 --output_path "$O"
    run -0 sf-tensor ls "$O"
    assert_equal "${#lines[@]}" 6 # (tokens + tokens_lse) × the 3 blocks' first forwards (seed selection)
    # 64×96 → a 4×6 token grid, 24 tokens a frame; block 0 has 3 key frames, so K = 2 everywhere
    assert_line --regexp '^tokens\.L1\.b0\.s0	f32	\[2, 3, 48\]$'
    assert_line --regexp '^tokens\.L1\.b2\.s0	f32	\[2, 3, 48\]$'
    assert_line --regexp '^tokens_lse\.L1\.b2\.s0	f32	\[2, 3, 4\]$'
    assert_equal "$(meta "$O" tap_mode)" tokens
    assert_equal "$(meta "$O" token_frames)" 2
    assert_equal "$(meta "$O" token_grid)" 4x6
    assert_equal "$(meta "$O" frame_seq_length)" 24
    # window 6, sink 1: block 2 attends to frame 0 (the sink), then 4..8; its tokens are frame 0's and frame 4's
    [[ "$(meta "$O" forwards)" == *'{"block":2,"step":0,"start_frame":6,"query_frames":3,"key_frames":[0,4,5,6,7,8]}'* ]] || false
    # a tokens row: non-negative, its sum = the lse's held share (the 2 frames' mass), under 1
    run -0 python3 - "$O" <<'PY'
import json, struct, sys
f = open(sys.argv[1], "rb"); n = struct.unpack("<Q", f.read(8))[0]; h = json.loads(f.read(n)); base = 8 + n
def get(name):
    e = h[name]; a, b = e["data_offsets"]; f.seek(base + a); return struct.unpack("<%df" % ((b - a) // 4), f.read(b - a))
t, l = get("tokens.L1.b2.s0"), get("tokens_lse.L1.b2.s0")
for r in range(6):
    row = t[r * 48:(r + 1) * 48]
    assert min(row) >= 0 and abs(sum(row) - l[r * 4 + 3]) < 1e-5 and 0 < sum(row) < 1, (r, sum(row), l[r * 4 + 3])
PY
    # sf-taps names each slot's absolute frame from those facts: block 2's slot 1 is frame 4
    run -0 sf-taps tokens "$O" --forward 2:0
    assert_line --index 1 --regexp '^1,-1,2,0,0,0,0,0,[0-9.e-]+$'
    assert_line --index 25 --regexp '^1,-1,2,0,1,4,0,0,[0-9.e-]+$'
    run --separate-stderr sf-denoise "${COMMON[@]}" --layer_indices 1 --tap-mode probs --tap-token-frames 2 --output_path "$O.2"
    assert_failure 2
    assert_equal "$stderr" "sf-denoise: error: --tap-token-frames goes with --tap-mode tokens"
    run --separate-stderr sf-denoise "${COMMON[@]}" --layer_indices 1 --tap-mode tokens --output_path "$BATS_TEST_TMPDIR/t.pt"
    assert_failure 2
    [[ "$stderr" == *"--tap-mode probs / tokens and --tap-cross write .safetensors only"* ]] || false
}

@test "workbench flag errors: exit 2, one line, before any work, nothing written (a --tap-select past the run's forwards too)" {
    O="$BATS_TEST_TMPDIR/e.safetensors"
    for bad in "--layer_indices 1-" "--layer_indices 2-1" "--layer_indices 0,x" "--layer_indices 0-3" "--tap-mode prob"; do
        run --separate-stderr sf-denoise "${COMMON[@]}" $bad --output_path "$O"
        assert_failure 2
        assert_equal "$(printf '%s\n' "$stderr" | grep -c .)" 1
    done
    # a forward the run never makes (9 frames: blocks 0..2; steps 0..3 and the refresh pass 4): refused at the start
    for sel in b:3,s:0 b:0,s:5; do
        run --separate-stderr sf-denoise "${COMMON[@]}" --layer_indices 0 --tap-select "$sel" --output_path "$O"
        assert_failure 2
        assert_equal "$stderr" "sf-denoise: error: --tap-select ${sel}: this run makes blocks 0..2 and steps 0..4 per block (4: the clean refresh pass)"
    done
    run --separate-stderr sf-denoise "${COMMON[@]}" --layer_indices 0-3 --output_path "$O"
    [[ "$stderr" == *"--layer_indices: layer 3 out of range (the model has 3 layers: 0..2)"* ]]
    run --separate-stderr sf-denoise "${COMMON[@]}" --layer_indices all --tap-mode probs --output_path "$BATS_TEST_TMPDIR/e.pt"
    assert_failure 2
    [[ "$stderr" == *"write .safetensors only"* ]]
    run --separate-stderr sf-denoise "${COMMON[@]}" --layer_indices all --tap-mode frames --tap-cross --output_path "$O"
    assert_failure 2
    [[ "$stderr" == *"--tap-cross with the streaming aggregate"* ]]
    [ ! -e "$O" ]
    [ ! -e "$BATS_TEST_TMPDIR/e.pt" ]
}

# the bytes of a tap file's logits tensors (taps.* / fig4.*)
logits_bytes() { python3 -c 'import json,struct,sys; f=open(sys.argv[1],"rb"); n=struct.unpack("<Q",f.read(8))[0]; h=json.loads(f.read(n)); print(sum(v["data_offsets"][1]-v["data_offsets"][0] for k,v in h.items() if k.startswith(("taps.","fig4."))))' "$1"; }

@test "logits taps: the size announced before the run is the file's, exactly (selections, rolling caches); too big for memory: refused first" {
    O="$BATS_TEST_TMPDIR/l.safetensors"
    for run in "seed" "all" "all --local_attn_size 6 --sink-size 1" "seed --local_attn_size 3" "b:2,s:4 --local_attn_size 3"; do
        read -r sel cache <<<"$run"
        run --separate-stderr sf-denoise "${COMMON[@]}" --layer_indices 0 2 --tap-select "$sel" $cache --output_path "$O"
        assert_success
        said=$(grep -o '(\([0-9]*\) bytes) of logits' <<<"$stderr" | tr -dc 0-9)
        assert_equal "$said" "$(logits_bytes "$O")"
        rm -f "$O"
    done
    # 2 layers x 5 forwards x 3 blocks of the golden run = 1.24 MB; 1 MiB available: one line before any forward
    SF_MEM_AVAILABLE_MB=1 run --separate-stderr sf-denoise "${COMMON[@]}" --layer_indices 0 2 --tap-select all --output_path "$O"
    assert_failure 1
    assert_equal "$(grep -c error <<<"$stderr")" 1
    assert_equal "${stderr##*$'\n'}" "sf-denoise: error: the logits taps of 2 layer(s) would hold 1.24 MB in memory until the run ends, 1.05 MB is available: tap fewer layers (--layer_indices), one forward (--tap-select b:B,s:S), or the aggregates (--tap-mode frames / probs: kilobytes)"
    [ ! -e "$O" ]
    # the aggregates are not held back by it
    SF_MEM_AVAILABLE_MB=1 run -0 sf-denoise "${COMMON[@]}" --layer_indices all --tap-mode probs --tap-select all --output_path "$O"
}
