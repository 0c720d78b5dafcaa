#!/usr/bin/env bats
# sf-taps: summary / table (CSV, JSON) / plot (SVG) from the golden taps file and from the figure-4,
# streaming and full-attention .pt dicts made by sf-denoise on the tiny model; frame means against the notebook values in the golden
# (fig4.L<l>.frame_attention); filters; one-line errors with no output left behind.

bats_require_minimum_version 1.5.0
load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'

setup() {
    G="${SF_GOLDEN:-$BATS_TEST_DIRNAME/../golden}"
    T="$G/expect/taps_base.safetensors"
    P="$G/expect/dit_pipeline_base.safetensors"
}

# max |a − b| over two whitespace-separated number lists
maxdiff() {
    python3 -c 'import sys
a=[float(x) for x in sys.argv[1].split()]; b=[float(x) for x in sys.argv[2].split()]
assert len(a)==len(b) and a, (len(a), len(b))
print(max(abs(x-y) for x,y in zip(a,b)))' "$1" "$2"
}

golden_values() { # NAME → its values, one line
    sf-tensor cat "$T" "$1" | tail -n +2 | tr '\n' ' '
}

@test "summary: per-layer range, head-mean summary and per-head rows" {
    run sf-taps summary "$T"
    assert_success
    assert_output --partial "2 sources"
    assert_output --partial "== L0  layer 0  (fig4.L0.attn_logits f16 [1, 2, 72, 216])"
    assert_output --partial "query tokens 72, frame_seq_length 24, key frames 9, heads 2"
    assert_output --partial "logits range: [-4.4219, 4.5508]"
    assert_output --partial "head mean: first 0.1852  middle 0.0612  last 0.0242  first/middle 3.03x  first-last 0.1610"
    # H0 of layer 0: first / last frame = golden fig4.L0.frame_attention[0, 0] / [0, 8]
    assert_line --regexp '^H0 +-0\.0992 +-0\.1927 +-0\.01[23][0-9] +220\.9 +0\.903[0-9]$'
    assert_equal "$(grep -c '^H[01] ' <<<"$output")" 4
}

@test "table csv: F[layer, head, key_frame] rows equal the notebook's frame_attention" {
    run sf-taps table "$T" -o "$BATS_TEST_TMPDIR/t.csv"
    assert_success
    assert_equal "$(head -1 "$BATS_TEST_TMPDIR/t.csv")" "source,layer,block,step,head,key_frame,logit_mean,softmax_mean"
    assert_equal "$(wc -l <"$BATS_TEST_TMPDIR/t.csv")" 37 # 1 + 2 layers × 2 heads × 9 frames
    for l in 0 2; do
        got=$(awk -F, -v l=$l '$2==l {print $7}' "$BATS_TEST_TMPDIR/t.csv" | tr '\n' ' ')
        d=$(maxdiff "$got" "$(golden_values fig4.L$l.frame_attention)")
        python3 -c "import sys; sys.exit(0 if $d <= 1e-6 else 1)"
        d=$(maxdiff "$got" "$(golden_values fig4.L$l.frame_attention_exact)")
        python3 -c "import sys; sys.exit(0 if $d <= 1e-3 else 1)"
    done
    # softmax means of one (layer, head) sum to 1/frame_seq_length per key token → 9 frames × 24 = 1
    s=$(awk -F, '$2==2 && $5==1 {s+=$8*24} END {printf "%.6f", s}' "$BATS_TEST_TMPDIR/t.csv")
    assert_equal "$s" "1.000000"
}

@test "table json: structure, shapes and summary" {
    run sf-taps table "$T" --format json --layers 2
    assert_success
    python3 -c '
import json, sys
d = json.loads(sys.argv[1])
s = d["sources"]
assert len(s) == 1 and s[0]["layer"] == 2 and s[0]["label"] == "L2", s
x = s[0]
assert x["frame_seq_length"] == 24 and x["num_key_frames"] == 9 and x["heads"] == [0, 1]
assert len(x["frame_attention"]) == 2 and all(len(r) == 9 for r in x["frame_attention"])
assert len(x["softmax_frame_mean"]) == 2 and len(x["head_mean"]) == 9 and len(x["sink_ratio"]) == 2
m = x["head_mean"]
assert abs(x["summary"]["first"] - m[0]) < 1e-12 and abs(x["summary"]["last"] - m[-1]) < 1e-12
assert abs(x["summary"]["middle"] - sum(m[1:-1]) / 7) < 1e-9
F = x["frame_attention"]
assert abs(x["delta"][1] - (F[1][0] - sum(F[1][1:-1]) / 7)) < 1e-9
' "$output"
}

@test "figure-4 .pt from sf-denoise gives the golden table" {
    run sf-denoise --model-dir "$G/model" --num_frames 9 --height 64 --width 96 --progress none --threads 2 \
        --prompt-embeds "$P:context.prompt_embeds" --noise "$P" --layer_indices 0 2 \
        --output_path "$BATS_TEST_TMPDIR/fig4.pt"
    assert_success
    run sf-taps table "$BATS_TEST_TMPDIR/fig4.pt"
    assert_success
    assert_line --index 1 --regexp '^L0,0,,,0,0,'
    got=$(awk -F, '$2==2 {print $7}' <<<"$output" | tr '\n' ' ')
    d=$(maxdiff "$got" "$(golden_values fig4.L2.frame_attention)")
    python3 -c "import sys; sys.exit(0 if $d <= 1e-3 else 1)"
    run sf-taps summary "$BATS_TEST_TMPDIR/fig4.pt" --heads 1
    assert_success
    assert_output --partial "attention_weights/1/attn_logits"
    refute_line --regexp '^H0 '
}

