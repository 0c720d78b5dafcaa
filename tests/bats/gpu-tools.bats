#!/usr/bin/env bats
# The device check's tools that run here too: tests/gpu/table.py (issue 13's table from the bench
# output, the e2e timeline and the reference's JSON) on fixtures shaped like a real device run.
bats_require_minimum_version 1.5.0
load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'

setup() {
    command -v python3 >/dev/null || skip "no python3 (the device machine has one)"
    FX="$SF_ROOT/tests/bats/fixtures/gpu-table"
}

@test "table.py: every figure measured / target beside the reference's, from the device check's files" {
    run -0 python3 "$SF_ROOT/tests/gpu/table.py" "$FX/bench.txt" "$FX/e2e.txt" "$FX/ref_bench.json"
    # the last full-size timeline counts (run 2: warm files)
    assert_line "| whole 81-frame video, end to end (from the first forward) | 2.150 s / ≤ 2.0 s  ✗ | 4.664 s (DiT + VAE, serial) |"
    assert_line "| DiT only, 7 blocks | 1.982 s / ≤ 1.45 s  ✗ | 2.996 s |"
    assert_line "| denoise-only FPS | 40.9 / — | 27.0 |"
    assert_line "| steady block (DiT + its decode, pipelined) | 282 ms / ≤ 260 ms  ✗ | 666 ms (DiT block + VAE/7, serial) |"
    # the VAE's A/Bs against the default (0.972 s): 0.972 / 1.020, 0.972 / 1.100
    assert_line "| VAE decode, 81 frames, cuDNN's first-choice conv plans (SF_CUDNN_AUTOTUNE=0) | 1.020 s / — | — (default: -4.7 %) (autotune at init: 1.84 s) |"
    assert_line "| VAE decode, 81 frames, one conv call per frame (SF_VAE_FRAME_CONVS=1) | 1.100 s / — | — (default: -11.6 %) |"
    assert_line "| VAE decode, 81 frames, the norm as it was: a warp per pixel, SiLU in fp64 (SF_VAE_NORM_PLAIN=1) | 1.010 s / — | — (default: -3.8 %) |"
    # the MPS run's timeline is its own row: run 2's above is not replaced by it
    assert_line "| whole video end to end with MPS (the stages' kernels side by side) | 2.080 s / — | — (steady block 262 ms) |"
    # the TAEHV run's timeline is its own row too; the TAEHV decoder's bench beside the VAE's (0.972 / 0.081)
    assert_line "| whole video end to end with the TAEHV tiny decoder (vae=taew2_1.pth) | 2.010 s / — | — (40.3 FPS, steady block 270 ms, first frames 0.310 s) |"
    assert_line "| TAEHV tiny decoder, 81 frames (sf-decode --bench taehv) | 0.081 s / — | — (the Wan VAE's: 12.0× the time) |"
    assert_line "| first frames on screen after the embedding | 0.380 s / ≤ 0.25 s  ✗ | 0.618 s (first DiT block + VAE/7) |"
    assert_line "| VAE decode, 81 frames | 0.972 s / ≤ 0.55 s  ✗ | 1.668 s |"
    # the rates come from the SF_CUDA_PROFILE line's categories
    # the reference's rates: its profiled last-block forward's arithmetic (11.7 TFLOP of GEMMs, 28.7 of attention)
    # over its kernels' ms in ref_bench.json (16.0 and 52.0 in the fixture)
    assert_line "| GEMM achieved (DiT linear, cuBLASLt) | 700 TFLOP/s / ≥ 600  ✓ | 731 TFLOP/s (reference: its GEMM kernels in one profiled last-block forward) |"
    assert_line "| attention achieved (DiT self-attention) | 545 TFLOP/s / ≥ 600  ✗ | 552 TFLOP/s (reference: self + cross, one profiled last-block forward) |"
    # sfpipe's own fused attention (SF_NO_CUDNN=1 run, later in the file): its own rows, not the above
    # sf-denoise --bench attn: each path at 4680 × 32760 (a FAILED path leaves its row empty)
    assert_line "| attention alone, 4680 × 32760 keys, cudnn | 545 TFLOP/s / ≥ 600  ✗ | — |"
    assert_line "| attention alone, 4680 × 32760 keys, sfpipe mma.sync + mass | 343 TFLOP/s / — | — |"
    assert_line "| attention alone, 4680 × 32760 keys, sfpipe wgmma | — / ≥ 600 | — |"
    assert_line "| attention achieved, sfpipe's fused kernel (SF_NO_CUDNN=1) | 395 TFLOP/s / ≥ 600  ✗ | — |"
    assert_line "| DiT only, 7 blocks, sfpipe's fused attention (SF_NO_CUDNN=1) | 2.420 s / ≤ 1.45 s  ✗ | — |"
    assert_line "| attention achieved, sfpipe's wgmma kernel (SF_NO_CUDNN=1 SF_ATTN_WGMMA=1) | 520 TFLOP/s / ≥ 600  ✗ | — |"
    assert_line "| DiT only, 7 blocks, sfpipe's wgmma attention | 2.050 s / ≤ 1.45 s  ✗ | — |"
    # the warp-specialised kernel: its video and profile lines (with the kernel that ran said after the tag)
    assert_line "| attention alone, 4680 × 32760 keys, sfpipe ws | 589 TFLOP/s / ≥ 600  ✗ | — |"
    assert_line "| attention alone, 4680 × 32760 keys, sfpipe ws + mass | — / — | — |"
    assert_line "| attention achieved, sfpipe's warp-specialised kernel (SF_NO_CUDNN=1 SF_ATTN_WS=1) | 610 TFLOP/s / ≥ 600  ✓ | — |"
    assert_line "| DiT only, 7 blocks, sfpipe's warp-specialised attention | 1.900 s / ≤ 1.45 s  ✗ | — |"
    # and with the intra-warpgroup overlap (SF_ATTN_WS=2): distinct rows, never mixed with the above
    assert_line "| attention alone, 4680 × 32760 keys, sfpipe ws2 | 673 TFLOP/s / ≥ 600  ✓ | — |"
    assert_line "| attention alone, 4680 × 32760 keys, sfpipe ws2 + mass | — / — | — |"
    assert_line "| attention achieved, sfpipe's warp-specialised + overlap kernel (SF_NO_CUDNN=1 SF_ATTN_WS=2) | 685 TFLOP/s / ≥ 600  ✓ | — |"
    assert_line "| DiT only, 7 blocks, sfpipe's warp-specialised + overlap attention | 1.800 s / ≤ 1.45 s  ✗ | — |"
    # the CUDA graphs' A/B (1.982 with graphs vs 2.040 without) and the glue kernels alone
    assert_line "| DiT only, 7 blocks, without CUDA graphs (SF_CUDA_GRAPHS=0) | 2.040 s / — | — (graphs: -2.8 %) |"
    assert_line "| norm / RoPE / residual kernels of one block-0 forward (--bench glue) | 2.25 ms / — | — (slowest at 20 % of a device copy's TB/s) |"
    # the 16-byte vector loads' A/B: its line neither replaces the per-forward figure nor counts as the slowest
    assert_line "| the same, their per-column vectors loaded one value at a time (A/B) | 3.00 ms / — | — (16-byte loads: -25.0 %) |"
    # 8.52 + 6.70 + 10.76 GiB against 8.64 + 4.38 + 10.86
    assert_line "| GPU memory, three stages together (sum of the benches) | 25.98 GiB / ≤ 40 GB (37.25 GiB)  ✓ | 23.88 GiB (sum of the stages' peaks) |"
    # the pipelines' nvidia-smi peaks: the largest normal run, and the low_memory run on its own
    # (whose slower timeline does not replace run 2's above)
    assert_line "| GPU memory, the pipeline's measured peak | 27.40 GiB / ≤ 40 GB (37.25 GiB)  ✓ | — |"
    assert_line "| \`low_memory=true\` (24 GB cards), measured peak | 17.80 GiB / ≤ 22 GB (20.49 GiB)  ✓ | — |"
    # issue 14: the tapped videos against the plain one (2.101 / 1.982, 3.964 / 1.982)
    assert_line "| all-layer frames-mode taps: extra time over the plain video | +6.0 % / ≤ 10 %  ✓ | — |"
    assert_line "| all-layer probs-mode taps: extra time over the plain video | +100.0 % / ≤ 25 %  ✗ | — |"
    # the probs video again on the explicit attention path (SF_TAP_PROBS_EXPLICIT=1: 5.946 / 1.982)
    assert_line "| all-layer probs-mode taps on the explicit attention (A/B): extra time over the plain video | +200.0 % / ≤ 25 %  ✗ | — |"
    assert_line "| all-layer probs-mode taps on the wgmma kernel (SF_ATTN_WGMMA=1): extra time over the plain video | +20.0 % / ≤ 25 %  ✓ | — |"
    assert_line "| all-layer probs-mode taps on the warp-specialised kernel (SF_ATTN_WS=1): extra time over the plain video | +10.0 % / ≤ 25 %  ✓ | — |"
    assert_line "| all-layer probs-mode taps on the overlapped warp-specialised kernel (SF_ATTN_WS=2): extra time over the plain video | +5.0 % / ≤ 25 %  ✓ | — |"
    # the CLI's default selection (step 0 of each block: 2.002 / 1.982, 2.180 / 1.982)
    assert_line "| all-layer frames-mode taps, default selection (step 0 of each block): extra time over the plain video | +1.0 % / ≤ 10 %  ✓ | — |"
    assert_line "| all-layer probs-mode taps, default selection (step 0 of each block): extra time over the plain video | +10.0 % / ≤ 25 %  ✓ | — |"
    # tokens mode has no target: its cost is reported (2.600 / 1.982)
    assert_line "| all-layer tokens-mode taps, default selection (sink frame's per-token mass): extra time over the plain video | +31.2 % / — | — |"
    # the live pipeline (tests/gpu/live.sh's line in the e2e summary)
    assert_line "| live (endless, full size): frames shown per second | 16.0 / — | — |"
    assert_line "| live: the generator's own rate (video frames per second of generation) | 41.7 / ≥ 16 (real time)  ✓ | — |"
    assert_line "| live: prompt posted → its first frame on the page | 1630 ms / — | — |"
}

