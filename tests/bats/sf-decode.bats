#!/usr/bin/env bats
# sf-decode: golden latents → y4m / mp4 / PNG frames / --save-video; wire input; bad input.
# Golden data: tests/golden/expect/vae.safetensors (z [1,9,16,8,12] → video [1,33,3,64,96]).

bats_require_minimum_version 1.5.0
load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'

setup() {
    G="${SF_GOLDEN:-$BATS_TEST_DIRNAME/../golden}"
    VAE="$G/model/Wan2.1_VAE.pth"
    LAT="$G/expect/vae.safetensors:z"
    T="$BATS_TEST_TMPDIR/o"
    mkdir -p "$T"
    export SF_LOG_LEVEL=warn
}

probe() { # FILE → "width,height,rate,frames"
    ffprobe -v error -count_frames -select_streams v:0 \
        -show_entries stream=width,height,r_frame_rate,nb_read_frames -of csv=p=0 "$1"
}

@test "golden latents → y4m that ffprobe reads: 33 frames, 96x64, 16 fps, 4:4:4 full range" {
    command -v ffprobe >/dev/null || skip "ffprobe not installed (apt-get install ffmpeg)"
    run -0 sf-decode --latents "$LAT" --vae "$VAE" -o "$T/a.y4m" --threads 2
    run -0 probe "$T/a.y4m"
    assert_output "96,64,16/1,33"
    run -0 ffprobe -v error -show_entries stream=pix_fmt,color_range -of csv=p=0 "$T/a.y4m"
    assert_output "yuv444p,pc"
    head -c 64 "$T/a.y4m" | grep -q '^YUV4MPEG2 W96 H64 F16:1 Ip A1:1 C444 XCOLORRANGE=FULL'
    [ -z "$(ls "$T" | grep tmp)" ]
}

@test "--fps changes the frame rate; --underscore_form flags work" {
    command -v ffprobe >/dev/null || skip "ffprobe not installed (apt-get install ffmpeg)"
    run -0 sf-decode --latents "$LAT" --vae "$VAE" --output "$T/b.y4m" --fps 24 --log_level error
    run -0 probe "$T/b.y4m"
    assert_output "96,64,24/1,33"
}

@test "mp4 through ffmpeg: 33 frames, 96x64, 16 fps" {
    command -v ffmpeg >/dev/null || skip "ffmpeg not on PATH (CI installs the Debian package ffmpeg)"
    run -0 sf-decode --latents "$LAT" --vae "$VAE" -o "$T/c.mp4"
    run -0 probe "$T/c.mp4"
    assert_output "96,64,16/1,33"
    [ "$(ls "$T")" = "c.mp4" ]
}

@test "mp4 without ffmpeg on PATH: one-line error naming the package, no file" {
    mkdir -p "$T/bin"
    run -1 --separate-stderr env PATH="$T/bin" "$(command -v sf-decode)" --latents "$LAT" --vae "$VAE" -o "$T/d.mp4"
    [ "${#stderr_lines[@]}" -eq 1 ]
    [[ "$stderr" == *"apt-get install ffmpeg"* ]]
    [ ! -e "$T/d.mp4" ]
    [ "$(ls "$T")" = "bin" ]
}

@test "--save-video equals the golden video within 1e-4" {
    run -0 sf-decode --latents "$LAT" --vae "$VAE" --save-video "$T/v.safetensors"
    run sf-tensor diff "$T/v.safetensors" "$G/expect/vae.safetensors" --rtol 1e-4 --atol 1e-4
    assert_line --regexp '^video	.*	ok$'
    run -0 sf-tensor ls "$T/v.safetensors"
    assert_output --partial "[1, 33, 3, 64, 96]"
}