@test "streaming .pt from sf-denoise --tap-mode frames: the golden last-block curve" {
    run sf-denoise --model-dir "$G/model" --num_frames 9 --height 64 --width 96 --progress none --threads 2 \
        --prompt-embeds "$P:context.prompt_embeds" --noise "$P" --layer_indices 2 --tap-mode frames \
        --output_path "$BATS_TEST_TMPDIR/stream.pt"
    assert_success
    run sf-taps table "$BATS_TEST_TMPDIR/stream.pt"
    assert_success
    assert_line --index 1 --regexp '^stream\.L2,2,,,0,0,-?[0-9.e-]+,$' # no softmax for frame-level input
    got=$(awk -F, 'NR > 1 {print $7}' <<<"$output" | tr '\n' ' ')
    d=$(maxdiff "$got" "$(golden_values stream.L2.last_block_frame_attention)")
    python3 -c "import sys; sys.exit(0 if $d <= 1e-3 else 1)"
    run sf-taps summary "$BATS_TEST_TMPDIR/stream.pt"
    assert_output --partial "frame-level curve (last block"
    assert_line --regexp '^H1 .* nan$'
}

@test "full_attention .pt (sf-denoise --pt-layout full_attention): each layer's last-block curve, as the streaming .pt's" {
    run -0 sf-denoise --model-dir "$G/model" --num_frames 9 --height 64 --width 96 --progress none --threads 2 \
        --prompt-embeds "$P:context.prompt_embeds" --noise "$P" --layer_indices 0 2 --tap-mode frames \
        --pt-layout full_attention --output_path "$BATS_TEST_TMPDIR/full.pt"
    run -0 sf-taps table "$BATS_TEST_TMPDIR/full.pt"
    assert_line --index 1 --regexp '^stream\.L0,0,,,0,0,-?[0-9.e-]+,$'
    assert_equal "$(grep -c '^stream\.L0,' <<<"$output")" 18 # 2 heads x 9 key frames
    got=$(awk -F, '$2==2 {print $7}' <<<"$output" | tr '\n' ' ')
    d=$(maxdiff "$got" "$(golden_values stream.L2.last_block_frame_attention)")
    python3 -c "import sys; sys.exit(0 if $d <= 1e-3 else 1)"
    run -0 sf-taps summary "$BATS_TEST_TMPDIR/full.pt"
    assert_output --partial "== stream.L2  layer 2  (attention_weights/1/full_frame_attention f16 [2, 9, 9])"
}

@test "probs sources (sf-denoise --tap-mode probs): labelled as attention mass in table, summary, json and plot" {
    O="$BATS_TEST_TMPDIR/p.safetensors"
    run -0 sf-denoise --model-dir "$G/model" --num_frames 9 --height 64 --width 96 --progress none --threads 2 \
        --prompt-embeds "$P:context.prompt_embeds" --noise "$P" --layer_indices 0 2 --tap-mode probs --output_path "$O"
    run -0 sf-taps table "$O" -o "$BATS_TEST_TMPDIR/p.csv"
    assert_equal "$(head -1 "$BATS_TEST_TMPDIR/p.csv")" "source,layer,block,step,head,key_frame,mass_mean,softmax_mean"
    # the column is a mass: over the key frames of one (source, head) it sums to 1
    run -0 awk -F, 'NR > 1 {s[$1 " " $5] += $7} END {for (k in s) if (s[k] < 0.99999 || s[k] > 1.00001) print k, s[k]}' \
        "$BATS_TEST_TMPDIR/p.csv"
    assert_output ""
    run -0 sf-taps summary "$O" --layers 2
    assert_output --partial "== probs.L2.b2.s0  layer 2  block 2  step 0"
    assert_line "attention mass (softmax mass of each key frame, its keys summed; a query row sums to 1): 3 query frame(s) averaged, frame_seq_length 24, key frames 9, heads 2"
    assert_line --regexp '^mass range: \[0\.[0-9]{4}, 0\.[0-9]{4}\]$'
    refute_output --partial "frame-level curve"
    refute_output --partial "values range"
    run -0 sf-taps table "$O" --format json --layers 2
    python3 -c 'import json, sys
s = json.loads(sys.argv[1])["sources"]
assert [x["kind"] for x in s] == ["probs"] * 3 and all(x["frame_seq_length"] == 24 for x in s), s' "$output"
    run -0 sf-taps plot "$O" --layers 2 -o "$BATS_TEST_TMPDIR/pfig"
    python3 - "$BATS_TEST_TMPDIR/pfig" <<'PY'
import glob, sys, xml.etree.ElementTree as E
files = sorted(glob.glob(sys.argv[1] + "/*.svg"))
assert len(files) == 3 * 2 + 2, files  # heads + heatmap per forward, layers, sink_ratio
for f in files:
    root = E.parse(f).getroot()
    text = " ".join(t.text or "" for t in root.iter())
    assert "logit" not in text.lower(), f
    labels = [t.text for t in root.iter() if t.get("class") == "axis-label"]
    if "/heads_" in f or "/heatmap_" in f or f.endswith("/layers.svg"):
        assert "Attention mass" in labels, (f, labels)
    if "/heads_" in f:
        assert "per-head attention mass" in root.find("{http://www.w3.org/2000/svg}title").text, f
PY
}

@test "plot: well-formed SVG files, one heatmap cell per head and frame" {
    run sf-taps plot "$T" -o "$BATS_TEST_TMPDIR/fig"
    assert_success
    for f in heads_L0 heads_L2 heatmap_L0 heatmap_L2 layers sink_ratio; do
        [ -s "$BATS_TEST_TMPDIR/fig/$f.svg" ]
        python3 -c 'import sys, xml.etree.ElementTree as E; E.parse(sys.argv[1])' "$BATS_TEST_TMPDIR/fig/$f.svg"
        if command -v xmllint >/dev/null; then xmllint --noout "$BATS_TEST_TMPDIR/fig/$f.svg"; fi
    done
    assert_equal "$(grep -c '<title>H[01] frame' "$BATS_TEST_TMPDIR/fig/heatmap_L0.svg")" 18
    assert_equal "$(grep -c '<title>frame ' "$BATS_TEST_TMPDIR/fig/heads_L2.svg")" 18
    assert_equal "$(grep -c '<polygon' "$BATS_TEST_TMPDIR/fig/layers.svg")" 2 # ±std bands
    assert_equal "$(find "$BATS_TEST_TMPDIR/fig" -name '*.tmp.*' | wc -l)" 0
    # the same input gives the same bytes
    run sf-taps plot "$T" -o "$BATS_TEST_TMPDIR/fig2"
    assert_success
    diff -r "$BATS_TEST_TMPDIR/fig" "$BATS_TEST_TMPDIR/fig2"
}

