#!/usr/bin/env bash
# streaming_distributed.sh — the reference's experiments/run_extraction_streaming_distributed.py,
# same flags, defaults and files, without torchrun: sf-encode | sf-denoise (frame-level taps) per rank.
#
#   pipelines/streaming_distributed.sh [--mode multi_layer|multi_prompt] [--config_path P]
#       [--checkpoint_path P] [--output_dir D] [--num_frames N] [--chunk_frames N] [--no_checkpoint]
#       [--use_ema] [--seed N] [--force] [--layer_indices A,B,...] [--all_layers] [--prompt S]
#       [--prompts_file F] [--layer_index N]
#       [--world_size W] [--model-dir DIR] [--device cpu|cuda|cuda:N] [--height H] [--width W]
#       [--encode-device cpu|cuda|cuda:N] [--cache-dir DIR] [--log-level L]
#       [--progress auto|bar|lines|none]
# multi_layer: D/layer<L>.pt for each of --layer_indices (or every layer of the model with
# --all_layers), extraction_method 'distributed_streaming'. multi_prompt: D/prompt<IIII>_layer<L>.pt
# for each non-empty line of --prompts_file (stripped; IIII its index among them), layer --layer_index.
# Each file is the streaming dict of that layer: step 0 of every block, global attention, num_frames
# rounded down to whole blocks of the config (the reference's own files hold zeros: its capture is
# never called; see docs/reference-scripts.md). Ranks: with W ranks (torchrun --nproc_per_node W) the
# reference gives rank R a contiguous share of the layers or prompts (the first len % W ranks one
# more). sfpipe taps all of a rank's layers in one run, so no torchrun is needed: --world_size W
# (default 1) runs ranks 0..W-1 here, one after another; under a launcher that sets RANK and
# WORLD_SIZE (torchrun --no-python, srun wrappers) only rank RANK runs (--device cuda: cuda:LOCAL_RANK).
# Seeds and keys follow the reference: multi_layer's noise seed is --seed + rank and its
# rank / world_size keys that rank's; multi_prompt's seed is --seed + prompt index, whatever the ranks.
# Every flag also works in --dash-form, as --flag=value and abbreviated to a unique prefix, like
# argparse; bad flags, layers the model lacks and a missing prompts file are errors before any
# stage starts. --force is accepted (no GPU memory guard on the CPU path).
set -euo pipefail

ref_prog=streaming_distributed.sh
. "$(dirname -- "$0")/reference_flags.sh"
mode=multi_layer
output_dir=cache/distributed
num_frames=60
chunk_frames=3
layer_list=0,8,16,24
all_layers=0
prompts_file=prompts/test_prompts.txt
layer_index=15
world_size=

distributed_flag() {
    ref_used=2
    case "$1" in
    --mode) ref_need "$@"; mode=$2 ;;
    --output-dir) ref_need "$@"; output_dir=$2 ;;
    --num-frames) ref_need "$@"; ref_int "$1" "$2"; num_frames=$2 ;;
    --chunk-frames) ref_need "$@"; ref_int "$1" "$2"; chunk_frames=$2 ;;
    --force) ref_used=1 ;;
    --layer-indices) ref_need "$@"; layer_list=$2 ;; # a string, split on ',' in multi_layer mode
    --all-layers) all_layers=1; ref_used=1 ;;
    --prompts-file) ref_need "$@"; prompts_file=$2 ;;
    --layer-index) # type=int in either mode; a layer of the model in multi_prompt mode (ref_layers below)
        ref_need "$@"; [[ "$2" =~ ^-?[0-9]+$ ]] || { echo "$ref_prog: error: argument --layer_index: invalid int value: '$2'" >&2; exit 2; }
        layer_index=$2 ;;
    --world-size) ref_need "$@"; ref_dec world_size "$1" "$2" ;;
    *) ref_used=0 ;;
    esac
}
ref_parse distributed_flag --mode= --output-dir= --num-frames= --chunk-frames= --force --layer-indices= --all-layers \
    --prompts-file= --layer-index= --world-size= -- "$@"
case "$mode" in multi_layer | multi_prompt) ;;
*) echo "$ref_prog: error: argument --mode: invalid choice: '$mode' (choose from 'multi_layer', 'multi_prompt')" >&2; exit 2 ;;
esac
[ "$chunk_frames" -ge 1 ] || { echo "$ref_prog: error: --chunk_frames must be at least 1" >&2; exit 2; }