@test "table.py: a part that did not run leaves its figures empty, never a failure" {
    run -0 python3 "$SF_ROOT/tests/gpu/table.py" "$FX/bench.txt" "$BATS_TEST_TMPDIR/none" "$BATS_TEST_TMPDIR/none.json"
    assert_line "| whole 81-frame video, end to end (from the first forward) | — / ≤ 2.0 s | — (DiT + VAE, serial) |"
    assert_line "| DiT only, 7 blocks | 1.982 s / ≤ 1.45 s  ✗ | — |"
    assert_line "| \`low_memory=true\` (24 GB cards), measured peak | — / ≤ 22 GB (20.49 GiB) | — |"
    assert_line "| live: prompt posted → its first frame on the page | — / — | — |"
    assert_line "| live: the generator's own rate (video frames per second of generation) | — / ≥ 16 (real time) | — |"
    assert_line "| whole video end to end with MPS (the stages' kernels side by side) | — / — | — |"
    refute_output --partial "reference ran on"
}

@test "table.py: A/B, profiled, tapped and non-cuDNN lines never stand in for the default figures" {
    # a call that ran the A/Bs, the taps and sfpipe's attention but not part bench: no default figures
    B="$BATS_TEST_TMPDIR/bench.txt"
    cat >"$B" <<'EOF'
# NVIDIA H200, 143771 MiB, 580.159.04, 9.0; measured 2026-12-06T01:00:00Z, build 0123456789ab
no autotune: decode 1.3b gpu video: 1.020 s for 21 latent frames (81 video frames): 79.4 FPS VAE only
per-frame convs: decode 1.3b gpu video: 1.100 s for 21 latent frames (81 video frames): 73.6 FPS VAE only
gelu unfused: denoise 1.3b gpu video: 2.200 s for 21 latent frames (81 video frames): 36.8 FPS DiT only
profiled: encode xxl gpu: 12.0 ms per 512-token prompt (median of 5, min 11.9): 400 TFLOP/s
profiled: decode 1.3b gpu profile (SF_CUDA_PROFILE, timed video): linear (cuBLASLt) 1.0 ms (1%, 1 GFLOP, 999 TFLOP/s)
taps probs: denoise 1.3b gpu video: 3.964 s for 21 latent frames (81 video frames): 20.4 FPS DiT only [taps: probs + cross, all 30 layers]
taps probs: denoise 1.3b gpu memory: 9.90 GiB allocated by the DiT (weights + KV cache + activations), device used 10.1 of 139.80 GiB
denoise 1.3b gpu video: 2.101 s for 21 latent frames (81 video frames): 38.6 FPS DiT only [taps: frames, all 30 layers]
no cudnn: denoise 1.3b gpu video: 2.420 s for 21 latent frames (81 video frames): 33.5 FPS DiT only [attention: sfpipe fused, no cuDNN]
EOF
    printf 'NVIDIA H200, 143771 MiB, 580.159.04, 9.0\nmeasured 2026-12-06T01:00:00Z, build 0123456789ab\n' >"$BATS_TEST_TMPDIR/gpu.txt"
    run -0 python3 "$SF_ROOT/tests/gpu/table.py" "$B" "$BATS_TEST_TMPDIR/none" "$BATS_TEST_TMPDIR/none.json" "$BATS_TEST_TMPDIR/gpu.txt"
    assert_line "Measured 2026-12-06T01:00:00Z, build 0123456789ab"
    assert_line "| DiT only, 7 blocks | — / ≤ 1.45 s | — |"
    assert_line "| VAE decode, 81 frames | — / ≤ 0.55 s | — |"
    assert_line "| umT5-XXL, one 512-token prompt | — / — | — |"
    assert_line "| GEMM achieved (DiT linear, cuBLASLt) | — / ≥ 600 | — (reference: its GEMM kernels in one profiled last-block forward) |"
    assert_line "| GPU memory, three stages together (sum of the benches) | — / ≤ 40 GB (37.25 GiB) | — (sum of the stages' peaks) |"
    # the alternatives keep their own rows, with no comparison against a default that is not there
    assert_line "| VAE decode, 81 frames, cuDNN's first-choice conv plans (SF_CUDNN_AUTOTUNE=0) | 1.020 s / — | — |"
    assert_line "| DiT only, 7 blocks, sfpipe's fused attention (SF_NO_CUDNN=1) | 2.420 s / ≤ 1.45 s  ✗ | — |"
    assert_line "| all-layer probs-mode taps: extra time over the plain video | — / ≤ 25 % | — |"
}