@test "plot: round y ticks enclosing the data, zero line iff the range spans 0, head-grid labels" {
    run sf-taps plot "$T" -o "$BATS_TEST_TMPDIR/fig"
    assert_success
    run sf-taps table "$T" -o "$BATS_TEST_TMPDIR/t.csv"
    assert_success
    python3 - "$BATS_TEST_TMPDIR/fig" "$BATS_TEST_TMPDIR/t.csv" <<'PY'
import csv, math, re, sys, xml.etree.ElementTree as E
S = "{http://www.w3.org/2000/svg}"
SUP = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻", "0123456789-")
def value(lab):  # "−0.2", "0.5×10⁻⁶" → float
    lab = lab.replace("−", "-")
    m, _, e = lab.partition("×10")
    return float(m) * 10 ** int(e.translate(SUP)) if e else float(m)
def cls(el, c): return [t for t in el.iter() if t.get("class") == c]
def ticks(el):
    v = [value(t.text) for t in cls(el, "y-tick")]
    assert len(v) >= 2 and v == sorted(v), v
    step = v[1] - v[0]
    k = math.floor(math.log10(step) + 1e-9)
    assert min(abs(step / 10 ** k - m) for m in (1, 2, 5)) < 1e-9, ("not a round step", v)
    assert all(abs((b - a) - step) < 1e-9 * step for a, b in zip(v, v[1:])), v
    assert all(abs(x / step - round(x / step)) < 1e-6 for x in v), ("ticks off the step grid", v)
    return v
F = {}
for r in csv.DictReader(open(sys.argv[2])):
    F.setdefault((r["source"], int(r["head"])), []).append(float(r["logit_mean"]))
for src in ("L0", "L2"):
    root = E.parse(f"{sys.argv[1]}/heads_{src}.svg").getroot()
    panels = [g for g in root.iter(S + "g") if g.get("class") == "panel"]
    assert len(panels) == 2, len(panels)
    for h, p in enumerate(panels):
        assert [t.text.split(" (")[0] for t in cls(p, "panel-title")] == [f"head {h}"]
        lo, hi = min(F[src, h] + [0]), max(F[src, h] + [0])  # bars from 0
        v = ticks(p)
        assert v[0] <= lo and v[-1] >= hi, (src, h, v, lo, hi)
        assert v[1] > lo and v[-2] < hi, ("a tick too many", src, h, v, lo, hi)
        zero = cls(p, "zero-line")
        assert len(zero) == (lo < 0 < hi), (src, h, lo, hi, len(zero))
        # one row of 2 panels: both are bottom panels, the first is the left column
        assert [t.text for t in cls(p, "axis-label")] == ["Key frame"] + (["Mean attention logit"] if h == 0 else [])
for f in ("layers", "sink_ratio"):
    root = E.parse(f"{sys.argv[1]}/{f}.svg").getroot()
    v = ticks(root)
    assert len(cls(root, "zero-line")) == (v[0] < 0 < v[-1]), f
    assert len(cls(root, "axis-label")) == 2
PY
}

@test "--set taps / stream / frames select the other tensors of the file" {
    run sf-taps table "$T" --set taps --layers 0
    assert_success
    assert_equal "$(grep -c "^L0\.b[0-2]\.s[0-4],0," <<<"$output")" 180 # 5 steps × 2 heads × (3 + 6 + 9) key frames
    run sf-taps summary "$T" --set stream
    assert_success
    assert_output --partial "== stream.L0"
    assert_output --partial "3 query frame row(s) averaged, key frames 9"
    run sf-taps summary "$T" --set frames --layers 2
    assert_success
    assert_output --partial "== frames.L2.b2.s4"
}

@test "bad input: one-line errors, exit 1 (2 for flags), no output left behind" {
    run --separate-stderr sf-taps summary "$BATS_TEST_TMPDIR/missing.pt"
    assert_failure 1
    [ "$(wc -l <<<"$stderr")" -eq 1 ]
    run --separate-stderr sf-taps table "$G/expect/scheduler.safetensors" -o "$BATS_TEST_TMPDIR/x.csv"
    assert_failure 1
    [[ "$stderr" == *"no attention taps"* ]]
    [ ! -e "$BATS_TEST_TMPDIR/x.csv" ]
    head -c 100000 "$T" >"$BATS_TEST_TMPDIR/trunc.safetensors"
    run --separate-stderr sf-taps table "$BATS_TEST_TMPDIR/trunc.safetensors" -o "$BATS_TEST_TMPDIR/x.csv"
    assert_failure 1
    [ "$(wc -l <<<"$stderr")" -eq 1 ]
    [ ! -e "$BATS_TEST_TMPDIR/x.csv" ]
    run --separate-stderr sf-taps table "$T" --frame-seq-length 25
    assert_failure 1
    [[ "$stderr" == *"not a multiple of frame_seq_length"* ]]
    run --separate-stderr sf-taps summary "$T" --layers 7
    assert_failure 1
    run --separate-stderr sf-taps summary "$T" --heads 2
    assert_failure 2
    [[ "$stderr" == *"head 2 out of range"* ]]
    run --separate-stderr sf-taps table "$T" --format xml
    assert_failure 2
    run --separate-stderr sf-taps plot "$T"
    assert_failure 2
    run --separate-stderr sf-taps frobnicate "$T"
    assert_failure 2
    run --separate-stderr sf-taps summary "$T" --bogus
    assert_failure 2
}

