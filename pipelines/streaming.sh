#!/usr/bin/env bash
# streaming.sh — the reference's experiments/run_extraction_streaming.py, same flags and defaults,
# as a shell pipeline: sf-encode | sf-denoise (frame-level taps) [| sf-decode] → the same .pt dict.
#
#   pipelines/streaming.sh [--config_path P] [--checkpoint_path P] [--output_path P] [--prompt S]
#                          [--num_frames N] [--layer_index N] [--chunk_frames N] [--no_checkpoint]
#                          [--use_ema] [--seed N] [--gpu_id N] [--force] [--save_video]
#                          [--video_path P]
#                          [--model-dir DIR] [--device cpu|cuda|cuda:N] [--height H] [--width W]
#                          [--encode-device cpu|cuda|cuda:N] [--cache-dir DIR] [--log-level L]
#                          [--progress auto|bar|lines|none]
# Every flag also works in --dash-form, as --flag=value and abbreviated to a unique prefix, like
# argparse; a layer the model does not have is an error before anything runs. Like the reference:
# global attention over the whole video (no eviction), num_frames rounded down to whole blocks of
# the config (its block_sizes: [1, F, F, ...] with independent_first_frame, else [F, ...]), the
# output's parent directory is created, --use_ema is always on, --save_video writes an mp4
# (default: output path with .pt → .mp4).
# --chunk_frames only sets the recorded chunk_frames (our frame means need no chunking); --force
# is accepted (there is no GPU memory guard on the CPU path).
set -euo pipefail

ref_prog=streaming.sh
. "$(dirname -- "$0")/reference_flags.sh"
output_path=cache/attention_streaming.pt
num_frames=120
layer_index=15
chunk_frames=3
save_video=0
video_path=

streaming_flag() {
    ref_used=2
    case "$1" in
    --output-path) ref_need "$@"; output_path=$2 ;;
    --num-frames) ref_need "$@"; ref_dec num_frames "$1" "$2" ;;
    --layer-index) ref_need "$@"; layer_index=$2 ;; # checked by ref_layers below
    --chunk-frames) ref_need "$@"; ref_int "$1" "$2"; chunk_frames=$2 ;;
    --force) ref_used=1 ;;
    --save-video) save_video=1; ref_used=1 ;;
    --video-path) ref_need "$@"; video_path=$2 ;;
    *) ref_used=0 ;;
    esac
}
ref_parse streaming_flag --output-path= --num-frames= --layer-index= --chunk-frames= --force --save-video --video-path= -- "$@"
ref_layers --layer_index "$layer_index"
[ "$chunk_frames" -ge 1 ] || { echo "streaming.sh: error: --chunk_frames must be at least 1" >&2; exit 2; }
if [ "$save_video" = 1 ] && [ -z "$video_path" ]; then
    video_path=${output_path//.pt/.mp4} # the reference's output_path.replace('.pt', '.mp4')
fi
ref_mkdir "$(dirname -- "$output_path")"
[ "$save_video" = 1 ] && ref_mkdir "$(dirname -- "$video_path")"

ref_commands "$num_frames"
denoise+=(--local_attn_size -1 --sink_size 0 --round-frames
    --layer_indices "$layer_index" --tap-mode frames --tap-select seed --chunk_frames "$chunk_frames"
    --prompt "$prompt" --output_path "$output_path")
ref_check
if [ "$save_video" = 1 ]; then
    decode=(sf-decode --model-dir "$model_dir" --height "$height" --width "$width" --in - -o "$video_path" "${extra_denoise[@]}")
    "${encode[@]}" | "${denoise[@]}" --out - | "${decode[@]}"
else
    "${encode[@]}" | "${denoise[@]}"
fi
