#!/usr/bin/env bats
# pipelines/sink_study.yaml on the tiny model: one prompt, one seed, three checkpoints (base, DMD, SID
# — two random checkpoints made by sf-mkmodel), every layer in probs, frames and tokens mode, then sf-taps
# compare and report, all through sf-run.

bats_require_minimum_version 1.5.0
load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'

# a .safetensors file's metadata value $2 ("" when absent)
meta() { python3 -c 'import json,struct,sys; f=open(sys.argv[1],"rb"); n=struct.unpack("<Q",f.read(8))[0]; print(json.loads(f.read(n))["__metadata__"].get(sys.argv[2],""))' "$1" "$2"; }

# the study's run $1 beside DMD's when it changes the cache from block 2 on (latents 6-8, the first to overflow a
# 6-frame cache): its weights end with $2, its tap files record $3 = $4 (DMD's not), video frames 0-20 are DMD's and
# frame 21 not, its rows in compare.csv and its column in the report
cache_run() {
    p="$D/out/p0"
    [[ "$(meta "$p/probs_$1.safetensors" weights)" == *"dmd.pt:generator_ema, $2" ]]
    assert_equal "$(meta "$p/frames_$1.safetensors" "$3")" "$4"
    [ -z "$(meta "$p/frames_dmd.safetensors" "$3")" ]
    for f in 00000 00020; do cmp -s "$p/video_dmd/frame_$f.png" "$p/video_$1/frame_$f.png"; done
    ! cmp -s "$p/video_dmd/frame_00021.png" "$p/video_$1/frame_00021.png" || false
    assert_equal "$(grep -c "^[0-2],[01],$1," "$p/compare/compare.csv")" 6
    grep -qF "<th>$1</th>" "$p/report.html"
}

# two random checkpoints made by sf-mkmodel (DMD: the model's own seed, SID: another), then the study on them into
# $D/out at 32×48, 6 latent frames, with the vars given
study() {
    D="$BATS_TEST_TMPDIR"
    sf-mkmodel tiny "$D/m" --seed 1 --checkpoint "$D/m/dmd.pt" --log-level warn
    sf-mkmodel tiny "$D/m2" --seed 2 --only config,dit --checkpoint "$D/m/sid.pt" --log-level warn
    cd "$SF_ROOT"
    run -0 --separate-stderr sf-run pipelines/sink_study.yaml model_dir="$D/m" dmd_checkpoint="$D/m/dmd.pt" \
        sid_checkpoint="$D/m/sid.pt" num_frames=6 height=32 width=48 out_dir="$D/out" cache_dir="$D/cache" "$@"
}