@test "table.py: the header names the card; a card other than the H200 is said to be measured against the H200's targets" {
    printf 'NVIDIA H100 80GB HBM3, 81559 MiB, 580.159.04, 9.0\n' >"$BATS_TEST_TMPDIR/h100.txt"
    run -0 python3 "$SF_ROOT/tests/gpu/table.py" "$FX/bench.txt" "$FX/e2e.txt" "$FX/ref_bench.json" "$BATS_TEST_TMPDIR/h100.txt"
    assert_line "Card: NVIDIA H100 80GB HBM3, 81559 MiB, 580.159.04, 9.0 — not an H200: the targets below are the H200's; the reference column is this card's"
    assert_line --partial "| figure (NVIDIA H100 80GB HBM3, full Wan VAE"
    printf 'NVIDIA H200, 143771 MiB, 580.159.04, 9.0\n' >"$BATS_TEST_TMPDIR/h200.txt"
    run -0 python3 "$SF_ROOT/tests/gpu/table.py" "$FX/bench.txt" "$FX/e2e.txt" "$FX/ref_bench.json" "$BATS_TEST_TMPDIR/h200.txt"
    assert_line "Card: NVIDIA H200, 143771 MiB, 580.159.04, 9.0"
    refute_output --partial "not an H200"
    # no card file (a check.sh of before): said, not guessed
    run -0 python3 "$SF_ROOT/tests/gpu/table.py" "$FX/bench.txt" "$FX/e2e.txt" "$FX/ref_bench.json"
    assert_line --partial "| figure (card not recorded, "
}

