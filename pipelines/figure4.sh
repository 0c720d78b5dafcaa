#!/usr/bin/env bash
# figure4.sh — the reference's experiments/run_extraction_figure4.py, same flags and defaults,
# as a shell pipeline: sf-encode | sf-denoise (attention taps) → the same .pt dict layout.
#
#   pipelines/figure4.sh [--config_path P] [--checkpoint_path P] [--output_path P] [--prompt S]
#                        [--num_frames N] [--layer_indices N ...] [--no_checkpoint] [--use_ema]
#                        [--seed N] [--gpu_id N]
#                        [--model-dir DIR] [--device cpu|cuda|cuda:N] [--height H] [--width W]
#                        [--encode-device cpu|cuda|cuda:N] [--cache-dir DIR] [--log-level L]
#                        [--progress auto|bar|lines|none]
# Every flag also works in --dash-form, as --flag=value and abbreviated to a unique prefix
# (--layer 0 4), like argparse. Like the reference: paths are relative to the working directory,
# the output's parent directory is not created, --use_ema is always on, --layer_indices are
# integers; the .pt's layer_indices are as given (order, repeats), its attention_weights one per
# layer, ascending. A layer the model does not have is an error before anything runs.
set -euo pipefail

ref_prog=figure4.sh
. "$(dirname -- "$0")/reference_flags.sh"
output_path=cache/attention_cache_figure4.pt
num_frames=21
layer_indices=(0 4)

ref_parse_layer_script "$@"
dir=$(dirname -- "$output_path")
[ -d "$dir" ] || { echo "figure4.sh: error: output directory '$dir' does not exist (like the reference; mkdir -p $dir)" >&2; exit 1; }
ref_layers --layer_indices "${layer_indices[@]}"

ref_commands "$num_frames"
denoise+=(--layer_indices "${layer_indices[@]}" --tap-mode logits --tap-select seed --output_path "$output_path")
ref_check
"${encode[@]}" | "${denoise[@]}"
