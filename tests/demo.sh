#!/usr/bin/env bash
# make demo — on a fresh Debian machine: install missing packages (when root; otherwise print
# the apt line), build, make a tiny random model with sf-mkmodel, and run the whole
# prompt → video → attention-taps pipeline on the CPU. Prints where the outputs are.
set -euo pipefail
cd "$(dirname "$0")/.."
PKGS=(build-essential libzmq3-dev libmsgpack-dev libyaml-dev libcjson-dev libpng-dev libsodium-dev libutf8proc-dev libpcre2-dev zlib1g-dev bats bats-assert bats-support ffmpeg libmicrohttpd-dev libturbojpeg0-dev libjpeg62-turbo-dev libdnnl-dev)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        echo "demo: installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "demo: missing packages; run:  sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
fi
make -j2 >/dev/null
export PATH="$PWD/build/bin:$PATH"
OUT=${DEMO_OUT:-demo-out}
rm -rf "$OUT"
mkdir -p "$OUT"
echo "demo: making a tiny random model in $OUT/model"
sf-mkmodel tiny "$OUT/model" --seed 1 --checkpoint "$OUT/model/self_forcing_dmd.pt"
video="$OUT/demo.mp4"
command -v ffmpeg >/dev/null 2>&1 || video="$OUT/demo.y4m"
# 9 latent frames of 8×12 (64×96 pixels): three blocks, a few seconds on two cores.
size=(num_frames=9 height=64 width=96)
echo "demo: prompt → video ($video)"
sf-run pipelines/t2v.yaml model_dir="$OUT/model" checkpoint="$OUT/model/self_forcing_dmd.pt" \
    output="$video" cache_dir="$OUT/cache" "${size[@]}" prompt="A red fox trotting through fresh snow"
echo "demo: prompt → attention taps ($OUT/attention_cache_figure4.pt)"
pipelines/figure4.sh --model-dir "$OUT/model" --checkpoint_path "$OUT/model/self_forcing_dmd.pt" \
    --output_path "$OUT/attention_cache_figure4.pt" --num_frames 9 --height 64 --width 96 \
    --layer_indices 0 2 --cache-dir "$OUT/cache" --prompt "A red fox trotting through fresh snow" --progress none \
    --seed 0 # t2v.yaml's seed: the taps are of the same video
sf-tensor ls "$OUT/attention_cache_figure4.pt"
i2v=
if command -v ffmpeg >/dev/null 2>&1; then
    # image-to-video (the reference's --i2v): the video's first frame → its latent → a new video from it
    i2v="$OUT/i2v.mp4"
    echo "demo: the video's first frame → a new video that starts from it ($i2v)"
    ffmpeg -v error -i "$video" -frames:v 1 "$OUT/first.png"
    sf-vae-encode --model-dir "$OUT/model" --image "$OUT/first.png" --height 64 --width 96 --out "$OUT/first.safetensors" \
        --log-level warn
    printf '%s\n' "denoising_step_list: [1000, 750, 500, 250]" "warp_denoising_step: true" "num_frame_per_block: 3" \
        "independent_first_frame: true" >"$OUT/i2v.yaml" # frame 0 is a block of its own
    sf-run pipelines/t2v.yaml model_dir="$OUT/model" checkpoint="$OUT/model/self_forcing_dmd.pt" config="$OUT/i2v.yaml" \
        output="$i2v" cache_dir="$OUT/cache" "${size[@]}" prompt="A red fox trotting through fresh snow" \
        denoise.initial-latents="$OUT/first.safetensors"
    # where in the sink frame (frame 0) the attention mass lands, drawn over that frame (docs/sink-workbench.md)
    sf-taps tokens "$OUT/attention_cache_figure4.pt" --token-grid 4x6 --frames "$OUT/first.png" -o "$OUT/sink_tokens.svg" \
        --log-level warn
fi
echo
echo "demo: video: $video"
[ -z "$i2v" ] || echo "demo: image-to-video: $i2v"
echo "demo: taps:  $OUT/attention_cache_figure4.pt"
[ -z "$i2v" ] || echo "demo: the sink frame's attention map over it: $OUT/sink_tokens.svg (a browser opens it)"
echo
echo "demo: live (watch it generate, type new prompts; Ctrl-C ends it):"
echo "    build/bin/sf-run pipelines/live.yaml model_dir=$OUT/model checkpoint=$OUT/model/self_forcing_dmd.pt \\"
echo "        height=64 width=96 local_attn_size=6 cache_dir=$OUT/cache port=8080"
echo "  then open http://127.0.0.1:8080/ in a browser (README \"Live\")"
