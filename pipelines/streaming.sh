#!/usr/bin/env bash
# streaming.sh — the reference's experiments/run_extraction_streaming.py, same flags and defaults,
# as a shell pipeline: sf-encode | sf-denoise (frame-level taps) [| sf-decode] → the same .pt dict.
#
#   pipelines/streaming.sh [--config_path P] [--checkpoint_path P] [--output_path P] [--prompt S]
#                          [--num_frames N] [--layer_index N] [--chunk_frames N] [--no_checkpoint]
#                          [--use_ema] [--seed N] [--gpu_id N] [--force] [--save_video]
#                          [--video_path P]
#                          [--model-dir DIR] [--device cpu|cuda|cuda:N] [--height H] [--width W]
#                          [--cache-dir DIR] [--log-level L] [--progress auto|none]
# Every flag also works in --dash-form. Like the reference: global attention over the whole video
# (no eviction), num_frames rounded down to a multiple of 3, the output's parent directory is
# created, --use_ema is always on, --save_video writes an mp4 (default: output path with .pt → .mp4).
# --chunk_frames only sets the recorded chunk_frames (our frame means need no chunking); --force
# is accepted (there is no GPU memory guard on the CPU path).
set -euo pipefail
usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; }

config_path=configs/self_forcing_dmd.yaml
checkpoint_path=checkpoints/self_forcing_dmd.pt
output_path=cache/attention_streaming.pt
prompt="A majestic eagle soaring through a cloudy sky, cinematic lighting"
num_frames=120
layer_index=15
chunk_frames=3
no_checkpoint=0
seed=42
device=
save_video=0
video_path=
model_dir=${SF_MODEL_DIR:-wan_models/Wan2.1-T2V-1.3B}
height=480
width=832
cache_dir=
extra=()
extra_encode=()

need() { [ $# -ge 2 ] || { echo "streaming.sh: error: option $1 needs a value" >&2; exit 2; }; }
int() { [[ "$2" =~ ^[0-9]+$ ]] || { echo "streaming.sh: error: $1 must be a non-negative integer, got '$2'" >&2; exit 2; }; }
while [ $# -gt 0 ]; do
    flag=${1//_/-}
    case "$flag" in
    --config-path) need "$@"; config_path=$2; shift 2 ;;
    --checkpoint-path) need "$@"; checkpoint_path=$2; shift 2 ;;
    --output-path) need "$@"; output_path=$2; shift 2 ;;
    --prompt) need "$@"; prompt=$2; shift 2 ;;
    --num-frames) need "$@"; int "$1" "$2"; num_frames=$2; shift 2 ;;
    --layer-index) need "$@"; int "$1" "$2"; layer_index=$2; shift 2 ;;
    --chunk-frames) need "$@"; int "$1" "$2"; chunk_frames=$2; shift 2 ;;
    --no-checkpoint) no_checkpoint=1; shift ;;
    --use-ema) shift ;; # always true in the reference script
    --seed) need "$@"; int "$1" "$2"; seed=$2; shift 2 ;;
    --gpu-id) need "$@"; int "$1" "$2"; device="cuda:$2"; shift 2 ;;
    --device) need "$@"; device=$2; shift 2 ;;
    --force) shift ;;
    --save-video) save_video=1; shift ;;
    --video-path) need "$@"; video_path=$2; shift 2 ;;
    --model-dir) need "$@"; model_dir=$2; shift 2 ;;
    --height) need "$@"; height=$2; shift 2 ;;
    --width) need "$@"; width=$2; shift 2 ;;
    --cache-dir) need "$@"; cache_dir=$2; shift 2 ;;
    --log-level) need "$@"; extra+=("$flag" "$2"); extra_encode+=("$flag" "$2"); shift 2 ;;
    --progress) need "$@"; extra+=("$flag" "$2"); shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "streaming.sh: error: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done
# The reference always runs on CUDA device --gpu_id (default 0); without --gpu_id/--device we use
# the CPU (sf-denoise's DiT runs there today).
[ -n "$device" ] || device=cpu
[ "$chunk_frames" -ge 1 ] || { echo "streaming.sh: error: --chunk_frames must be at least 1" >&2; exit 2; }
# block sizes [3]·⌊num_frames/3⌋ (independent_first_frame false), num_frames follows
blocks=$((num_frames / 3))
if [ $((blocks * 3)) -ne "$num_frames" ]; then
    echo "streaming.sh: adjusting num_frames from $num_frames to $((blocks * 3))" >&2
    num_frames=$((blocks * 3))
fi
[ "$num_frames" -ge 3 ] || { echo "streaming.sh: error: --num_frames must be at least 3" >&2; exit 2; }
if [ "$save_video" = 1 ] && [ -z "$video_path" ]; then
    video_path=${output_path//.pt/.mp4} # the reference's output_path.replace('.pt', '.mp4')
fi
mkdir -p -- "$(dirname -- "$output_path")"
[ "$save_video" = 1 ] && mkdir -p -- "$(dirname -- "$video_path")"

denoise=(sf-denoise --model-dir "$model_dir" --config_path "$config_path" --device "$device"
    --num_frames "$num_frames" --height "$height" --width "$width" --seed "$seed"
    --local_attn_size -1 --sink_size 0
    --layer_indices "$layer_index" --tap-mode frames --tap-select seed --chunk_frames "$chunk_frames"
    --prompt "$prompt" --output_path "$output_path" --in - "${extra[@]}")
if [ "$no_checkpoint" = 1 ]; then
    denoise+=(--no_checkpoint)
else
    denoise+=(--checkpoint_path "$checkpoint_path" --use_ema)
fi
encode=(sf-encode --model-dir "$model_dir" --prompt "$prompt" --out - "${extra_encode[@]}")
[ -n "$cache_dir" ] && encode+=(--cache-dir "$cache_dir")
if [ "$save_video" = 1 ]; then
    decode=(sf-decode --model-dir "$model_dir" --in - -o "$video_path" "${extra[@]}")
    "${encode[@]}" | "${denoise[@]}" --out - | "${decode[@]}"
else
    "${encode[@]}" | "${denoise[@]}"
fi