@test "prepare_ref.sh: .ref from the fork's git directory: its Python sources and configs, the bench, the commit; refusals leave the old one" {
    command -v git >/dev/null || skip "no git"
    S="$BATS_TEST_TMPDIR/fork"
    mkdir -p "$S/wan/modules" "$S/pipeline" "$S/utils" "$S/configs" "$S/images"
    for f in wan/modules/causal_model.py pipeline/causal_inference.py utils/wan_wrapper.py wan/__init__.py; do echo "# $f" >"$S/$f"; done
    echo "lr: 1" >"$S/configs/self_forcing_dmd.yaml"
    head -c 4096 /dev/urandom >"$S/images/teaser.png"
    echo '{"cells": []}' >"$S/demo.ipynb"
    git -C "$S" init -q && git -C "$S" add -A && git -C "$S" -c user.name=t -c user.email=t@t commit -qm fork
    echo "# the bench" >"$BATS_TEST_TMPDIR/ref_bench.py"
    R="$BATS_TEST_TMPDIR/ref"
    export SF_REF_OUT="$R" SF_REF_SMOKE=0 SF_REFBENCH="$BATS_TEST_TMPDIR/ref_bench.py"
    run -0 bash "$SF_ROOT/tests/gpu/prepare_ref.sh" "$S/.git"
    assert_output --partial "prepare_ref: $R/ "
    [ "$(cat "$R/COMMIT")" = "$(git -C "$S" rev-parse HEAD)" ]
    [ "$(cat "$R/ref_bench.py")" = "# the bench" ]
    [ "$(cat "$R/utils/wan_wrapper.py")" = "# utils/wan_wrapper.py" ]
    [ -f "$R/configs/self_forcing_dmd.yaml" ]
    [ -f "$R/wan/__init__.py" ]
    [ ! -e "$R/images" ]
    [ ! -e "$R/demo.ipynb" ] # sources and configs only
    [ ! -e "$R.tmp" ]
    # not a git directory: one line, exit 1, the .ref of before untouched
    run -1 bash "$SF_ROOT/tests/gpu/prepare_ref.sh" "$S/images"
    assert_output "prepare_ref: $S/images is not the fork's git directory (fetch github:winbeau/Self-Forcing-fork)"
    [ -f "$R/utils/wan_wrapper.py" ]
    # a fork without a file the reference bench imports
    git -C "$S" rm -q utils/wan_wrapper.py && git -C "$S" -c user.name=t -c user.email=t@t commit -qm gone
    run -1 bash "$SF_ROOT/tests/gpu/prepare_ref.sh" "$S/.git"
    assert_output "prepare_ref: the fork has no utils/wan_wrapper.py"
    [ -f "$R/utils/wan_wrapper.py" ]
    [ ! -e "$R.tmp" ]
}

