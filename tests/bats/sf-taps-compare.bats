#!/usr/bin/env bats
# sf-taps compare / heatmap / report (the attention-sink workbench): numbers worked out by hand from
# hand-made probs files and, independently in Python, from the golden logits file; the HTML report
# escaped and self-contained, opened in headless Chromium (SKIPs, visibly, only without chromium).

bats_require_minimum_version 1.5.0
load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'

setup() {
    G="${SF_GOLDEN:-$BATS_TEST_DIRNAME/../golden}"
    T="$G/expect/taps_base.safetensors"
    D="$BATS_TEST_TMPDIR"
    # two hand-made probs files: 2 layers × 2 heads × 2 query frames × 3 key frames
    #   A L0 h0 rows [.5 .25 .25] [.7 .15 .15] → first mass .6, sink ratio .6/.2 = 3
    #   A L0 h1 rows [.2 .4 .4] twice         → .2, .5
    #   B L0 h0 rows [.4 .3 .3] twice         → .4, 4/3;  B L0 h1 [.1 .45 .45] → .1, 2/9
    #   L3 (both files, both heads) rows [1/3 1/3 1/3] → 1/3, 1
    python3 - "$D" "$BATS_TEST_DIRNAME" <<'PY'
import json, sys
sys.path.insert(0, sys.argv[2])
from st_write import write
third = [1/3, 1/3, 1/3] * 4
lse = [0.0] * 2 * 2 * 4
meta = {"tap_mode": "probs", "frame_seq_length": "24", "heads": "2", "layers": "[0,3]", "seed": "42",
        "prompt": "<script>alert(1)</script> & \"fox\"", "weights": "checkpoint a.pt:generator_ema",
        "forwards": json.dumps([{"block": 1, "step": 0, "start_frame": 3, "query_frames": 2, "key_frames": [0, 4, 5]}])}
write(sys.argv[1] + "/A.safetensors", {
    "probs.L0.b1.s0": ([2, 2, 3], [.5, .25, .25, .7, .15, .15, .2, .4, .4, .2, .4, .4]),
    "lse.L0.b1.s0": ([2, 2, 4], lse), "probs.L3.b1.s0": ([2, 2, 3], third)}, meta)
meta["weights"] = "checkpoint b.pt:generator_ema"
write(sys.argv[1] + "/B.safetensors", {
    "probs.L0.b1.s0": ([2, 2, 3], [.4, .3, .3, .4, .3, .3, .1, .45, .45, .1, .45, .45]),
    "probs.L3.b1.s0": ([2, 2, 3], third), "probs.L3.b0.s0": ([2, 2, 2], [.5] * 8)}, meta)
PY
}

# CSV field of the row for (layer, head, run): column N
field() { awk -F, -v l="$2" -v h="$3" -v r="$4" -v c="$5" '$1==l && $2==h && $3==r {print $c}' "$1"; }
close_to() { python3 -c 'import sys; a,b,t=map(float,sys.argv[1:]); sys.exit(0 if abs(a-b)<=t else 1)' "$1" "$2" "${3:-1e-6}"; }

@test "compare: first-frame mass, sink ratio and differences, worked out by hand" {
    run -0 --separate-stderr sf-taps compare "$D/A.safetensors" "$D/B.safetensors"
    echo "$output" > "$D/c.csv"
    assert_line --index 0 "layer,head,run,block,step,first_mass,sink_ratio,d_first_mass,d_sink_ratio,first_key_frame"
    assert_equal "$(wc -l < "$D/c.csv")" 9 # 2 layers × 2 heads × 2 runs + header
    close_to "$(field "$D/c.csv" 0 0 A 6)" 0.6
    close_to "$(field "$D/c.csv" 0 0 A 7)" 3
    close_to "$(field "$D/c.csv" 0 1 A 6)" 0.2
    close_to "$(field "$D/c.csv" 0 1 A 7)" 0.5
    close_to "$(field "$D/c.csv" 0 0 B 6)" 0.4
    close_to "$(field "$D/c.csv" 0 0 B 7)" 1.3333333
    close_to "$(field "$D/c.csv" 0 0 B 8)" -0.2
    close_to "$(field "$D/c.csv" 0 0 B 9)" -1.6666667
    close_to "$(field "$D/c.csv" 0 1 B 9)" -0.2777778
    close_to "$(field "$D/c.csv" 3 1 B 7)" 1
    # the forward with the most key frames (block 1, step 0), not B's 2-frame block 0
    assert_equal "$(field "$D/c.csv" 3 0 B 4),$(field "$D/c.csv" 3 0 B 5)" "1,0"
    assert_equal "$(field "$D/c.csv" 0 0 A 8)" 0
    # --forward and --labels
    run -1 --separate-stderr sf-taps compare "$D/A.safetensors" "$D/B.safetensors" --forward 0:0
    assert_equal "$(grep -c '^sf-taps: error: .*no probs/logits tap of layer 0' <<<"$stderr")" 1
    run -0 --separate-stderr sf-taps compare "$D/A.safetensors" "$D/B.safetensors" --labels base dmd --layers 3
    assert_line --index 1 --regexp '^3,0,base,1,0,0\.333333'
    assert_equal "${#lines[@]}" 5
}

