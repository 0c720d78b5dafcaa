#!/usr/bin/env bash
# full_attention.sh — the reference's experiments/run_extraction_full_attention.py, same flags and
# defaults, as a shell pipeline: sf-encode | sf-denoise (frame-level taps) → the same .pt dict.
#
#   pipelines/full_attention.sh [--config_path P] [--checkpoint_path P] [--output_path P] [--prompt S]
#                               [--num_frames N] [--layer_indices N ...] [--no_checkpoint] [--use_ema]
#                               [--seed N] [--gpu_id N]
#                               [--model-dir DIR] [--device cpu|cuda|cuda:N] [--height H] [--width W]
#                               [--encode-device cpu|cuda|cuda:N] [--cache-dir DIR] [--log-level L]
#                               [--progress auto|bar|lines|none]
# Every flag also works in --dash-form, as --flag=value and abbreviated to a unique prefix, like
# argparse. Like the reference: per layer (one entry each, ascending) the frame-level mean logits of
# each block's first forward with all its key frames (step 0) in a [heads, num_frames, num_frames]
# float16 matrix, layer_indices stored as typed, block_sizes from the config, the output's parent
# directory created, --use_ema always on; num_frames must fill whole blocks (the reference's
# pipeline asserts it). A layer the model does not have is an error before anything runs.
set -euo pipefail

ref_prog=full_attention.sh
. "$(dirname -- "$0")/reference_flags.sh"
output_path=cache/attention_full_matrix.pt
num_frames=21
layer_indices=(0 4)

ref_parse_layer_script "$@"
ref_layers --layer_indices "${layer_indices[@]}"
ref_mkdir "$(dirname -- "$output_path")"

ref_commands "$num_frames"
denoise+=(--layer_indices "${layer_indices[@]}" --tap-mode frames --tap-select seed --pt-layout full_attention
    --output_path "$output_path")
ref_check
"${encode[@]}" | "${denoise[@]}"