@test "live.sh: the live pipeline plays, switches prompt and stops on SIGINT; one summary line (tiny model, CPU)" {
    M="$BATS_TEST_TMPDIR/m"
    sf-mkmodel tiny "$M" --seed 1 2>/dev/null
    # HTTP through curl, and through python3's urllib (the GPU machine may have no curl)
    for http in curl python; do
        [ $http = curl ] && ! command -v curl >/dev/null && continue
        SF_LIVE_HTTP=$http SF_LIVE_PLAY=1 SF_LIVE_WAIT=60 run -0 bash "$SF_ROOT/tests/gpu/live.sh" "$M" cpu height=16 width=16 \
            local_attn_size=6 denoise.threads=1 decode.threads=1
        assert_output --regexp '^live: fps [0-9.]+ before / [0-9.]+ after the switch \(video 16, generated at [0-9.]+\), frame latency [0-9]+ ms, prompt switch [0-9]+ ms .*, start [0-9.]+ s, stop ok$'
    done
    # a model that cannot run: one FAILED line, exit 1
    SF_LIVE_WAIT=20 run -1 bash "$SF_ROOT/tests/gpu/live.sh" "$BATS_TEST_TMPDIR/none" cpu
    assert_output --partial "live: FAILED"
}

@test "check.sh plan: the most-needed units first within the call's budget, the rest named as the next call" {
    C="$SF_ROOT/tests/gpu/check.sh"
    # the default call (540 s): the golden DiT paths, our bench, the reference beside it with what is left
    # but e2e's share, then e2e
    SF_CHECK_DRY=1 run -0 bash "$C"
    assert_line --index 0 "run  dit_paths (~45 s)"
    assert_line --index 1 "run  bench (~100 s)"
    assert_line --index 2 "run  ref (~140 s)" # 540 - 145 used - 15 of margin - 240 for e2e
    assert_line --index 3 "run  e2e (~240 s)"
    assert_line "next taps (~135 s: 15 s of the budget left)"
    assert_line "this call: ~525 s of a 540 s budget"
    assert_line "next call: SF_CHECK_UNITS=taps,probes,bench_attn,ab,attn_videos,tests,san_attn,san_tests bash tests/gpu/check.sh (~1205 s)"
    # a short call fills what fits; the reference left out takes our bench with it into the next call
    # (its figures stand beside ours only when measured in the same call)
    SF_CHECK_DRY=1 SF_CHECK_BUDGET=250 run -0 bash "$C"
    assert_line "next ref (~120 s: 105 s of the budget left)"
    assert_line "next e2e (~240 s: 105 s of the budget left)"
    assert_line "run  probes (~30 s)"
    assert_line "run  bench_attn (~60 s)"
    assert_line "next call: SF_CHECK_UNITS=bench,ref,e2e,taps,ab,attn_videos,tests,san_attn,san_tests bash tests/gpu/check.sh (~1575 s)"
    # the next call's own line: the order is always the priority order, whatever order the list had
    SF_CHECK_DRY=1 SF_CHECK_BUDGET=180 SF_CHECK_UNITS=bench_attn,taps,probes run -0 bash "$C"
    assert_line --index 0 "run  taps (~135 s)"
    assert_line --index 1 "run  probes (~30 s)"
    assert_line "next call: SF_CHECK_UNITS=bench_attn bash tests/gpu/check.sh (~60 s)"
    # the older parts, and the headline table in one call
    SF_CHECK_DRY=1 SF_CHECK_ONLY=bench,e2e,ref SF_CHECK_AB=0 run -0 bash "$C"
    # (the reference's deadline: 540 - 100 - 15 - e2e's 240)
    assert_output "run  bench (~100 s)
run  ref (~185 s)
run  e2e (~240 s)
this call: ~525 s of a 540 s budget"
    SF_CHECK_DRY=1 SF_CHECK_ONLY=attn SF_CHECK_BUDGET=0 run -0 bash "$C"
    assert_output "run  dit_paths (~45 s)
run  probes (~30 s)
run  bench_attn (~60 s)
run  san_attn (~150 s)
this call: ~285 s (no budget)"
    # SF_CHECK_UNITS=next: what the machine's last call left (fixed in advance: the machine stays warm ~30 s);
    # the A/Bs bring the default figures they are measured against (bench) into their call, and follow it at
    # once (the units between would take the time they were planned for)
    echo "ab,probes" >"$BATS_TEST_TMPDIR/next"
    SF_CHECK_DRY=1 SF_CHECK_NEXT_FILE="$BATS_TEST_TMPDIR/next" SF_CHECK_UNITS=next run -0 bash "$C"
    assert_output "run  bench (~100 s)
run  ab (~170 s)
run  probes (~30 s)
this call: ~300 s of a 540 s budget"
    # ab never runs without its baseline: bench left for the next call takes ab with it
    SF_CHECK_DRY=1 SF_CHECK_BUDGET=90 SF_CHECK_UNITS=ab,probes run -0 bash "$C"
    assert_output "next bench (only the baseline of ab: ~270 s with one of them, 90 s left)
next ab (its baseline, bench, is left for the next call)
run  probes (~30 s)
this call: ~30 s of a 90 s budget
next call: SF_CHECK_UNITS=bench,ab bash tests/gpu/check.sh (~270 s)"
    # a bench there only as a baseline runs only when one of its partners fits beside it: a second call of
    # 190 s spends its time on taps, not on a bench whose ab (~170 s) or reference (~120 s) cannot follow
    echo "taps,probes,bench_attn,ab,attn_videos,tests,san_attn,san_tests" >"$BATS_TEST_TMPDIR/next2"
    SF_CHECK_DRY=1 SF_CHECK_NEXT_FILE="$BATS_TEST_TMPDIR/next2" SF_CHECK_UNITS=next SF_CHECK_BUDGET=190 run -0 bash "$C"
    assert_line --index 0 "next bench (only the baseline of ab: ~270 s with one of them, 190 s left)"
    assert_line --index 1 "next ab (its baseline, bench, is left for the next call)"
    assert_line --index 2 "run  taps (~135 s)"
    assert_line --index 3 "run  probes (~30 s)"
    # and with the time for the pair, ab follows its bench at once, before the units between them in the
    # usual order (which would otherwise take ab's time, bench then measured for nothing)
    SF_CHECK_DRY=1 SF_CHECK_NEXT_FILE="$BATS_TEST_TMPDIR/next2" SF_CHECK_UNITS=next SF_CHECK_BUDGET=400 run -0 bash "$C"
    assert_line --index 0 "run  bench (~100 s)"
    assert_line --index 1 "run  ab (~170 s)"
    assert_line --index 2 "next taps (~135 s: 130 s of the budget left)"
    printf 'bench,ref,taps\nbench: baseline only\n' >"$BATS_TEST_TMPDIR/next3"
    SF_CHECK_DRY=1 SF_CHECK_NEXT_FILE="$BATS_TEST_TMPDIR/next3" SF_CHECK_UNITS=next SF_CHECK_BUDGET=190 run -0 bash "$C"
    assert_output "next bench (only the baseline of ref: ~220 s with one of them, 190 s left)
next ref (its baseline, bench, is left for the next call)
run  taps (~135 s)
this call: ~135 s of a 190 s budget
next call: SF_CHECK_UNITS=bench,ref bash tests/gpu/check.sh (~220 s)"
    # with the time, the pair runs (and a bench this call wanted for itself always runs first)
    SF_CHECK_DRY=1 SF_CHECK_NEXT_FILE="$BATS_TEST_TMPDIR/next3" SF_CHECK_UNITS=next SF_CHECK_BUDGET=300 run -0 bash "$C"
    assert_line --index 0 "run  bench (~100 s)"
    assert_line --index 1 "run  ref (~185 s)"
    SF_CHECK_DRY=1 SF_CHECK_BUDGET=190 SF_CHECK_UNITS=bench,ref,taps run -0 bash "$C"
    assert_line --index 0 "run  bench (~100 s)"
    # a fresh machine (the warm one was given back): no units left there, so the default plan, said on
    # stderr, instead of a machine start for nothing
    SF_CHECK_DRY=1 SF_CHECK_NEXT_FILE="$BATS_TEST_TMPDIR/none" SF_CHECK_UNITS=next run -0 --separate-stderr bash "$C"
    assert_line --index 0 "run  dit_paths (~45 s)"
    [[ "$stderr" == *"no earlier call on this machine left units"*"the default plan"* ]]
    # mistakes are one line and exit 2, before anything runs
    SF_CHECK_DRY=1 SF_CHECK_UNITS=bench,foo run -2 bash "$C"
    assert_output --partial "unknown unit 'foo'"
    SF_CHECK_DRY=1 SF_CHECK_ONLY=tapz run -2 bash "$C"
    assert_output --partial "unknown part 'tapz'"
    SF_CHECK_DRY=1 SF_CHECK_BUDGET=9m run -2 bash "$C"
    assert_output --partial "SF_CHECK_BUDGET must be whole seconds"
}

