#!/usr/bin/env bash
# highframe.sh — the reference's experiments/run_extraction_highframe.py
# (one layer's frame-level attention over long videos), same flags and defaults:
#
#   pipelines/highframe.sh [--config_path P] [--checkpoint_path P] [--output_path P] [--prompt S]
#       [--num_frames N] [--layer_index N] [--no_checkpoint] [--use_ema] [--seed N] [--gpu_id N] [--force]
#
# The reference script computes what run_extraction_streaming.py does (per block its step-0 logits,
# averaged per query frame and key frame: f16 [heads, T, T], and the last block's rows' mean) with
# other defaults (--output_path cache/attention_highframe.pt --num_frames 27 --layer_index 15),
# so this is pipelines/streaming.sh with those defaults: the same .pt dict, with streaming.sh's
# 'extraction_method' and 'chunk_frames' keys as well. Every streaming.sh flag works here too
# (--model-dir, --device, --height/--width, --save_video ...: pipelines/streaming.sh --help), in every
# spelling (--flag=value, --flag-name, a unique prefix); a flag given again takes its last value.
set -euo pipefail
. "$(dirname -- "$0")/flags.sh"
for a in "$@"; do
    case "$a" in -h | --help) sf_usage; exit 0 ;; esac
done
exec "$(dirname -- "$0")/streaming.sh" --output_path cache/attention_highframe.pt --num_frames 27 --layer_index 15 "$@"