@test "sink_study.yaml: three checkpoints, every layer, probs + frames + tokens, compare and report" {
    study prompt='A red fox <b>trotting</b> & "jumping"'
    p="$D/out/p0"
    for r in base dmd sid; do
        for m in probs frames; do
            # every layer of the tiny model (3), every forward (2 blocks × 5), the run's facts
            assert_equal "$(sf-tensor ls "$p/${m}_$r.safetensors" | grep -c "^$m\.L[0-2]\.b[01]\.s[0-4]	")" 30
        done
        assert_equal "$(sf-tensor ls "$p/probs_$r.safetensors" | grep -c '^lse\.L')" 30
        assert_equal "$(sf-tensor ls "$p/tokens_$r.safetensors" | grep -c "^tokens\.L[0-2]\.b[01]\.s[0-4]	f32	\[2, 3, 6\]$")" 30
    done
    # one prompt, one seed (the same noise), three different weights
    for r in base dmd sid; do
        assert_equal "$(meta "$p/probs_$r.safetensors" seed)" 42
        assert_equal "$(meta "$p/probs_$r.safetensors" layers)" "[0,1,2]"
        assert_equal "$(meta "$p/frames_$r.safetensors" prompt)" 'A red fox <b>trotting</b> & "jumping"'
    done
    [[ "$(meta "$p/probs_base.safetensors" weights)" == base* ]]
    [[ "$(meta "$p/probs_dmd.safetensors" weights)" == *dmd.pt:generator_ema ]]
    [[ "$(meta "$p/probs_sid.safetensors" weights)" == *sid.pt:generator_ema ]]
    # compare: 3 layers × 2 heads × 3 runs, the last block's step 0 (most key frames)
    assert_equal "$(wc -l < "$p/compare/compare.csv")" 19
    assert_equal "$(grep -c '^[0-2],[01],\(base\|dmd\|sid\),1,0,' "$p/compare/compare.csv")" 18
    [ "$(awk -F, '$3=="sid" && $9!=0' "$p/compare/compare.csv" | wc -l)" -gt 0 ] # the checkpoints differ
    # the report: escaped prompt, every figure inline
    grep -qF 'A red fox &lt;b&gt;trotting&lt;/b&gt; &amp; &quot;jumping&quot;' "$p/report.html"
    assert_equal "$(grep -c '<svg ' "$p/report.html")" 20 # 2 curves + 3 frame-mass grids + 2 differences + 3 heatmaps + 2 differences + 3 token maps + 2 map differences + 3 words
    # which words each frame looks at (--tap-cross in probs mode): per run, the prompt's pieces as the columns
    assert_equal "$(sf-tensor ls "$p/probs_base.safetensors" | grep -c '^cross\.L')" 30
    grep -qF '<h2>Which words each frame looks at</h2>' "$p/report.html"
    n=$(sf-taps words "$p/probs_base.safetensors" --by-word --layers 0 | awk -F, 'NR > 1 && $5 == 3' | wc -l) # its words
    assert_equal "$(grep -c '<text class="piece"' "$p/report.html")" $((3 * n))
    grep -qE '<text class="piece" x="121.0" y="[0-9.]+" [^>]*>A</text>' "$p/report.html" # the first word, its column's middle
    # the token maps: per run and per difference to base, each layer's key slot 0 on the 2×3 grid of a 32×48 frame
    run -0 python3 "$BATS_TEST_DIRNAME/png_pixels.py" "$p/report.html"
    assert_equal "${#lines[@]}" 15
    assert_equal "$(printf '%s\n' "${lines[@]}" | grep -c '^3 2 ')" 15
    # each checkpoint's video (6 latent frames: 21 at 48×32), and the run's maps drawn over its own frame 0 (the sink),
    # embedded as sf-decode wrote it (the same pixels through the same PNG encoder: the same bytes)
    for r in base dmd sid; do
        assert_equal "$(ls "$p/video_$r" | wc -l)" 21
        grep -qF "href=\"data:image/png;base64,$(base64 -w0 "$p/video_$r/frame_00000.png")\"" "$p/report.html"
    done
    ! cmp -s "$p/video_dmd/frame_00000.png" "$p/video_sid/frame_00000.png" || false
    assert_equal "$(grep -o 'class="frame"' "$p/report.html" | wc -l)" 3
    # and each run's video as a strip, a thumbnail per latent frame: video frames 0, 1, 5, 9, 13, 17 (4f − 3), as written
    run -0 python3 - "$p" <<'PY'
import base64, re, sys
d = sys.argv[1]
text = open(d + "/report.html").read()
thumbs = re.findall(r'<img class="thumb" width="120" height="80" alt="latent frame (\d+), video frame (\d+)" '
                    r'src="data:image/png;base64,([A-Za-z0-9+/=]+)">', text)
assert len(thumbs) == 18, len(thumbs)
for i, run in enumerate(("base", "dmd", "sid")):
    for f, (lf, vf, b64) in enumerate(thumbs[6 * i:6 * i + 6]):
        want = 0 if f == 0 else 4 * f - 3
        assert (int(lf), int(vf)) == (f, want), (run, lf, vf)
        assert base64.b64decode(b64) == open("%s/video_%s/frame_%05d.png" % (d, run, want), "rb").read(), (run, f)
PY
}