@test "check.sh runs only test binaries the GPU bundle builds (the Makefile's GPU_CHECK_TESTS)" {
    # bundle.sh builds `all` with CUDA_ARCH set, which is $(PROGS) and GPU_CHECK_TESTS alone: a test
    # check.sh names but the list lacks is missing on the device, and its step fails there
    built=" $(make --no-print-directory -s -C "$SF_ROOT" -f Makefile -f <(printf 'sf-print-%%:\n\t@echo $($*)\n') \
        sf-print-GPU_CHECK_TESTS) "
    run -0 grep -o '\$G/tests/test_[a-z0-9_]*' "$SF_ROOT/tests/gpu/check.sh"
    [ ${#lines[@]} -gt 10 ]
    for t in "${lines[@]}"; do
        t=${t##*/}
        [[ "$built" == *" $t "* ]] || { echo "check.sh runs $t, which GPU_CHECK_TESTS does not build" >&2; false; }
    done
}

@test "carry.sh: the tree (tracked and untracked-not-ignored) plus the named paths, against the call's 64 MiB" {
    R="$BATS_TEST_TMPDIR/repo"
    mkdir -p "$R/sub" "$R/.gpu" "$R/ign"
    cd "$R" && git init -q . && printf '/ign/\n/.gpu/\n' >.gitignore
    truncate -s 1048576 sub/tracked.bin   # 1 MiB tracked
    git add .gitignore sub/tracked.bin && git -c user.name=t -c user.email=t@t commit -qm t
    truncate -s 524288 untracked.bin      # 0.5 MiB untracked, not ignored: it travels
    truncate -s 3145728 ign/big.bin       # ignored and not named: it stays here
    truncate -s 2097152 .gpu/bundle.tar.gz # named in carry: it travels
    t=$(awk -v b="$(stat -c %s .gitignore)" 'BEGIN {printf "%.2f", (1572864 + b) / 1048576}')
    run -0 bash "$SF_ROOT/tests/gpu/carry.sh" .gpu .ref
    assert_output "carry: $t MiB tree + 2.00 MiB carried = 3.50 MiB of 64 (margin 60.50 MiB); not there: .ref"
    # over the kept margin: exit 1, the same line
    SF_CARRY_MAX_MIB=3 run -1 bash "$SF_ROOT/tests/gpu/carry.sh" .gpu
    assert_output "carry: $t MiB tree + 2.00 MiB carried = 3.50 MiB of 64 (margin 60.50 MiB)"
    # a deleted tracked file is not sent; run from a subfolder, the paths are the checkout's
    rm sub/tracked.bin
    cd sub
    SF_CARRY_MAX_MIB=3 run -0 bash "$SF_ROOT/tests/gpu/carry.sh" .gpu
    assert_output --partial "= 2.50 MiB of 64"
    cd /
    run -2 bash "$SF_ROOT/tests/gpu/carry.sh"
    assert_output "carry: not in a git checkout"
}

@test "pack_goldens.sh: tests/golden into .gpu/goldens.tar.gz and out of the tree for a call, back from git after it; check.sh unpacks it" {
    R="$BATS_TEST_TMPDIR/repo"
    mkdir -p "$R/tests/gpu" "$R/tests/golden/model" "$R/.gpu"
    cp "$SF_ROOT/tests/gpu/pack_goldens.sh" "$SF_ROOT/tests/gpu/carry.sh" "$R/tests/gpu/"
    cd "$R" && git init -q . && printf '/.gpu/\n' >.gitignore
    head -c 300000 /dev/zero >tests/golden/model/zeros.bin   # packs to almost nothing
    printf 'a golden\n' >"tests/golden/with space.txt"
    git add -A && git -c user.name=t -c user.email=t@t commit -qm t
    run -2 bash tests/gpu/pack_goldens.sh      # no verb
    assert_output --partial "usage:"
    # a golden changed here and not committed: no pack (restore would lose it)
    printf 'changed\n' >"tests/golden/with space.txt"
    run -1 bash tests/gpu/pack_goldens.sh pack
    assert_output "pack_goldens: tests/golden has changes git does not have: commit them first (restore takes the files from git)"
    [ -e "tests/golden/with space.txt" ] && [ ! -e .gpu/goldens.tar.gz ]
    git checkout -q -- tests/golden
    run -0 bash tests/gpu/pack_goldens.sh size # the files' bytes and their pack's (rehearse.sh's estimate)
    read -r raw gz <<<"$output"
    [ "$raw" = 300009 ]
    run -0 bash tests/gpu/pack_goldens.sh pack
    [ "$gz" = "$(stat -c %s .gpu/goldens.tar.gz)" ]
    assert_line --regexp '^pack_goldens: 2 files into \.gpu/goldens\.tar\.gz \([0-9.]+ MiB\), removed from the tree until restore$'
    assert_line --partial "MiB carried"
    [ ! -e tests/golden/model/zeros.bin ] && [ ! -e "tests/golden/with space.txt" ]
    # no commit while packed (the files look deleted): the hook pack installed refuses it
    run -1 git -c user.name=t -c user.email=t@t commit -qam "would delete the goldens"
    assert_output --partial "tests/golden is packed for a device call: bash tests/gpu/pack_goldens.sh restore first"
    # what check.sh does first on the device: the files back, the same bytes
    mkdir "$BATS_TEST_TMPDIR/dev" && tar -xzf .gpu/goldens.tar.gz -C "$BATS_TEST_TMPDIR/dev"
    cmp "$BATS_TEST_TMPDIR/dev/tests/golden/with space.txt" <(printf 'a golden\n')
    [ "$(stat -c %s "$BATS_TEST_TMPDIR/dev/tests/golden/model/zeros.bin")" = 300000 ]
    run -0 bash tests/gpu/pack_goldens.sh restore
    assert_line "pack_goldens: tests/golden back from git (2 files), .gpu/goldens.tar.gz removed"
    [ -z "$(git status --porcelain)" ] && [ ! -e .gpu/goldens.tar.gz ] && [ ! -e .git/hooks/pre-commit ]
    # a hook of the checkout's own is left alone
    printf '#!/bin/sh\nexit 0\n' >.git/hooks/pre-commit && chmod +x .git/hooks/pre-commit
    run -0 bash tests/gpu/pack_goldens.sh pack
    run -0 bash tests/gpu/pack_goldens.sh restore
    [ "$(cat .git/hooks/pre-commit)" = "$(printf '#!/bin/sh\nexit 0')" ]
    grep -q 'tar -xzf .gpu/goldens.tar.gz' "$SF_ROOT/tests/gpu/check.sh"
}