# the ranks to run: RANK of WORLD_SIZE under a launcher, else 0..W-1 of --world_size W
if [ -n "${RANK:-}" ]; then
    [ -z "$world_size" ] || { echo "$ref_prog: error: --world_size with RANK=$RANK set by a launcher: give one of them" >&2; exit 2; }
    [[ "$RANK" =~ ^[0-9]{1,7}$ && "${WORLD_SIZE:-}" =~ ^[0-9]{1,7}$ ]] && [ "$RANK" -lt "$WORLD_SIZE" ] ||
        { echo "$ref_prog: error: RANK=$RANK needs WORLD_SIZE above it (got '${WORLD_SIZE:-}')" >&2; exit 2; }
    world_size=$((10#$WORLD_SIZE)) ranks=("$((10#$RANK))")
    [[ "$device" == cuda && "${LOCAL_RANK:-}" =~ ^[0-9]+$ ]] && device=cuda:$LOCAL_RANK
    [[ "$encode_device" == cuda && "${LOCAL_RANK:-}" =~ ^[0-9]+$ ]] && encode_device=cuda:$LOCAL_RANK
else
    world_size=${world_size:-1}
    [ "$world_size" -ge 1 ] && [ "$world_size" -le 1048576 ] ||
        { echo "$ref_prog: error: --world_size must be in 1..1048576" >&2; exit 2; }
    mapfile -t ranks < <(seq 0 $((world_size - 1)))
fi

# share N R: rank R's items [share_start, share_end) of N, the reference's split over world_size
share() {
    local per=$(($1 / world_size)) rem=$(($1 % world_size)) r=$2
    if [ "$r" -lt "$rem" ]; then share_start=$((r * (per + 1))) share_end=$((r * (per + 1) + per + 1))
    else share_start=$((rem * (per + 1) + (r - rem) * per)) share_end=$((rem * (per + 1) + (r - rem) * per + per)); fi
}

# the items: layers (multi_layer) or prompts (multi_prompt)
items=()
if [ "$mode" = multi_layer ]; then
    if [ "$all_layers" = 0 ]; then
        IFS=, read -r -a items <<<"$layer_list," # a trailing ',' keeps an empty last item: an error, as int('')
        for i in "${!items[@]}"; do # int(x): surrounding blanks allowed
            items[i]=${items[i]#"${items[i]%%[![:space:]]*}"} items[i]=${items[i]%"${items[i]##*[![:space:]]}"}
        done
        ref_layers --layer_indices "${items[@]}"
    fi
else
    [ -f "$prompts_file" ] && [ -r "$prompts_file" ] ||
        { echo "$ref_prog: error: --prompts_file $prompts_file: no such readable file" >&2; exit 1; }
    while IFS= read -r line || [ -n "$line" ]; do # Python's line.strip(), universal newlines
        line=${line#"${line%%[![:space:]]*}"} line=${line%"${line##*[![:space:]]}"}
        [ -n "$line" ] && items+=("$line")
    done < <(tr '\r' '\n' <"$prompts_file")
    ref_layers --layer_index "$layer_index"
    ref_dec layer_index --layer_index "$layer_index"
fi

ref_commands "$num_frames"
base=("${denoise[@]}" --round-frames --local_attn_size -1 --sink_size 0 --tap-mode frames --tap-select seed
    --chunk_frames "$chunk_frames")
if [ "$mode" = multi_layer ] && [ "$all_layers" = 1 ]; then # the model's layers (the reference: range(30))
    denoise=("${base[@]}" --layer_indices all)
    ref_layer_flag=--all_layers
    ref_check
    read -r -a items < <("${denoise[@]}" --list-layers --log-level error)
fi

# every rank's runs: seed, layers, output, recorded keys — all checked before the first one starts
runs=()
for r in "${ranks[@]}"; do
    share "${#items[@]}" "$r"
    if [ "$share_start" -ge "$share_end" ]; then
        echo "$ref_prog: rank $r of $world_size: no ${mode#multi_}s assigned" >&2
        continue
    fi
    if [ "$mode" = multi_layer ]; then
        runs+=("$r")
    else
        for ((i = share_start; i < share_end; i++)); do runs+=("$i"); done
    fi
done
[ ${#runs[@]} -gt 0 ] || exit 0
ref_mkdir "$output_dir"

# run_cmd R|I: the encode and denoise arrays of one run (a rank's layers, or one prompt)
run_cmd() {
    if [ "$mode" = multi_layer ]; then
        share "${#items[@]}" "$1"
        ref_commands "$num_frames"
        denoise=("${base[@]}" --seed $((seed + $1)) --layer_indices "${items[@]:share_start:share_end-share_start}"
            --pt-layout distributed_streaming --pt-rank "$1" --pt-world-size "$world_size" --output_path "$output_dir/layer{layer}.pt")
    else
        local p=$prompt
        prompt=${items[$1]}
        ref_commands "$num_frames"
        prompt=$p
        denoise=("${base[@]}" --seed $((seed + $1)) --layer_indices "$layer_index" --prompt "${items[$1]}"
            --pt-layout distributed_multi_prompt --pt-prompt-index "$1"
            --output_path "$output_dir/$(printf 'prompt%04d_layer%d' "$1" "$layer_index").pt")
    fi
}
for x in "${runs[@]}"; do
    run_cmd "$x"
    ref_check
    if [ "$mode" = multi_prompt ]; then break; fi # the prompts' runs differ only in prompt, seed and file
done
# multi_prompt: the encoder loads once for all the prompts, which the runs then find in the cache
if [ "$mode" = multi_prompt ] && [ ${#runs[@]} -gt 1 ]; then
    for x in "${runs[@]}"; do printf '%s\n' "${items[$x]}"; done | "${encode_base[@]}" --prompts - --cache-only
fi
for x in "${runs[@]}"; do
    run_cmd "$x"
    "${encode[@]}" | "${denoise[@]}"
done