@test "PNG folder: 33 RGB frames, atomic (no temp folder left)" {
    run -0 sf-decode --latents "$LAT" --vae "$VAE" -o "$T/frames/"
    [ "$(ls "$T/frames" | wc -l)" -eq 33 ]
    [ -f "$T/frames/frame_00000.png" ]
    [ -f "$T/frames/frame_00032.png" ]
    [ "$(ls "$T")" = "frames" ]
    if command -v ffprobe >/dev/null; then
        run -0 ffprobe -v error -show_entries stream=width,height,pix_fmt -of csv=p=0 "$T/frames/frame_00007.png"
        assert_output "96,64,rgb24"
    fi
}

@test "--model-dir and SF_MODEL_DIR find Wan2.1_VAE.pth" {
    run -0 sf-decode --latents "$LAT" --model-dir "$G/model" -o "$T/e.y4m"
    SF_MODEL_DIR="$G/model" run -0 sf-decode --latents "$LAT" -o "$T/f.y4m"
    cmp "$T/e.y4m" "$T/f.y4m"
}

# golden_wire FILE: a hand-made SFT1 stream of z [1,9,16,8,12] from the golden file as 3 'latents'
# blocks + end, as sf-denoise streams them.
golden_wire() {
    local hdr off0 off1
    hdr=$(head -c 8 "$G/expect/vae.safetensors" | od -An -tu8 | tr -d ' ')
    off0=$(head -c $((8 + hdr)) "$G/expect/vae.safetensors" | tail -c "$hdr" |
        grep -o '"z":{[^}]*}' | grep -o 'data_offsets":\[[0-9]*,[0-9]*' | grep -o '[0-9]*,[0-9]*')
    off1=${off0#*,}; off0=${off0%,*}
    [ $((off1 - off0)) -eq 55296 ]
    {
        # three blocks of 3 latent frames:
        # header {v:1, type:"tensor", name:"latents", dtype:"f32", shape:[1,3,16,8,12]} (msgpack)
        for b in 0 1 2; do
            printf 'SFT1\x33\x00\x00\x00'
            printf '\x85\xa1v\x01\xa4type\xa6tensor\xa4name\xa7latents\xa5dtype\xa3f32\xa5shape\x95\x01\x03\x10\x08\x0c'
            printf '\x00\x48\x00\x00\x00\x00\x00\x00'
            tail -c +$((9 + hdr + off0 + b * 18432)) "$G/expect/vae.safetensors" | head -c 18432
        done
        printf 'SFT1\x0d\x00\x00\x00\x82\xa1v\x01\xa4type\xa3end\x00\x00\x00\x00\x00\x00\x00\x00'
    } >"$1"
}

@test "wire stream on --in (file transport) decodes like --latents" {
    golden_wire "$T/z.sft"
    run -0 sf-decode --in "$T/z.sft" --vae "$VAE" -o "$T/w.y4m"
    run -0 sf-decode --latents "$LAT" --vae "$VAE" -o "$T/l.y4m"
    cmp "$T/w.y4m" "$T/l.y4m"
}

@test "--height/--width: the VAE is made before the first latents arrive; same video; other sizes are one line" {
    golden_wire "$T/z.sft"
    mkfifo "$T/in"
    # the latents are written only once sf-decode says it is ready (or after 20 s, which fails below)
    (for _ in $(seq 400); do grep -qs ' decode ready ' "$T/trace" && break; sleep 0.05; done
     sleep 1; timeout 30 cat "$T/z.sft" >"$T/in") 3>&- &
    SF_TRACE="$T/trace" run -0 sf-decode --in "$T/in" --vae "$VAE" -o "$T/h.y4m" --height 64 --width 96
    rd=$(awk '$2 == "decode" && $3 == "ready" { print $1 }' "$T/trace")
    lo=$(awk '$2 == "decode" && $3 == "latent_out" { print $1; exit }' "$T/trace")
    [ -n "$rd" ]
    [ -n "$lo" ]
    awk -v rd="$rd" -v lo="$lo" 'BEGIN { exit !((lo - rd) / 1e9 > 0.9) }'
    run -0 sf-decode --latents "$LAT" --vae "$VAE" -o "$T/l.y4m"
    cmp "$T/h.y4m" "$T/l.y4m"
    # without the size nothing is made before the latents: no ready event
    SF_TRACE="$T/trace2" run -0 sf-decode --latents "$LAT" --vae "$VAE" -o "$T/l2.y4m"
    ! grep -q ' decode ready ' "$T/trace2" || false
    # latents of another size than announced: one line, exit 1, no video
    mkdir "$T/out"
    run -1 --separate-stderr sf-decode --latents "$LAT" --vae "$VAE" -o "$T/out/x.y4m" --height 128 --width 96
    [ "${#stderr_lines[@]}" -eq 1 ]
    [[ "$stderr" == *"latents of 8x12 do not match --height 128 --width 96 (latents 16x12)"* ]]
    [ -z "$(ls "$T/out")" ]
    # a stream that ends before any latents is still an error with the decoder made up front: no video
    printf 'SFT1\x0d\x00\x00\x00\x82\xa1v\x01\xa4type\xa3end\x00\x00\x00\x00\x00\x00\x00\x00' >"$T/end.sft"
    run -1 --separate-stderr sf-decode --in "$T/end.sft" --vae "$VAE" -o "$T/out/e.y4m" --height 64 --width 96
    [[ "$stderr" == *"stream ended without any latents"* ]]
    [ -z "$(ls "$T/out")" ]
    run -1 --separate-stderr sf-decode --in "$T/end.sft" --vae "$VAE" -o - --height 64 --width 96
    [ -z "$output" ] # not even a y4m header on stdout
    # the channel count is named as such
    local h='{"latents":{"dtype":"F32","shape":[1,1,8,8,12],"data_offsets":[0,3072]}}'
    while [ $(((${#h} % 8))) -ne 0 ]; do h="$h "; done
    { printf "\\x$(printf %02x ${#h})\\x00\\x00\\x00\\x00\\x00\\x00\\x00"; printf '%s' "$h"; head -c 3072 /dev/zero; } >"$T/c8.safetensors"
    run -1 --separate-stderr sf-decode --latents "$T/c8.safetensors" --vae "$VAE" -o "$T/out/c.y4m" --height 64 --width 96
    [[ "$stderr" == *"latents have 8 channels but the VAE expects 16"* ]]
    [ -z "$(ls "$T/out")" ]
    # one without the other, or not a multiple of 8: a flag error
    run -2 --separate-stderr sf-decode --latents "$LAT" --vae "$VAE" -o "$T/out/x.y4m" --height 64
    [[ "$stderr" == *"--height and --width together"* ]]
    run -2 --separate-stderr sf-decode --latents "$LAT" --vae "$VAE" -o "$T/out/x.y4m" --height 60 --width 96
    [[ "$stderr" == *"multiples of 8"* ]]
}

@test "latents with the wrong channel count: one-line error, exit 1, no output" {
    # safetensors with latents [1, 1, 8, 8, 12] f32 (zeros)
    local h='{"latents":{"dtype":"F32","shape":[1,1,8,8,12],"data_offsets":[0,3072]}}'
    while [ $(((${#h} % 8))) -ne 0 ]; do h="$h "; done
    { printf "\\x$(printf %02x ${#h})\\x00\\x00\\x00\\x00\\x00\\x00\\x00"; printf '%s' "$h"; head -c 3072 /dev/zero; } >"$T/bad.safetensors"
    mkdir "$T/out"
    run -1 --separate-stderr sf-decode --latents "$T/bad.safetensors" --vae "$VAE" -o "$T/out/x.y4m" --save-video "$T/out/v.safetensors"
    [ "${#stderr_lines[@]}" -eq 1 ]
    [[ "$stderr" == *"latents have 8 channels but the VAE expects 16"* ]]
    [ -z "$(ls "$T/out")" ]
}

@test "VAE file missing a tensor: one-line error naming it, exit 1, no output" {
    sf-tensor convert "$VAE" "$T/vae.safetensors"
    # rename one key inside the JSON header (same length, offsets unchanged)
    local hdr
    hdr=$(head -c 8 "$T/vae.safetensors" | od -An -tu8 | tr -d ' ')
    {
        head -c $((8 + hdr)) "$T/vae.safetensors" | sed 's/decoder\.middle\.0\.residual\.6\.weight/decoder.middle.0.residual.6.weighX/'
        tail -c +$((9 + hdr)) "$T/vae.safetensors"
    } >"$T/vae_missing.safetensors"
    [ "$(stat -c %s "$T/vae.safetensors")" -eq "$(stat -c %s "$T/vae_missing.safetensors")" ]
    mkdir "$T/out"
    run -1 --separate-stderr sf-decode --latents "$LAT" --vae "$T/vae_missing.safetensors" -o "$T/out/x.y4m"
    [ "${#stderr_lines[@]}" -eq 1 ]
    [[ "$stderr" == *"missing tensor decoder.middle.0.residual.6.weight"* ]]
    [ -z "$(ls "$T/out")" ]
    run -1 --separate-stderr sf-decode --latents "$LAT" --vae "$T/nonexistent.pth" -o "$T/out/x.y4m"
    [ "${#stderr_lines[@]}" -eq 1 ]
}

@test "unwritable output path: one-line error, exit 1, no partial file" {
    run -1 --separate-stderr sf-decode --latents "$LAT" --vae "$VAE" -o "$T/no/such/dir/x.y4m"
    [ "${#stderr_lines[@]}" -eq 1 ]
    [[ "$stderr" == *"does not exist (mkdir -p $T/no/such/dir)"* ]]
    run -1 --separate-stderr sf-decode --latents "$LAT" --vae "$VAE" --save-video "$T/no/such/v.safetensors"
    [ "${#stderr_lines[@]}" -eq 1 ]
    mkdir -p "$T/full" && touch "$T/full/x"
    run -1 --separate-stderr sf-decode --latents "$LAT" --vae "$VAE" -o "$T/full/"
    [[ "$stderr" == *"not empty"* ]]
    [ "$(ls "$T/full")" = "x" ]
    [ -z "$(ls "$T" | grep tmp)" ]
}

@test "an output that cannot be written, or a VAE that cannot be read, is refused before any latents are read" {
    # the VAE path does not exist and no latents ever come: the output's own error must come first
    mkdir -p "$T/full" "$T/bin" && touch "$T/full/x"
    run -1 --separate-stderr timeout 20 sf-decode --in "ipc://$T/never" --vae "$T/none.pth" -o "$T/full/"
    [ "${#stderr_lines[@]}" -eq 1 ]
    [[ "$stderr" == *"output folder $T/full exists and is not empty"* ]]
    # a file where the folder would go is not called a folder that is not empty
    touch "$T/file"
    run -1 --separate-stderr timeout 20 sf-decode --in "ipc://$T/never" --vae "$T/none.pth" -o "$T/file/"
    [ "${#stderr_lines[@]}" -eq 1 ]
    [[ "$stderr" == *"output folder $T/file exists and is not a folder"* ]]
    run -1 --separate-stderr timeout 20 env PATH="$T/bin" "$(command -v sf-decode)" --in "ipc://$T/never" --vae "$T/none.pth" -o "$T/d.mp4"
    [ "${#stderr_lines[@]}" -eq 1 ]
    [[ "$stderr" == *"needs ffmpeg on PATH"* ]]
    [ ! -e "$T/d.mp4" ]
    # then the VAE itself, still before any latents (a decoder sized by them waited for them before)
    run -1 --separate-stderr timeout 20 sf-decode --in "ipc://$T/never" --vae "$T/none.pth" -o "$T/ok.y4m"
    [ "${#stderr_lines[@]}" -eq 1 ]
    [ "$stderr" = "sf-decode: error: cannot open $T/none.pth: No such file or directory" ]
    [ ! -e "$T/ok.y4m" ]
}

@test "a missing output folder is found before any work (the VAE is not even opened)" {
    for o in "-o $T/no/dir/x.mp4" "-o $T/no/dir/frames/" "--save-video $T/no/dir/v.safetensors"; do
        run -1 --separate-stderr sf-decode --latents "$LAT" --vae "$T/no-such-vae.pth" $o
        [ "${#stderr_lines[@]}" -eq 1 ]
        [[ "$stderr" == *"folder $T/no/dir does not exist (mkdir -p $T/no/dir)"* ]]
        [ ! -e "$T/no" ]
    done
}

@test "bad flags exit 2; unknown format and missing inputs are one-line errors" {
    run -2 --separate-stderr sf-decode --latents "$LAT" --vae "$VAE" -o "$T/a.y4m" --fps 0
    [ "${#stderr_lines[@]}" -eq 1 ]
    run -2 --separate-stderr sf-decode --latents "$LAT" --vae "$VAE" -o "$T/a.avi"
    [[ "$stderr" == *"unknown format"* ]]
    run -2 --separate-stderr sf-decode --vae "$VAE" -o "$T/a.y4m"
    run -2 --separate-stderr sf-decode --latents "$LAT" --vae "$VAE"
    run -1 --separate-stderr sf-decode --latents "$G/expect/vae.safetensors:nope" --vae "$VAE" -o "$T/a.y4m"
    [[ "$stderr" == *"no tensor named nope"* ]]
    [ -z "$(ls "$T")" ]
    run -0 sf-decode --help
    assert_output --partial "--save-video"
}

@test "--device cuda without a usable GPU: one-line error, exit 1, no output (with one: decodes)" {
    mkdir "$T/out"
    if nvidia-smi >/dev/null 2>&1; then
        run -0 sf-decode --latents "$LAT" --vae "$VAE" --device cuda -o "$T/out/x.y4m"
        [ -s "$T/out/x.y4m" ]
        skip "a GPU is present: the refusal is not testable here"
    fi
    run -1 --separate-stderr sf-decode --latents "$LAT" --vae "$VAE" --device cuda -o "$T/out/x.y4m"
    [ "${#stderr_lines[@]}" -eq 1 ]
    [[ "$stderr" == *"--device cpu"* ]]
    [ -z "$(ls "$T/out")" ]
    run -1 --separate-stderr sf-decode --latents "$LAT" --vae "$VAE" --gpu_id 0 --save-video "$T/out/v.safetensors"
    [ "${#stderr_lines[@]}" -eq 1 ]
    [ -z "$(ls "$T/out")" ]
}

# ---- TAEHV, the tiny decoder (tests/golden/model/taehv_*.pth; golden tests/golden/expect/taehv.safetensors) ----

# st_edit SRC DST [NAME=NEW... | -NAME...]: a safetensors copy of the tensors renamed (only those), or of
# all but the -NAMEs
st_edit() {
    python3 - "$@" <<'PY'
import json, struct, sys
src, dst, ops = sys.argv[1], sys.argv[2], sys.argv[3:]
b = open(src, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n]); h.pop("__metadata__", None)
ren = dict(o.split("=", 1) for o in ops if "=" in o)
out, data = {}, b""
for k, v in h.items():
    if (k in ren) if ren else ("-" + k not in ops):
        a, e = v["data_offsets"]
        out[ren.get(k, k)] = dict(v, data_offsets=[len(data), len(data) + e - a]); data += b[8 + n + a:8 + n + e]
j = json.dumps(out).encode(); j += b" " * (-len(j) % 8)
open(dst, "wb").write(struct.pack("<Q", len(j)) + j + data)
PY
}

@test "a TAEHV checkpoint on --vae decodes with the tiny decoder: 17 frames for 5 latents, the golden video" {
    command -v ffprobe >/dev/null || skip "ffprobe not installed (apt-get install ffmpeg)"
    TG="$G/expect/taehv.safetensors"
    run -0 --separate-stderr env SF_LOG_LEVEL=info sf-decode --latents "$TG:tiny.latents" --vae "$G/model/taehv_tiny.pth" \
        -o "$T/t.y4m" --save-video "$T/t.safetensors" --threads 2
    [[ "$stderr" == *"TAEHV $G/model/taehv_tiny.pth: 23 layers, 16 -> 16 channels, 4 frames a latent frame, 4x6 latents -> 48x32 frames"* ]]
    run -0 probe "$T/t.y4m"
    assert_output "48,32,16/1,17"
    st_edit "$TG" "$T/g.safetensors" tiny.video=video
    run sf-tensor diff "$T/t.safetensors" "$T/g.safetensors" --rtol 1e-4 --atol 1e-4
    assert_line --regexp '^video	.*	ok$'
    # --bf16-unscale is the Wan VAE's un-scaling: said to have no effect, and it has none
    run -0 --separate-stderr sf-decode --latents "$TG:tiny.latents" --vae "$G/model/taehv_tiny.pth" -o "$T/b.y4m" \
        --threads 2 --bf16-unscale
    [[ "$stderr" == *"--bf16-unscale is the Wan VAE's: the TAEHV takes the latents as they are"* ]]
    cmp "$T/b.y4m" "$T/t.y4m"
    # the t2 checkpoint (temporal upscale 2: 2 frames a latent frame, the first trimmed): 9 frames
    run -0 sf-decode --latents "$TG:t2.latents" --vae "$G/model/taehv_t2.pth" -o "$T/t2.y4m"
    run -0 probe "$T/t2.y4m"
    assert_output "48,32,16/1,9"
}

@test "TAEHV from a wire stream of blocks = from the file; --height/--width make it up front" {
    TG="$G/expect/taehv.safetensors"
    run -0 sf-decode --latents "$TG:tiny.latents" --vae "$G/model/taehv_tiny.pth" -o "$T/l.y4m"
    # the 5 latent frames as 'latents' blocks of 3 and 2 + end on a hand-made SFT1 stream, as sf-denoise sends them
    python3 - "$TG" "$T/z.sft" <<'PY'
import json, struct, sys
b = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", b[:8])[0]; e = json.loads(b[8:8 + n])["tiny.latents"]
z = b[8 + n + e["data_offsets"][0]:8 + n + e["data_offsets"][1]]; fe = 16 * 4 * 6 * 4
with open(sys.argv[2], "wb") as f:
    for at, k in ((0, 3), (3, 2)):
        h = b"\x85\xa1v\x01\xa4type\xa6tensor\xa4name\xa7latents\xa5dtype\xa3f32\xa5shape\x95" + bytes([1, k, 16, 4, 6])
        f.write(b"SFT1" + struct.pack("<I", len(h)) + h + struct.pack("<Q", k * fe) + z[at * fe:(at + k) * fe])
    f.write(b"SFT1\x0d\x00\x00\x00\x82\xa1v\x01\xa4type\xa3end" + bytes(8))
PY
    run -0 sf-decode --in "$T/z.sft" --vae "$G/model/taehv_tiny.pth" -o "$T/w.y4m" --height 32 --width 48
    cmp "$T/w.y4m" "$T/l.y4m"
    # a TAEHV missing a tensor: one line naming it, nothing written
    mkdir "$T/out"
    run -0 sf-tensor convert "$G/model/taehv_tiny.pth" "$T/full.safetensors"
    st_edit "$T/full.safetensors" "$T/cut.safetensors" -decoder.9.conv.2.bias
    run -1 --separate-stderr sf-decode --latents "$TG:tiny.latents" --vae "$T/cut.safetensors" -o "$T/out/x.y4m"
    [ "${#stderr_lines[@]}" -eq 1 ]
    [[ "$stderr" == *"missing tensor decoder.9.conv.2.bias"* ]]
    [ -z "$(ls "$T/out")" ]
}
