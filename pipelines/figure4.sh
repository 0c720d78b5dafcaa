#!/usr/bin/env bash
# figure4.sh — the reference's experiments/run_extraction_figure4.py, same flags and defaults,
# as a shell pipeline: sf-encode | sf-denoise (attention taps) → the same .pt dict layout.
#
#   pipelines/figure4.sh [--config_path P] [--checkpoint_path P] [--output_path P] [--prompt S]
#                        [--num_frames N] [--layer_indices N ...] [--no_checkpoint] [--use_ema]
#                        [--seed N] [--gpu_id N]
#                        [--model-dir DIR] [--device cpu|cuda|cuda:N] [--height H] [--width W]
#                        [--cache-dir DIR] [--log-level L] [--progress auto|none]
# Every flag also works in --dash-form. Like the reference: paths are relative to the working
# directory, the output's parent directory is not created, --use_ema is always on.
set -euo pipefail
usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; }

config_path=configs/self_forcing_dmd.yaml
checkpoint_path=checkpoints/self_forcing_dmd.pt
output_path=cache/attention_cache_figure4.pt
prompt="A majestic eagle soaring through a cloudy sky, cinematic lighting"
num_frames=21
layer_indices=(0 4)
no_checkpoint=0
seed=42
device=
model_dir=${SF_MODEL_DIR:-wan_models/Wan2.1-T2V-1.3B}
height=480
width=832
cache_dir=
extra_encode=()
extra_denoise=()

need() { [ $# -ge 2 ] || { echo "figure4.sh: error: option $1 needs a value" >&2; exit 2; }; }
while [ $# -gt 0 ]; do
    flag=${1//_/-}
    case "$flag" in
    --config-path) need "$@"; config_path=$2; shift 2 ;;
    --checkpoint-path) need "$@"; checkpoint_path=$2; shift 2 ;;
    --output-path) need "$@"; output_path=$2; shift 2 ;;
    --prompt) need "$@"; prompt=$2; shift 2 ;;
    --num-frames) need "$@"; num_frames=$2; shift 2 ;;
    --layer-indices)
        shift; layer_indices=()
        while [ $# -gt 0 ] && [[ "$1" != --* ]]; do layer_indices+=("$1"); shift; done
        [ ${#layer_indices[@]} -gt 0 ] || { echo "figure4.sh: error: --layer_indices needs at least one value" >&2; exit 2; } ;;
    --no-checkpoint) no_checkpoint=1; shift ;;
    --use-ema) shift ;; # always true in the reference script
    --seed) need "$@"; seed=$2; shift 2 ;;
    --gpu-id) need "$@"; device="cuda:$2"; shift 2 ;;
    --device) need "$@"; device=$2; shift 2 ;;
    --model-dir) need "$@"; model_dir=$2; shift 2 ;;
    --height) need "$@"; height=$2; shift 2 ;;
    --width) need "$@"; width=$2; shift 2 ;;
    --cache-dir) need "$@"; cache_dir=$2; shift 2 ;;
    --log-level) need "$@"; extra_encode+=("$flag" "$2"); extra_denoise+=("$flag" "$2"); shift 2 ;;
    --progress) need "$@"; extra_denoise+=("$flag" "$2"); shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "figure4.sh: error: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done
# The reference always runs on CUDA device --gpu_id (default 0). sf-denoise's DiT runs on the
# CPU today, so without --gpu_id/--device we use the CPU; --gpu_id N selects cuda:N.
[ -n "$device" ] || device=cpu
[[ "$num_frames" =~ ^[0-9]+$ ]] || { echo "figure4.sh: error: --num_frames must be an integer" >&2; exit 2; }
dir=$(dirname -- "$output_path")
[ -d "$dir" ] || { echo "figure4.sh: error: output directory '$dir' does not exist" >&2; exit 1; }

denoise=(sf-denoise --model-dir "$model_dir" --config_path "$config_path" --device "$device"
    --num_frames "$num_frames" --height "$height" --width "$width" --seed "$seed"
    --layer_indices "${layer_indices[@]}" --tap-mode logits --tap-select seed
    --output_path "$output_path" --in - "${extra_denoise[@]}")
if [ "$no_checkpoint" = 1 ]; then
    denoise+=(--no_checkpoint)
else
    denoise+=(--checkpoint_path "$checkpoint_path" --use_ema)
fi
encode=(sf-encode --model-dir "$model_dir" --prompt "$prompt" --out - "${extra_encode[@]}")
[ -n "$cache_dir" ] && encode+=(--cache-dir "$cache_dir")
"${encode[@]}" | "${denoise[@]}"