@test "sink_study.yaml sink_ablate=1 sink_ablate_layers=2: a fourth run, DMD sink-ablated, every layer tapped; its ablated layer marked" {
    study sink_ablate=1 sink_ablate_layers=2
    p="$D/out/p0"
    for r in base dmd sid dmd_ablated; do
        assert_equal "$(meta "$p/probs_$r.safetensors" layers)" "[0,1,2]" # layer 2 is ablated in one run, tapped in all
        assert_equal "$(sf-tensor ls "$p/probs_$r.safetensors" | grep -c '^probs\.L[0-2]\.')" 30
    done
    [[ "$(meta "$p/probs_dmd_ablated.safetensors" weights)" == *"dmd.pt:generator_ema, sink-ablated (1 frame, layers 2)" ]]
    # the ablated video: the first block's frames (latent 0-2: video frames 0-8) are DMD's, the later ones are not
    for f in 0 8; do cmp -s "$p/video_dmd/frame_0000$f.png" "$p/video_dmd_ablated/frame_0000$f.png"; done
    ! cmp -s "$p/video_dmd/frame_00009.png" "$p/video_dmd_ablated/frame_00009.png" || false
    ! cmp -s "$p/video_dmd/frame_00020.png" "$p/video_dmd_ablated/frame_00020.png" || false
    # compare and report over the four runs
    assert_equal "$(grep -c '^[0-2],[01],dmd_ablated,1,0,' "$p/compare/compare.csv")" 6
    # layer 2's first key slot: frame 1 in the ablated run (frame 0 skipped), frame 0 in DMD's; layers 0-1: frame 0
    assert_equal "$(grep -c '^2,[01],dmd_ablated,1,0,.*,1$' "$p/compare/compare.csv")" 2
    assert_equal "$(grep -c '^[0-2],[01],dmd,1,0,.*,0$' "$p/compare/compare.csv")" 6
    assert_equal "$(grep -c '^[01],[01],dmd_ablated,1,0,.*,0$' "$p/compare/compare.csv")" 4
    grep -qF '(frame 1, ablated)' "$p/report.html"
    # a picture per run for its sink frame (latent 0), and the ablated run's layer 2 drawn over latent frame 1's
    assert_equal "$(grep -o 'class="frame"' "$p/report.html" | wc -l)" 5
    grep -qF '<th>dmd_ablated</th>' "$p/report.html"
    run -2 --separate-stderr pipelines/sink_study.sh --model-dir "$D/m" --dmd-checkpoint "$D/m/dmd.pt" \
        --sid-checkpoint "$D/m/sid.pt" --out-dir "$D/o2" --sink-ablate 1 --sink-ablate-layers 7
    assert_equal "$stderr" "sink_study.sh: error: --sink-ablate-layers: layer 7 out of range (the model has 3 layers: 0..2)"
    [ ! -e "$D/o2/embeds.safetensors" ]
}

@test "sink_study.yaml local_attn_size=6 sink_size=3 sink_rope=realign: every run rolling, a fourth run DMD realigned" {
    study num_frames=9 local_attn_size=6 sink_size=3 sink_rope=realign
    p="$D/out/p0"
    for r in base dmd sid dmd_realigned; do # 3 layers, 3 blocks x 5 forwards; the rolling cache in the facts
        assert_equal "$(sf-tensor ls "$p/probs_$r.safetensors" | grep -c '^probs\.L[0-2]\.')" 45
        assert_equal "$(meta "$p/probs_$r.safetensors" local_attn_size)/$(meta "$p/probs_$r.safetensors" sink_size)" "6/3"
    done
    [[ "$(meta "$p/probs_dmd_realigned.safetensors" weights)" == *"dmd.pt:generator_ema, sink RoPE realigned (gap 0)" ]]
    [[ "$(meta "$p/probs_dmd.safetensors" weights)" == *"dmd.pt:generator_ema" ]]
    # block 2 (latents 6-8) is the first to evict: video frames 0-20 (latents 0-5) are DMD's, frame 21 on not
    for f in 00000 00020; do cmp -s "$p/video_dmd/frame_$f.png" "$p/video_dmd_realigned/frame_$f.png"; done
    ! cmp -s "$p/video_dmd/frame_00021.png" "$p/video_dmd_realigned/frame_00021.png" || false
    # compare and report over the four runs (3 layers x 2 heads a run)
    assert_equal "$(grep -c '^[0-2],[01],dmd_realigned,' "$p/compare/compare.csv")" 6
    grep -qF '<th>dmd_realigned</th>' "$p/report.html"
    # realign without a rolling cache: sf-denoise's refusal, before any work
    run -2 --separate-stderr pipelines/sink_study.sh --model-dir "$D/m" --dmd-checkpoint "$D/m/dmd.pt" \
        --sid-checkpoint "$D/m/sid.pt" --out-dir "$D/o2" --sink-rope realign
    [[ "$stderr" == "sink_study.sh: error: --sink-rope realign needs a rolling KV cache with a sink"* ]] || false
    run -2 --separate-stderr pipelines/sink_study.sh --model-dir "$D/m" --dmd-checkpoint "$D/m/dmd.pt" \
        --sid-checkpoint "$D/m/sid.pt" --out-dir "$D/o2" --sink-rope-gap 2
    assert_equal "$stderr" "sink_study.sh: error: --sink-rope-gap goes with --sink-rope realign"
    [ ! -e "$D/o2/embeds.safetensors" ]
}