@test "plot -o / compare -o: missing parent folders are made (mkdir -p); a file in the way is one line" {
    D="$BATS_TEST_TMPDIR"
    run -0 sf-taps plot "$T" -o "$D/no/such/deep/"
    [ -s "$D/no/such/deep/layers.svg" ]
    run -0 sf-taps compare "$T" "$T" -o "$D/cmp/a/b"
    [ -s "$D/cmp/a/b/compare.csv" ]
    touch "$D/file"
    run -1 --separate-stderr sf-taps plot "$T" -o "$D/file/x"
    assert_equal "$stderr" "sf-taps: error: -o $D/file/x: $D/file is not a folder"
    run -1 --separate-stderr sf-taps plot "$T" -o "$D/file"
    assert_equal "$stderr" "sf-taps: error: -o $D/file: $D/file is not a folder"
}

@test "--set of a kind the file does not have: the error says which kinds it has" {
    run -1 --separate-stderr sf-taps summary "$T" --set probs
    assert_equal "$stderr" "sf-taps: error: $T: no probs.L* taps (the file has taps.L*, fig4.L* (figure-4), frames.L* or stream.L* (streaming) taps)"
}

@test "tokens (sf-denoise --tap-mode tokens): each sink token's mass, mean over heads and query frames, by row and column; SVG panels; errors" {
    O="$BATS_TEST_TMPDIR/tok.safetensors"
    run -0 sf-denoise --model-dir "$G/model" --num_frames 9 --height 64 --width 96 --progress none --threads 2 \
        --prompt-embeds "$P:context.prompt_embeds" --noise "$P" --layer_indices 0 2 --tap-mode tokens \
        --tap-token-frames 2 --tap-select all --output_path "$O"
    # CSV: the latest block's first step of each layer (block 2, step 0), 2 key slots × 24 tokens of a 4×6 grid
    run -0 sf-taps tokens "$O"
    assert_line --index 0 "layer,head,block,step,key_slot,key_frame,row,col,mass"
    assert_equal "${#lines[@]}" $((1 + 2 * 2 * 24))
    printf '%s\n' "${lines[@]}" >"$BATS_TEST_TMPDIR/all.csv"
    run -0 sf-taps tokens "$O" --layers 2 --heads 1 --forward 1:4
    printf '%s\n' "${lines[@]}" >"$BATS_TEST_TMPDIR/one.csv"
    # the same numbers computed here from the tensors themselves
    run -0 python3 - "$O" "$BATS_TEST_TMPDIR/all.csv" "$BATS_TEST_TMPDIR/one.csv" <<'PY'
import csv, json, struct, sys
f = open(sys.argv[1], "rb"); n = struct.unpack("<Q", f.read(8))[0]; h = json.loads(f.read(n)); base = 8 + n
def get(name):
    e = h[name]; a, b = e["data_offsets"]; f.seek(base + a)
    return e["shape"], struct.unpack("<%df" % ((b - a) // 4), f.read(b - a))
def expect(layer, blk, step, heads):
    (H, QF, NG), v = get("tokens.L%d.b%d.s%d" % (layer, blk, step))
    hs = heads if heads else range(H)
    return [sum(v[(hh * QF + q) * NG + j] for hh in hs for q in range(QF)) / (len(hs) * QF) for j in range(NG)]
for path, picks in ((sys.argv[2], [(0, 2, 0, None), (2, 2, 0, None)]), (sys.argv[3], [(2, 1, 4, [1])])):
    rows = list(csv.DictReader(open(path)))
    assert len(rows) == 48 * len(picks), len(rows)
    for i, (layer, blk, step, heads) in enumerate(picks):
        want = expect(layer, blk, step, heads)
        for j, r in enumerate(rows[48 * i:48 * (i + 1)]):
            assert (int(r["layer"]), int(r["block"]), int(r["step"])) == (layer, blk, step), r
            assert (int(r["key_slot"]), int(r["row"]), int(r["col"])) == (j // 24, j % 24 // 6, j % 6), r
            assert int(r["key_frame"]) == j // 24, r  # global attention: slot k holds frame k (the facts' forwards)
            assert abs(float(r["mass"]) - want[j]) < 1e-8, (r, want[j])
PY
    # --per-head: a map per head (2 here), whose mean over the heads is the default map
    run -0 sf-taps tokens "$O" --per-head
    printf '%s\n' "${lines[@]}" >"$BATS_TEST_TMPDIR/heads.csv"
    run -0 python3 - "$BATS_TEST_TMPDIR/all.csv" "$BATS_TEST_TMPDIR/heads.csv" <<'PY'
import csv, sys
a, b = (list(csv.DictReader(open(p))) for p in sys.argv[1:3])
assert len(b) == 2 * len(a) == 192 and {r["head"] for r in a} == {"-1"} and {r["head"] for r in b} == {"0", "1"}
key = lambda r: (r["layer"], r["key_slot"], r["row"], r["col"])
per = {}
for r in b: per.setdefault(key(r), []).append(float(r["mass"]))
for r in a: assert abs(sum(per[key(r)]) / 2 - float(r["mass"])) < 1e-9, r
PY
    # SVG: one panel per layer and key slot, a 6×4 PNG (a pixel a token) on viridis over the layer's range: layer 0's
    # maps (panels 0 and 1) have the top colour at the CSV's largest mass of that layer, the bottom one at its smallest
    run -0 sf-taps tokens "$O" -o "$BATS_TEST_TMPDIR/tok.svg"
    run -0 python3 -c 'import sys, xml.etree.ElementTree as E
r = E.parse(sys.argv[1]).getroot(); ns = "{http://www.w3.org/2000/svg}"
panels = [t.text for t in r.iter(ns + "text") if t.get("class") == "panel"]
print(len(list(r.iter(ns + "image"))), len(panels), panels[0])' "$BATS_TEST_TMPDIR/tok.svg"
    assert_output "4 4 layer 0, key slot 0 = frame 0 (block 2, step 0)"
    run -0 python3 - "$BATS_TEST_DIRNAME/png_pixels.py" "$BATS_TEST_TMPDIR/tok.svg" "$BATS_TEST_TMPDIR/all.csv" <<'PY'
import csv, subprocess, sys
maps = [l.split() for l in subprocess.run(["python3"] + sys.argv[1:3], capture_output=True, text=True, check=True).stdout.splitlines()]
assert len(maps) == 4 and all(m[:2] == ["6", "4"] for m in maps), [m[:2] for m in maps]
rows = [r for r in csv.DictReader(open(sys.argv[3])) if r["layer"] == "0"]
v = [float(r["mass"]) for r in rows]
top, bottom = v.index(max(v)), v.index(min(v))   # over both key slots (48 tokens): panel top // 24, pixel top % 24
assert maps[top // 24][2 + top % 24] == "253,231,37", maps[top // 24][2 + top % 24]
assert maps[bottom // 24][2 + bottom % 24] == "68,1,84", maps[bottom // 24][2 + bottom % 24]
PY
    # the same maps from full logits, as a figure-4 .pt of the reference holds them: the golden f16 logits of the same
    # run (taps.L0/L2.b*.s*, no token grid recorded: given), computed in sf-taps, = the tokens taps within f16 rounding
    run -0 sf-taps tokens "$T" --token-grid 4x6 --token-frames 2
    printf '%s\n' "${lines[@]}" >"$BATS_TEST_TMPDIR/from_logits.csv"
    # (rows summed in fixed parts on the OpenMP threads: the same bytes on 1 thread or 3)
    assert_equal "$(OMP_NUM_THREADS=1 sf-taps tokens "$T" --token-grid 4x6 --token-frames 2 | md5sum)" \
        "$(OMP_NUM_THREADS=3 sf-taps tokens "$T" --token-grid 4x6 --token-frames 2 | md5sum)"
    run -0 python3 - "$BATS_TEST_TMPDIR/all.csv" "$BATS_TEST_TMPDIR/from_logits.csv" <<'PY'
import csv, sys
a, b = (list(csv.DictReader(open(p))) for p in sys.argv[1:3])
assert len(a) == len(b) == 96, (len(a), len(b))
key = ("layer", "block", "step", "key_slot", "row", "col")
worst = 0
for x, y in zip(a, b):
    assert [x[k] for k in key] == [y[k] for k in key], (x, y)
    worst = max(worst, abs(float(x["mass"]) - float(y["mass"])))
assert worst < 1e-4, worst
print(worst)
PY
    # and from a figure-4 .pt (sf-denoise's default logits taps, the reference's dict): its forward is block 2, step 0
    run -0 sf-denoise --model-dir "$G/model" --num_frames 9 --height 64 --width 96 --progress none --threads 2 \
        --prompt-embeds "$P:context.prompt_embeds" --noise "$P" --layer_indices 0 2 --output_path "$BATS_TEST_TMPDIR/fig4.pt"
    run -0 sf-taps tokens "$BATS_TEST_TMPDIR/fig4.pt" --token-grid 4x6
    printf '%s\n' "${lines[@]}" >"$BATS_TEST_TMPDIR/fig4.csv"
    run -0 python3 - "$BATS_TEST_TMPDIR/all.csv" "$BATS_TEST_TMPDIR/fig4.csv" <<'PY'
import csv, sys
a = [r for r in csv.DictReader(open(sys.argv[1])) if r["key_slot"] == "0"]
b = list(csv.DictReader(open(sys.argv[2])))
assert len(a) == len(b) == 48, (len(a), len(b))
for x, y in zip(a, b):
    assert (x["layer"], x["row"], x["col"]) == (y["layer"], y["row"], y["col"]) and y["block"] == "-1", (x, y)
    assert abs(float(x["mass"]) - float(y["mass"])) < 1e-4, (x, y)
PY
    # errors: logits without their grid (24 tokens a frame); a forward it does not have; --set does not apply
    run --separate-stderr sf-taps tokens "$T"
    assert_failure 2
    assert_equal "$stderr" "sf-taps: error: layer 0: 24 tokens a frame: give their grid, --token-grid HxW with H·W = 24"
    run --separate-stderr sf-taps tokens "$O" --token-grid 6x4
    assert_failure 2
    assert_equal "$stderr" "sf-taps: error: --token-grid 6x4: the file says 4x6"
    run --separate-stderr sf-taps summary "$O" --token-frames 2
    assert_failure 2
    run --separate-stderr sf-taps tokens "$O" --forward 5:0
    assert_failure
    assert_equal "$stderr" "sf-taps: error: no tokens.L*.b5.s0 tensor of the layers asked"
    run --separate-stderr sf-taps tokens "$O" --heads 7
    assert_failure
    [[ "$stderr" == *"--heads: head 7 out of range (the file has 2 heads)"* ]] || false
    run --separate-stderr sf-taps tokens "$O" --set probs
    assert_failure 2
    # the per-frame commands point a tokens file to tokens
    run --separate-stderr sf-taps summary "$O"
    assert_failure 1
    assert_equal "$stderr" "sf-taps: error: $O: tokens.L* taps (the sink frames' per-token mass) are read by sf-taps tokens FILE, and by report --tokens"
}

@test "tokens --frames: the maps over the video (sf-decode's PNG folder: latent frame f over video frame r(f-1)+1, r from the count), alpha by mass; errors" {
    O="$BATS_TEST_TMPDIR/tok3.safetensors" V="$BATS_TEST_TMPDIR/video" S="$BATS_TEST_TMPDIR/over.svg"
    run -0 sf-denoise --model-dir "$G/model" --num_frames 9 --height 64 --width 96 --progress none --threads 2 \
        --prompt-embeds "$P:context.prompt_embeds" --noise "$P" --layer_indices 0 2 --tap-mode tokens \
        --tap-token-frames 3 --tap-select all --output_path "$O"
    # a 96×64 video of one colour a frame (red = 7·index), as sf-decode writes it (DIR/frame_00000.png ...); a square one
    run -0 python3 "$BATS_TEST_DIRNAME/png_write.py" "$BATS_TEST_TMPDIR/square.png" 50 50 1,2,3 \
        $(for i in $(seq 0 32); do printf '%s/frame_%05d.png 96 64 %d,100,200 ' "$V" "$i" $((7 * i)); done)
    run -0 sf-taps tokens "$O" -o "$S" --frames "$V"
    sf-taps tokens "$O" >"$BATS_TEST_TMPDIR/tok3.csv"
    # key slots 0, 1, 2 hold latent frames 0, 1, 2: video frames 0, 1 and 5, each embedded once (the frame is smaller
    # than twice the panel: as it is) and used by both layers' panels, each under a map whose opacity is its mass
    run -0 python3 - "$BATS_TEST_DIRNAME/png_pixels.py" "$S" "$BATS_TEST_TMPDIR/tok3.csv" <<'PY'
import csv, subprocess, sys, xml.etree.ElementTree as E
pp = lambda *a: [l.split() for l in subprocess.run(["python3", sys.argv[1], sys.argv[2]] + list(a), capture_output=True,
                                                   text=True, check=True).stdout.splitlines()]
r = E.parse(sys.argv[2]).getroot(); ns = "{http://www.w3.org/2000/svg}"
frames = [i.get("id") for i in r.iter(ns + "image") if i.get("class") == "frame"]
assert frames == ["tok-bg0", "tok-bg1", "tok-bg5"], frames
uses = [u.get("href") for u in r.iter(ns + "use")]
assert uses == ["#tok-bg0", "#tok-bg1", "#tok-bg5"] * 2, uses
under = [t.text for t in r.iter(ns + "text") if t.get("class") == "under"]
assert under == ["over video frame %d" % v for v in (0, 1, 5)] * 2, under
bg = pp("--class", "frame")
assert [m[:3] for m in bg] == [["96", "64", "%d,100,200" % c] for c in (0, 7, 35)] and all(len(set(m[2:])) == 1 for m in bg)
maps = pp()
assert len(maps) == 6 and all(m[:2] == ["6", "4"] and len(m[2].split(",")) == 4 for m in maps), [m[:3] for m in maps]
for layer, panels in (("0", maps[:3]), ("2", maps[3:])):
    v = [float(x["mass"]) for x in csv.DictReader(open(sys.argv[3])) if x["layer"] == layer]
    lo, hi = min(v), max(v)
    for j, m in enumerate(v):  # viridis at t = (m − lo)/(hi − lo), alpha round(255 · 0.85 · t)
        px = [int(c) for c in panels[j // 24][2 + j % 24].split(",")]
        assert abs(px[3] - round(255 * 0.85 * (m - lo) / (hi - lo))) <= 1, (layer, j, px, m)
    top, bottom = v.index(hi), v.index(lo)
    assert panels[top // 24][2 + top % 24] == "253,231,37,217" and panels[bottom // 24][2 + bottom % 24] == "68,1,84,0"
PY
    # one image behind every panel: embedded once; of another shape than the grid: stretched, with a warning
    run -0 --separate-stderr sf-taps tokens "$O" -o "$BATS_TEST_TMPDIR/sq.svg" --frames "$BATS_TEST_TMPDIR/square.png"
    [[ "$stderr" == *"warning: $BATS_TEST_TMPDIR/square.png is 50x50, the token grid 4x6: the frame is stretched to the grid"* ]] || false
    assert_equal "$(grep -o 'class="frame"' "$BATS_TEST_TMPDIR/sq.svg" | wc -l) $(grep -o '<use href="#tok-bg-1"' "$BATS_TEST_TMPDIR/sq.svg" | wc -l)" "1 6"
    # another VAE's video: 17 frames of 9 latent ones are 1 + 2·8, so latent frame f lies over video frame 2f − 1
    python3 "$BATS_TEST_DIRNAME/png_write.py" $(for i in $(seq 0 16); do printf '%s/frame_%05d.png 96 64 %d,0,0 ' "$V"2 "$i" "$i"; done)
    run -0 sf-taps tokens "$O" -o "$BATS_TEST_TMPDIR/r2.svg" --frames "$V"2
    assert_equal "$(grep -o '<use href="#tok-bg[0-9]*"' "$BATS_TEST_TMPDIR/r2.svg" | tr '\n' ' ')" \
        "$(printf '<use href="#tok-bg%d" ' 0 1 3 0 1 3)"
    # errors: a frame the folder lacks (a cut-short video: 5 frames fit no rate, so the Wan VAE's 4, said; the
    # missing frame named; nothing written), no SVG to draw in, a command without maps
    rm "$V/frame_00005.png"
    run -1 --separate-stderr sf-taps tokens "$O" -o "$BATS_TEST_TMPDIR/bad.svg" --frames "$V"
    assert_equal "${#stderr_lines[@]}" 2
    assert_equal "${stderr_lines[0]}" "sf-taps: warning: --frames $V: 5 frames are not 1 + r·8 for the run's 9 latent frames: taking the Wan VAE's r = 4 (latent frame f over video frame 4f − 3)"
    [[ "${stderr_lines[1]}" == "sf-taps: error: "*"$V/frame_00005.png"* ]] || false
    [ ! -e "$BATS_TEST_TMPDIR/bad.svg" ]
    # a damaged frame (cut short; not a PNG at all): the reader's one line naming it, nothing written
    head -c 100 "$V/frame_00000.png" >"$V/frame_00001.png"
    run -1 --separate-stderr sf-taps tokens "$O" -o "$BATS_TEST_TMPDIR/bad.svg" --frames "$V"
    [[ "${stderr_lines[-1]}" == "sf-taps: error: $V/frame_00001.png: damaged or truncated PNG"* ]] || false
    printf 'not a png' >"$V/frame_00001.png"
    run -1 --separate-stderr sf-taps tokens "$O" -o "$BATS_TEST_TMPDIR/bad.svg" --frames "$V"
    [[ "${stderr_lines[-1]}" == "sf-taps: error: $V/frame_00001.png"* ]] || false
    [ ! -e "$BATS_TEST_TMPDIR/bad.svg" ]
    run -1 --separate-stderr sf-taps tokens "$O" -o "$BATS_TEST_TMPDIR/bad.svg" --frames "$BATS_TEST_TMPDIR/nothing"
    assert_equal "$stderr" "sf-taps: error: --frames $BATS_TEST_TMPDIR/nothing: No such file or directory"
    run -2 --separate-stderr sf-taps tokens "$O" --frames "$V"
    [[ "$stderr" == *"--frames: draws the maps over the video in the SVG: give -o OUT.svg"* ]] || false
    run -2 --separate-stderr sf-taps summary "$O" --frames "$V"
    [[ "$stderr" == *"--frames applies to tokens and report only"* ]] || false
    [ ! -e "$BATS_TEST_TMPDIR/bad.svg" ]
}

@test "words: a long prompt's tokens wrap into panels of 48, each column wide enough to label, the figure within the report's width" {
    D="$BATS_TEST_TMPDIR"
    PR="A lone astronaut in a weathered orange suit walks slowly across a vast red desert at dawn, long shadows stretching
        behind her, dust drifting in the low golden light, distant mesas glowing, a small rover parked beside a dome,
        the camera tracking sideways at walking pace, cinematic, highly detailed, soft film grain, gentle wind"
    sf-encode --model-dir "$G/model" --prompt "$PR" --save-embeds "$D/e.safetensors" --no-cache --log-level warn
    run -0 sf-denoise --model-dir "$G/model" --num_frames 3 --height 64 --width 96 --progress none --threads 2 \
        --prompt-embeds "$D/e.safetensors:emb.0" --prompt "$PR" --layer_indices 1 --tap-mode probs --tap-cross \
        --output_path "$D/c.safetensors"
    n=$(sf-encode --model-dir "$G/model" --prompt "$PR" --tokens-only --no-cache | wc -w)
    [ "$n" -gt 96 ] # three panels at least
    run -0 sf-taps words "$D/c.safetensors" -o "$D/w.svg"
    run -0 python3 -c 'import sys, xml.etree.ElementTree as E
r = E.parse(sys.argv[1]).getroot(); ns = "{http://www.w3.org/2000/svg}"
t = list(r.iter(ns + "text")); cls = lambda c: [x for x in t if x.get("class") == c]
xs = [float(x.get("x")) for x in cls("piece")]
print(len(cls("piece")), len(cls("row")), len(list(r.iter(ns + "rect"))) - 1, " ".join(x.text for x in cls("panel")),
      min(xs), max(xs), float(r.get("width")) <= 1400)' "$D/w.svg"
    p=$(( (n + 47) / 48 )) last=$(( (n - 1) / 48 * 48 ))
    # every token labelled once, 22 px apart; the 3 query frames' rows in every panel; a cell per token and row
    assert_output "$n $((3 * p)) $((3 * n)) $(for ((i = 0; i < p - 1; i++)); do printf 'tokens %d–%d ' $((48 * i)) $((48 * i + 47)); done)tokens $last–$((n - 1)) 121.0 1155.0 True"
}

@test "words (sf-denoise --tap-cross): each query frame's mass over the prompt's tokens, labelled with its pieces; errors" {
    D="$BATS_TEST_TMPDIR" PR='A red fox, "trotting" & <jumping>'
    sf-encode --model-dir "$G/model" --prompt "$PR" --save-embeds "$D/e.safetensors" --no-cache --log-level warn
    run -0 sf-denoise --model-dir "$G/model" --num_frames 6 --height 64 --width 96 --progress none --threads 2 \
        --prompt-embeds "$D/e.safetensors:emb.0" --prompt "$PR" --layer_indices 0 2 --tap-mode probs --tap-cross \
        --tap-select all --output_path "$D/c.safetensors"
    n=$(sf-encode --model-dir "$G/model" --prompt "$PR" --tokens-only --no-cache | wc -w) # real tokens, eos included
    # CSV: layers 0 and 2 at the latest block's first step (block 1: frames 3..5), every real token, the mass = the
    # head mean of the tensor; the pieces are the tokenizer's (▁ starts a word), the last the eos
    run -0 sf-taps words "$D/c.safetensors"
    assert_line --index 0 "layer,head,block,step,query_frame,token,piece,mass"
    assert_equal "${#lines[@]}" $((1 + 2 * 3 * n))
    assert_line --index 1 --regexp '^0,-1,1,0,3,0,"▁A",'
    assert_line --index 2 --regexp '^0,-1,1,0,3,1,"▁red",'
    assert_line --index "$n" --regexp "^0,-1,1,0,3,$((n - 1)),\"</s>\","
    printf '%s\n' "${lines[@]}" >"$D/w.csv"
    sf-taps words "$D/c.safetensors" --heads 1 --forward 0:2 --layers 2 >"$D/w1.csv"
    run -0 python3 - "$D/c.safetensors" "$D/w.csv" "$D/w1.csv" <<'PY'
import csv, json, struct, sys
f = open(sys.argv[1], "rb"); n = struct.unpack("<Q", f.read(8))[0]; h = json.loads(f.read(n)); base = 8 + n
def get(name):
    e = h[name]; a, b = e["data_offsets"]; f.seek(base + a)
    return e["shape"], struct.unpack("<%df" % ((b - a) // 4), f.read(b - a))
for path, picks in ((sys.argv[2], [(0, 1, 0, None, 3), (2, 1, 0, None, 3)]), (sys.argv[3], [(2, 0, 2, [1], 0)])):
    rows = list(csv.DictReader(open(path)))
    i = 0
    for layer, blk, step, heads, f0 in picks:
        (H, QF, R), v = get("cross.L%d.b%d.s%d" % (layer, blk, step))
        hs = heads if heads else range(H)
        for q in range(QF):
            tot = 0
            for j in range(R):
                r = rows[i]; i += 1
                want = sum(v[(hh * QF + q) * R + j] for hh in hs) / len(hs)
                assert (int(r["layer"]), int(r["block"]), int(r["step"]), int(r["query_frame"]), int(r["token"])) == \
                    (layer, blk, step, f0 + q, j), r
                assert abs(float(r["mass"]) - want) < 1e-8, (r, want)
                tot += float(r["mass"])
            assert abs(tot - 1) < 1e-5, tot  # a query frame's row over the real tokens sums to 1
    assert i == len(rows), (i, len(rows))
PY
    # SVG: a label per token (escaped), a row per (layer, query frame), a cell per token and row
    run -0 sf-taps words "$D/c.safetensors" -o "$D/w.svg"
    run -0 python3 -c 'import sys, xml.etree.ElementTree as E
r = E.parse(sys.argv[1]).getroot(); ns = "{http://www.w3.org/2000/svg}"
pieces = [t.text for t in r.iter(ns + "text") if t.get("class") == "piece"]
rows = [t.text for t in r.iter(ns + "text") if t.get("class") == "row"]
print(len(pieces), pieces[0], pieces[-1], len(rows), rows[0], len(list(r.iter(ns + "rect"))) - 1)' "$D/w.svg"
    assert_output "$n ▁A </s> 6 layer 0, frame 3 $((6 * n))"
    # --by-word: a column a word — a piece starting with ▁ and the pieces after it without, their masses summed, the text
    # joined without the ▁; the end of text its own word
    sf-taps words "$D/c.safetensors" --by-word >"$D/wb.csv"
    run -0 python3 - "$D/w.csv" "$D/wb.csv" <<'PY'
import csv, sys
p, w = (list(csv.DictReader(open(f))) for f in sys.argv[1:3])
assert list(w[0].keys()) == ["layer", "head", "block", "step", "query_frame", "word", "text", "mass"], w[0].keys()
rows = {}
for r in p: rows.setdefault((r["layer"], r["query_frame"]), []).append(r)
i = 0
for key, toks in rows.items():
    words = []
    for j, r in enumerate(toks):
        if j == 0 or r["piece"].startswith("▁") or j == len(toks) - 1:
            words.append(["", 0.0])
        words[-1][0] += r["piece"][1:] if r["piece"].startswith("▁") and words[-1][0] == "" else r["piece"]
        words[-1][1] += float(r["mass"])
    for k, (text, mass) in enumerate(words):
        g = w[i]; i += 1
        assert (g["layer"], g["query_frame"], int(g["word"]), g["text"]) == (key[0], key[1], k, text or "▁"), (g, text)
        assert abs(float(g["mass"]) - mass) < 1e-8, (g, mass)
assert i == len(w) and w[0]["text"] == "A" and w[1]["text"] == "red" and w[-1]["text"] == "</s>", (i, len(w))
PY
    # a prompt longer than the run's text_len (512 tokens): the run kept 511 pieces and the eos, and so do the labels
    sf-encode --model-dir "$G/model" --prompt "$(printf 'red %.0s' $(seq 600))" --save-embeds "$D/e2.safetensors" --no-cache --log-level warn
    run -0 sf-denoise --model-dir "$G/model" --num_frames 3 --height 64 --width 96 --progress none --threads 2 \
        --prompt-embeds "$D/e2.safetensors:emb.0" --prompt "$(printf 'red %.0s' $(seq 600))" --layer_indices 1 \
        --tap-mode probs --tap-cross --output_path "$D/c2.safetensors"
    run -0 --separate-stderr sf-taps words "$D/c2.safetensors"
    [[ "$stderr" == *"warning: the prompt is 601 tokens, the taps 512: labelled as the run's text_len cut it (511 pieces and the end)"* ]] || false
    assert_equal "$(grep -c ',"▁red",' <<<"$output") $(grep -c ',"</s>",' <<<"$output")" "$((3 * 511)) 3"
    # another prompt, or none: by position, said
    run -0 --separate-stderr sf-taps words "$D/c.safetensors" --prompt "a cat"
    [[ "$stderr" == *"warning: tokens labelled by position: the prompt is 3 tokens, the taps $n (another prompt than the run's?)"* ]] || false
    assert_line --index 1 --regexp '^0,-1,1,0,3,0,"#0",'
    # report: a section of these figures for a run with cross taps, labelled with --tokenizer's pieces when given
    run -0 --separate-stderr sf-taps report "$D/c.safetensors" "$D/c.safetensors" --labels a b -o "$D/r.html"
    nw=$(awk -F, 'NR > 1 && $1 == 0 && $5 == 3' "$D/wb.csv" | wc -l) # the report shows words
    assert_equal "$(grep -c '<text class="piece"' "$D/r.html") $(grep -c '>red</text>' "$D/r.html")" "$((2 * nw)) 2"
    run -0 --separate-stderr sf-taps report "$D/c.safetensors" "$D/c.safetensors" --labels a b -o "$D/r.html" --tokenizer "$D/none.model"
    [[ "$stderr" == *"warning: tokens labelled by position: "*"$D/none.model"* ]] || false
    assert_equal "$(grep -c '>#1</text>' "$D/r.html")" 2
    # errors: no cross taps, a head the file lacks, flags of other commands
    run -1 --separate-stderr sf-taps words "$G/expect/taps_base.safetensors"
    assert_equal "$stderr" "sf-taps: error: no cross.L* taps of the layers asked (sf-denoise --tap-cross)"
    run -2 --separate-stderr sf-taps words "$D/c.safetensors" --heads 5
    assert_equal "$stderr" "sf-taps: error: --heads: head 5 out of range (the file has 2 heads)"
    run -2 --separate-stderr sf-taps summary "$D/c.safetensors" --prompt x
    [[ "$stderr" == *"--prompt and --by-word apply to words only"* ]] || false
    run -0 --separate-stderr sf-taps words "$D/c.safetensors" --by-word --prompt "a cat"
    [[ "$stderr" == *"warning: --by-word: no pieces to join (the tokens are labelled by position): one column a token"* ]] || false
    run -2 --separate-stderr sf-taps tokens "$D/c.safetensors" --tokenizer x
    [[ "$stderr" == *"--tokenizer applies to words and report only"* ]] || false
    run -2 --separate-stderr sf-taps words "$D/c.safetensors" --frame-seq-length 24
    [[ "$stderr" == *"--frame-seq-length does not apply to words"* ]] || false
    run -1 --separate-stderr sf-taps words "$D/c.safetensors" -o "$D/bad.svg" --forward 9:0
    [ ! -e "$D/bad.svg" ]
}