@test "compare on the golden logits: the softmax mass of frame 0 as Python computes it from the f16 logits" {
    run -0 --separate-stderr sf-taps compare "$T" "$T" --labels a b
    echo "$output" > "$D/g.csv"
    # independent: read fig4.L0.attn_logits [1,2,72,216] f16, row softmax, mean over queries, frames of 24
    read -r m0 r0 m1 r1 < <(python3 - "$T" <<'PY'
import json, math, struct, sys
f = open(sys.argv[1], "rb"); n = struct.unpack("<Q", f.read(8))[0]; h = json.loads(f.read(n)); base = 8 + n
e = h["fig4.L0.attn_logits"]; a, b = e["data_offsets"]; f.seek(base + a)
raw = f.read(b - a); vals = struct.unpack("<%de" % ((b - a) // 2), raw)
H, Lq, Lk, S = 2, 72, 216, 24
out = []
for hh in range(H):
    W = [0.0] * Lk
    for q in range(Lq):
        row = vals[(hh * Lq + q) * Lk:(hh * Lq + q + 1) * Lk]; m = max(row)
        ex = [math.exp(x - m) for x in row]; z = sum(ex)
        for j in range(Lk): W[j] += ex[j] / z / Lq
    fr = [sum(W[k * S:(k + 1) * S]) for k in range(Lk // S)]
    out += [fr[0], fr[0] / (sum(fr[1:-1]) / (len(fr) - 2))]
print(*out)
PY
)
    close_to "$(field "$D/g.csv" 0 0 a 6)" "$m0" 1e-6
    close_to "$(field "$D/g.csv" 0 0 a 7)" "$r0" 1e-6
    close_to "$(field "$D/g.csv" 0 1 b 6)" "$m1" 1e-6
    close_to "$(field "$D/g.csv" 0 1 b 7)" "$r1" 1e-6
    assert_equal "$(field "$D/g.csv" 0 1 b 9)" 0
}

@test "compare -o DIR and heatmap: CSV and well-formed SVG figures" {
    run -0 sf-taps compare "$D/A.safetensors" "$D/B.safetensors" -o "$D/out"
    for f in compare.csv sink_ratio_A.svg sink_ratio_B.svg sink_ratio_diff_B.svg first_mass.svg sink_ratio_layers.svg \
        frame_mass_A.svg frame_mass_B.svg frame_mass_diff_B.svg; do
        [ -s "$D/out/$f" ]
    done
    [ ! -e "$D/out/frame_mass_diff_A.svg" ]
    for f in "$D"/out/*.svg; do python3 -c 'import sys, xml.etree.ElementTree as E; E.parse(sys.argv[1])' "$f"; done
    assert_equal "$(grep -c '<title>L[03] head [01]: ' "$D/out/sink_ratio_A.svg")" 4
    grep -q '<title>L0 head 0: 3</title>' "$D/out/sink_ratio_A.svg"
    grep -q '<title>L0 head 0: -1.66667</title>' "$D/out/sink_ratio_diff_B.svg"
    # the mass on each absolute key frame, by hand: A's L0 slots hold frames 0, 4, 5 (the facts); head 0's rows
    # [.5 .25 .25] [.7 .15 .15] average [.6 .2 .2], head 1's [.2 .4 .4]: [.4 .3 .3]; frames 1-3 were attended by no
    # layer of either run: one grey hatched column "1–3" between frames 0 and 4
    assert_equal "$(grep -c '<title>L[03] frame [0-5]: ' "$D/out/frame_mass_A.svg")" 6
    assert_equal "$(grep -c '<title>L[03] frames 1–3: nan</title>' "$D/out/frame_mass_A.svg")" 2
    assert_equal "$(grep -c 'fill="url(#gap[0-9]*)"' "$D/out/frame_mass_A.svg")" 2
    grep -qF '>1–3</text>' "$D/out/frame_mass_A.svg"
    for t in 'L0 frame 0: 0.4' 'L0 frame 4: 0.3' 'L0 frame 5: 0.3' 'L3 frame 4: 0.333333'; do
        grep -qF "<title>$t</title>" "$D/out/frame_mass_A.svg"
    done
    # B's L0 [.25 .375 .375] minus A's, frame for frame
    grep -qF '<title>L0 frame 0: -0.15</title>' "$D/out/frame_mass_diff_B.svg"
    grep -qF '<title>L0 frame 4: 0.075</title>' "$D/out/frame_mass_diff_B.svg"
    grep -qF '<title>L0 frames 1–3: nan</title>' "$D/out/frame_mass_diff_B.svg"
    # a frame past the grids' 4096 (a hand-made or hostile fact) is left out of them, not a 100001-column figure
    python3 - "$D" "$BATS_TEST_DIRNAME" <<'PY'
import json, sys
sys.path.insert(0, sys.argv[2])
from st_write import write
meta = {"tap_mode": "probs", "frame_seq_length": "24", "heads": "2", "forwards": json.dumps(
    [{"block": 1, "step": 0, "start_frame": 3, "query_frames": 2, "key_frames": [0, 4, 100000]}])}
write(sys.argv[1] + "/C.safetensors", {"probs.L0.b1.s0": ([2, 2, 3], [.5, .25, .25, .7, .15, .15, .2, .4, .4, .2, .4, .4])}, meta)
PY
    run -0 sf-taps compare "$D/C.safetensors" "$D/C.safetensors" --labels c d -o "$D/out2"
    assert_equal "$(grep -c '<title>L0 frames\? [0-9–]*: ' "$D/out2/frame_mass_c.svg")" 3 # frames 0, 1–3, 4
    # an endless run's late forward (a rolling cache: the sink frames 0-2 and a window far on): the grid is those
    # 6 frames and one column for the 497 between them, not 503 columns
    python3 - "$D" "$BATS_TEST_DIRNAME" <<'PY'
import json, sys
sys.path.insert(0, sys.argv[2])
from st_write import write
meta = {"tap_mode": "probs", "frame_seq_length": "24", "heads": "1", "forwards": json.dumps(
    [{"block": 166, "step": 0, "start_frame": 501, "query_frames": 3, "key_frames": [0, 1, 2, 500, 501, 502]}])}
write(sys.argv[1] + "/E.safetensors", {"probs.L0.b166.s0": ([1, 3, 6], [.4, .1, .1, .2, .1, .1] * 3)}, meta)
PY
    run -0 sf-taps compare "$D/E.safetensors" "$D/E.safetensors" --labels e f -o "$D/out3"
    assert_equal "$(grep -c '<title>L0 frames\? [0-9–]*: ' "$D/out3/frame_mass_e.svg")" 7
    grep -qF '<title>L0 frame 0: 0.4</title>' "$D/out3/frame_mass_e.svg"
    grep -qF '<title>L0 frames 3–499: nan</title>' "$D/out3/frame_mass_e.svg"
    grep -qF '<title>L0 frame 500: 0.2</title>' "$D/out3/frame_mass_e.svg"
    # the report inlines both runs' grids and the difference: each hatch pattern has its own id in the page
    run -0 sf-taps report "$D/E.safetensors" "$D/E.safetensors" --labels e f -o "$D/e.html"
    assert_equal "$(grep -o '<pattern id="gap[0-9]*"' "$D/e.html" | sort -u | wc -l)" 3
    assert_equal "$(grep -o '<pattern id="gap[0-9]*"' "$D/e.html" | wc -l)" 3
    run -0 sf-taps heatmap "$T" -o "$D/h.svg"
    python3 -c 'import sys, xml.etree.ElementTree as E; E.parse(sys.argv[1])' "$D/h.svg"
    assert_equal "$(grep -c '<title>L[02] head [01]: ' "$D/h.svg")" 4
}

@test "report: one self-contained HTML page, every text escaped" {
    run -0 sf-taps report "$D/A.safetensors" "$D/B.safetensors" -o "$D/r.html"
    f="$D/r.html"
    ! grep -q '<script' "$f" || false              # the prompt's markup is text, not markup
    grep -qF '&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;fox&quot;' "$f"
    ! grep -Eq '(src|href)="' "$f" || false        # nothing to fetch: works offline
    assert_equal "$(grep -c '<svg ' "$f")" 8       # 2 per-layer curves, 2 frame-mass grids + 1 difference, 2 heatmaps, 1 difference
    grep -q 'block 1, step 0; key frames \[0,4,5\]' "$f"
    grep -qF 'checkpoint b.pt:generator_ema' "$f"
    python3 -c 'import sys, html.parser as h; p = h.HTMLParser(); p.feed(open(sys.argv[1]).read()); p.close()' "$f"
}

@test "report in headless Chromium: the DOM has the tables and figures, and a screenshot renders" {
    command -v chromium >/dev/null || skip "chromium is not installed (apt-get install chromium): report not rendered"
    run -0 sf-taps report "$D/A.safetensors" "$D/B.safetensors" -o "$D/r.html"
    run -0 --separate-stderr timeout 120 chromium --headless --no-sandbox --disable-gpu --dump-dom "file://$D/r.html"
    assert_equal "$(grep -o '<svg ' <<<"$output" | wc -l)" 8
    assert_equal "$(grep -o '<table' <<<"$output" | wc -l)" 3
    ! grep -q '<script' <<<"$output" || false
    run -0 --separate-stderr timeout 120 chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
        --window-size=1200,1600 --screenshot="$D/shot.png" "file://$D/r.html"
    # a PNG of the window's size
    python3 -c 'import struct, sys; d = open(sys.argv[1], "rb").read(24); assert d[:8] == b"\x89PNG\r\n\x1a\n"; assert struct.unpack(">II", d[16:24]) == (1200, 1600)' "$D/shot.png"
}

@test "tokens --frames in headless Chromium: the frame shows through where the mass is least, the peak's colour over it" {
    command -v chromium >/dev/null || skip "chromium is not installed (apt-get install chromium): maps not rendered"
    python3 - "$D" "$BATS_TEST_DIRNAME" <<'PY'
import sys
sys.path.insert(0, sys.argv[2])
from st_write import write
from png_write import write as png
write(sys.argv[1] + "/TA.safetensors", {"tokens.L0.b1.s0": ([2, 2, 4], [.4, .1, .1, 0, .2, .1, .1, 0, 0, 0, 0, .4, 0, 0, 0, .4])},
      {"tap_mode": "tokens", "token_frames": "1", "token_grid": "2x2", "frame_seq_length": "4", "heads": "2"})
png(sys.argv[1] + "/fa.png", 8, 8, (200, 0, 0))
PY
    run -0 sf-taps tokens "$D/TA.safetensors" --frames "$D/fa.png" -o "$D/over.svg"
    run -0 --separate-stderr timeout 120 chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
        --window-size=760,356 --screenshot="$D/over.png" "file://$D/over.svg"
    # the 2×2 map (means .15 .05 / .05 .2) is drawn at (20, 84), 120 px a token: the top-right token (least mass,
    # clear) shows the frame's red; the bottom-right (the peak: viridis' top at alpha 217/255) is ~(245, 197, 31)
    run -0 python3 - "$BATS_TEST_DIRNAME" "$D/over.png" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
from png_pixels import decode
w, h, px = decode(open(sys.argv[2], "rb").read())
at = lambda x, y: px[y * w + x][:3]
assert at(200, 144) == (200, 0, 0), at(200, 144)
a = 217 / 255
want = [round(a * v + (1 - a) * b) for v, b in zip((253, 231, 37), (200, 0, 0))]
assert all(abs(g - e) <= 2 for g, e in zip(at(200, 264), want)), (at(200, 264), want)
PY
}

@test "report --frames with a video folder: each run's maps over its frame, and its video as a thumbnail per latent frame" {
    # a run of 3 latent frames (the facts: num_frames, key slot 0 holds frame 0) and its 9-frame 480×320 video, one
    # colour a frame (red = 20·index): latent frames 0, 1, 2 are video frames 0, 1, 5; thumbnails 240 px (shown 120)
    python3 - "$D" "$BATS_TEST_DIRNAME" <<'PY'
import json, sys
sys.path.insert(0, sys.argv[2])
from st_write import write
from png_write import write as png
meta = {"tap_mode": "tokens", "token_frames": "1", "token_grid": "2x3", "frame_seq_length": "6", "heads": "1",
        "num_frames": "3", "forwards": json.dumps([{"block": 1, "step": 0, "key_frames": [0, 1, 2]}])}
for r in ("TA", "TB"):
    write("%s/%s.safetensors" % (sys.argv[1], r), {"tokens.L0.b1.s0": ([1, 1, 6], [.1, .2, .3, 0, 0, .4])}, meta)
for i in range(9): png("%s/video/frame_%05d.png" % (sys.argv[1], i), 480, 320, (20 * i, 0, 0))
PY
    run -0 sf-taps report "$D/A.safetensors" "$D/B.safetensors" --tokens "$D/TA.safetensors" "$D/TB.safetensors" \
        --frames "$D/video" "$D/video" -o "$D/v.html"
    run -0 python3 "$BATS_TEST_DIRNAME/png_pixels.py" "$D/v.html" --class thumb
    assert_equal "${#lines[@]}" 6 # 3 a run
    for i in 0 3; do
        for k in 0 1 2; do
            c=$(( (k == 0 ? 0 : 4 * k - 3) * 20 ))
            assert_equal "${lines[$((i + k))]}" "240 160 $(printf "$c,0,0 %.0s" $(seq 38400) | sed 's/ $//')"
        done
    done
    assert_equal "$(grep -o 'alt="latent frame [0-9]*, video frame [0-9]*"' "$D/v.html" | head -n 3 | tr '\n' '|')" \
        'alt="latent frame 0, video frame 0"|alt="latent frame 1, video frame 1"|alt="latent frame 2, video frame 5"|'
    # the map of run A over video frame 0 (key slot 0), 480×320 embedded as 480×320 (twice the 240×160 panel)
    run -0 python3 "$BATS_TEST_DIRNAME/png_pixels.py" "$D/v.html" 0 --class frame
    [[ "$output" == "480 320 0,0,0 "* ]] || false
    # 8 frames fit no rate for 3 latent frames: the Wan VAE's 4, said once although the folder is read six times
    rm "$D/video/frame_00008.png"
    run -0 --separate-stderr sf-taps report "$D/A.safetensors" "$D/B.safetensors" --tokens "$D/TA.safetensors" \
        "$D/TB.safetensors" --frames "$D/video" "$D/video" -o "$D/v.html"
    assert_equal "${stderr_lines[0]}" "sf-taps: warning: --frames $D/video: 8 frames are not 1 + r·2 for the run's 3 latent frames: taking the Wan VAE's r = 4 (latent frame f over video frame 4f − 3)"
    assert_equal "$(grep -c warning <<<"$stderr")" 1
}

@test "report --tokens: each run's sink-frame token maps, numbers worked out by hand; errors name the file" {
    # hand-made tokens files: a 2×2 token grid (4 tokens a frame), K = 1, 2 heads × 2 query frames, layers 0 and 3
    #   TA L0: head 0 rows [.4 .1 .1 .0] [.2 .1 .1 .0], head 1 rows [.0 .0 .0 .4] twice → mean .15 .05 .05 .2
    python3 - "$D" "$BATS_TEST_DIRNAME" <<'PY'
import sys
sys.path.insert(0, sys.argv[2])
from st_write import write
meta = {"tap_mode": "tokens", "token_frames": "1", "token_grid": "2x2", "frame_seq_length": "4", "heads": "2"}
flat = [.25] * 16
write(sys.argv[1] + "/TA.safetensors", {
    "tokens.L0.b1.s0": ([2, 2, 4], [.4, .1, .1, 0, .2, .1, .1, 0, 0, 0, 0, .4, 0, 0, 0, .4]),
    "tokens.L3.b1.s0": ([2, 2, 4], flat), "tokens.L0.b0.s0": ([2, 2, 4], flat)}, meta)
write(sys.argv[1] + "/TB.safetensors", {"tokens.L0.b1.s0": ([2, 2, 4], flat), "tokens.L3.b1.s0": ([2, 2, 4], flat)}, meta)
PY
    run -0 sf-taps report "$D/A.safetensors" "$D/B.safetensors" --tokens "$D/TA.safetensors" "$D/TB.safetensors" -o "$D/t.html"
    f="$D/t.html"
    assert_equal "$(grep -c '<svg ' "$f")" 11 # the 8 of the plain report + one token map per run + B − A
    grep -qF 'Where in the sink frames the mass lands' "$f"
    # run A, layer 0 (block 1, the latest): the head and query-frame means .15 .05 / .05 .2, row-major on the 2×2
    # grid, on viridis from the layer's least (.05: the bottom colour) to its most (.2: the top one)
    grep -qF 'mass 0.45 in all, 0.2 at the peak token' "$f"
    run -0 python3 "$BATS_TEST_DIRNAME/png_pixels.py" "$f"
    assert_equal "${#lines[@]}" 6 # (2 runs + B − A) × 2 layers
    [[ "${lines[0]}" == "2 2 "*" 68,1,84 68,1,84 253,231,37" ]] || false
    # B − A: TB is .25 everywhere, so layer 0's changes are .1 .2 / .2 .05 (sum .55): ±.2 is the full red, .05 a
    # quarter of the way from white; layer 3 did not change: white
    grep -qF 'B − A</h3>' "$f"
    grep -qF 'change +0.55 in all, 0.2 at most' "$f"
    grep -qF 'change +0 in all, 0 at most' "$f"
    [[ "${lines[4]}" == "2 2 "*" 178,24,43 178,24,43 230,191,196" ]] || false
    assert_equal "${lines[5]}" "2 2 247,247,247 247,247,247 247,247,247 247,247,247"
    python3 -c 'import sys, html.parser as h; p = h.HTMLParser(); p.feed(open(sys.argv[1]).read()); p.close()' "$f"
    # --frames, one per tokens file: each run's maps over its own picture, whose ids do not clash in the one page;
    # the differences are drawn without one
    python3 "$BATS_TEST_DIRNAME/png_write.py" "$D/fa.png" 8 8 200,0,0 "$D/fb.png" 8 8 0,0,200
    run -0 sf-taps report "$D/A.safetensors" "$D/B.safetensors" --tokens "$D/TA.safetensors" "$D/TB.safetensors" \
        --frames "$D/fa.png" "$D/fb.png" -o "$D/tf.html"
    assert_equal "$(grep -o 'id="run[01]-bg-1"\|href="#run[01]-bg-1"' "$D/tf.html" | sort | uniq -c | tr -s ' ')" \
        "$(printf ' 2 href="#run0-bg-1"\n 2 href="#run1-bg-1"\n 1 id="run0-bg-1"\n 1 id="run1-bg-1"')"
    run -0 python3 "$BATS_TEST_DIRNAME/png_pixels.py" "$D/tf.html" --class frame
    assert_equal "${lines[*]}" "8 8 $(printf '200,0,0 %.0s' $(seq 64))8 8 $(printf '0,0,200 %.0s' $(seq 63))0,0,200"
    run -0 python3 "$BATS_TEST_DIRNAME/png_pixels.py" "$D/tf.html"
    [[ "${lines[0]}" == "2 2 "*" 68,1,84,0 68,1,84,0 253,231,37,217" ]] || false # over the frame: alpha by mass
    [[ "${lines[4]}" == "2 2 "*" 178,24,43 178,24,43 230,191,196" ]] || false   # B − A as before
    # these files say no forward, so no key slot's frame: a folder cannot be read; one per tokens file
    run -2 --separate-stderr sf-taps report "$D/A.safetensors" "$D/B.safetensors" --tokens "$D/TA.safetensors" "$D/TB.safetensors" \
        --frames "$D" "$D/fb.png" -o "$D/t2.html"
    assert_equal "$stderr" "sf-taps: error: $D/TA.safetensors: --frames $D: the tokens file does not say which frame a key slot holds (no forwards facts): give one image file instead of a folder"
    run -2 --separate-stderr sf-taps report "$D/A.safetensors" "$D/B.safetensors" --tokens "$D/TA.safetensors" "$D/TB.safetensors" \
        --frames "$D/fa.png" -o "$D/t2.html"
    [[ "$stderr" == *"--frames: give one per --tokens file (report)"* ]] || false
    # one file per run, tokens only for report; a file that is not a tokens file is named, nothing written
    run -2 --separate-stderr sf-taps report "$D/A.safetensors" "$D/B.safetensors" --tokens "$D/TA.safetensors" -o "$D/t2.html"
    assert_equal "$stderr" "sf-taps: error: --tokens: give one tokens file per run (usage: sf-taps $(sf-taps --help 2>&1 | sed -n 's/^usage: sf-taps //p' | head -n 1))"
    run -2 --separate-stderr sf-taps compare "$D/A.safetensors" "$D/B.safetensors" --tokens "$D/TA.safetensors" "$D/TB.safetensors"
    [[ "$stderr" == *"--tokens applies to report only"* ]] || false
    run -1 --separate-stderr sf-taps report "$D/A.safetensors" "$D/B.safetensors" --tokens "$D/TA.safetensors" "$D/A.safetensors" -o "$D/t2.html"
    assert_equal "$stderr" "sf-taps: error: $D/A.safetensors: no tokens.L* taps and no full logits (of the layers asked): tokens needs sf-denoise --tap-mode tokens, or logits (a figure-4 .pt, taps.L*)"
    [ ! -e "$D/t2.html" ]
}

@test "compare / report errors: one line, exit codes, nothing written" {
    run -2 --separate-stderr sf-taps compare "$D/A.safetensors"
    assert_equal "${#stderr_lines[@]}" 1
    run -2 --separate-stderr sf-taps report "$D/A.safetensors"
    assert_equal "${#stderr_lines[@]}" 1
    run -2 --separate-stderr sf-taps compare "$D/A.safetensors" "$D/B.safetensors" --labels x
    run -1 --separate-stderr sf-taps report "$D/A.safetensors" "$D/missing.safetensors" -o "$D/r2.html"
    assert_equal "${#stderr_lines[@]}" 1
    [ ! -e "$D/r2.html" ]
    run -1 --separate-stderr sf-taps report "$G/expect/dit_pipeline_base.safetensors" -o "$D/r3.html"
    assert_equal "${#stderr_lines[@]}" 1
    [ ! -e "$D/r3.html" ]
}

@test "compare / heatmap / report on frame-level taps: the error says they need probs or logits" {
    python3 - "$D/F.safetensors" "$BATS_TEST_DIRNAME" <<'PY'
import sys
sys.path.insert(0, sys.argv[2])
from st_write import write
write(sys.argv[1], {"frames.L0.b1.s0": ([2, 2, 3], [.5, .25, .25] * 4)}, {"tap_mode": "frames", "frame_seq_length": "24"})
PY
    run -0 sf-taps summary "$D/F.safetensors" # a tap file sf-taps reads
    for cmd in "compare $D/A.safetensors $D/F.safetensors" "heatmap $D/F.safetensors -o $D/h.svg" \
        "report $D/F.safetensors -o $D/f.html"; do
        run -1 --separate-stderr sf-taps $cmd
        assert_equal "${#stderr_lines[@]}" 1
        assert_equal "${stderr_lines[0]}" "sf-taps: error: $D/F.safetensors: no probs.L*, taps.L* or fig4.L* (figure-4) taps (the file has frames.L* taps); compare, heatmap and report need softmax masses: probs taps (sf-denoise --tap-mode probs) or logits (--tap-mode logits)"
    done
    [ ! -e "$D/h.svg" ]
    [ ! -e "$D/f.html" ]
}