@test "sink_study.sh: a missing checkpoint is an error before any work" {
    cd "$SF_ROOT"
    run -2 --separate-stderr pipelines/sink_study.sh --dmd-checkpoint "$BATS_TEST_TMPDIR/none.pt" --out-dir "$BATS_TEST_TMPDIR/o"
    assert_equal "$stderr" "sink_study.sh: error: checkpoint $BATS_TEST_TMPDIR/none.pt not found (give --dmd-checkpoint / --sid-checkpoint)"
    [ ! -e "$BATS_TEST_TMPDIR/o" ]
}

@test "sink_study.sh: --flag=value and unique prefixes, like the C stages and argparse" {
    cd "$SF_ROOT"
    run -2 --separate-stderr pipelines/sink_study.sh --dmd-ch="$BATS_TEST_TMPDIR/none.pt" --out="$BATS_TEST_TMPDIR/o"
    assert_equal "$stderr" "sink_study.sh: error: checkpoint $BATS_TEST_TMPDIR/none.pt not found (give --dmd-checkpoint / --sid-checkpoint)"
    run -2 --separate-stderr pipelines/sink_study.sh --dmd-c x
    assert_equal "$stderr" "sink_study.sh: error: ambiguous option: --dmd-c could match --dmd-checkpoint, --dmd-config"
    [ ! -e "$BATS_TEST_TMPDIR/o" ]
}

@test "sink_study.yaml from another folder: its stage ./sink_study.sh is the one next to the spec" {
    cd "$BATS_TEST_TMPDIR"
    for spec in "$SF_ROOT/pipelines/sink_study.yaml" pipelines/sink_study.yaml; do # the path, or found by sf-run
        run -1 sf-run "$spec" dmd_checkpoint="$BATS_TEST_TMPDIR/none.pt" out_dir="$BATS_TEST_TMPDIR/o" --log-level warn
        assert_output --partial "stage 'study' failed (exit 2): sink_study.sh: error: checkpoint $BATS_TEST_TMPDIR/none.pt not found"
        refute_output --partial "cannot run"
    done
    [ ! -e "$BATS_TEST_TMPDIR/o" ]
}

@test "sink_study.yaml kv_compress=2 (a rolling cache with a 1-frame sink): a fourth run, DMD compressed, compared and reported" {
    study num_frames=9 local_attn_size=6 sink_size=1 kv_compress=2
    cache_run dmd_compressed "KV cache compressed (2 frames)" kv_compress 2
    # a compression the cache cannot hold: sf-denoise's refusal, before any work
    run -2 --separate-stderr pipelines/sink_study.sh --model-dir "$D/m" --dmd-checkpoint "$D/m/dmd.pt" \
        --sid-checkpoint "$D/m/sid.pt" --out-dir "$D/o2" --local-attn-size 6 --sink-size 1 --kv-compress 3
    [[ "$stderr" == "sink_study.sh: error: --kv-compress 3: the sink (1 frame), the compressed frames and a block (3) need 7 frames"* ]] || false
    [ ! -e "$D/o2/embeds.safetensors" ]
}

@test "sink_study.yaml pc_budget=5 pc_recent=3 (a rolling cache with a 1-frame sink): a fourth run, DMD with Deep Forcing's released compression, compared and reported" {
    study num_frames=9 local_attn_size=6 sink_size=1 pc_budget=5 pc_recent=3
    cache_run dmd_deepforcing "KV cache compressed as Deep Forcing's release (budget 5, recent 3)" pc_budget 5
    # a budget the cache cannot give: sf-denoise's refusal, before any work; --pc-recent alone
    run -2 --separate-stderr pipelines/sink_study.sh --model-dir "$D/m" --dmd-checkpoint "$D/m/dmd.pt" \
        --sid-checkpoint "$D/m/sid.pt" --out-dir "$D/o2" --local-attn-size 6 --sink-size 1 --pc-budget 7
    [[ "$stderr" == "sink_study.sh: error: --pc-budget 7: the cache holds 6 frames (local_attn_size)"* ]] || false
    run -2 --separate-stderr pipelines/sink_study.sh --model-dir "$D/m" --dmd-checkpoint "$D/m/dmd.pt" \
        --sid-checkpoint "$D/m/sid.pt" --out-dir "$D/o2" --pc-recent 3
    [[ "$stderr" == "sink_study.sh: error: --pc-recent goes with --pc-budget N"* ]] || false
    [ ! -e "$D/o2/embeds.safetensors" ]
}
