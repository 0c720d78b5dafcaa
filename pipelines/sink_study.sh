#!/usr/bin/env bash
# sink_study.sh — the attention-sink study (issue 14): the same prompts, seed and noise through three
# checkpoints (base Wan, Self-Forcing DMD, Self-Forcing SID), every layer tapped in probs, frames and
# tokens mode (the sink frame's per-token mass), then `sf-taps compare` and `sf-taps report`. Run through pipelines/sink_study.yaml
# (`sf-run pipelines/sink_study.yaml ...`) or directly:
#
#   pipelines/sink_study.sh [--model-dir DIR] [--prompt S ...] [--seed N] [--num-frames N]
#                           [--height H] [--width W] [--device cpu|cuda|cuda:N] [--layers all|A-B|L,...]
#                           [--config FILE] [--dmd-checkpoint P] [--sid-checkpoint P]
#                           [--dmd-config FILE] [--sid-config FILE] [--out-dir DIR] [--cache-dir DIR]
#                           [--tap-select all|seed|b:B,s:S] [--progress auto|bar|lines|none]
#                           [--sink-ablate K [--sink-ablate-layers L]] [--local-attn-size N] [--sink-size S]
#                           [--sink-rope absolute|realign [--sink-rope-gap N]] [--kv-compress N]
#                           [--pc-budget N [--pc-recent R]]
#
# Writes, per prompt i, OUT/p<i>/{probs,frames,tokens}_{base,dmd,sid[,dmd_ablated]}.safetensors (probs with --tap-cross: the
# prompt's tokens each frame attends to), each checkpoint's video
# (OUT/p<i>/video_{base,dmd,sid}/frame_00000.png ..., decoded by sf-decode from the tokens run's latents),
# OUT/p<i>/compare/ (compare.csv + SVG figures) and OUT/p<i>/report.html (the sink-frame token maps drawn over
# each run's own video frames). The base run uses --config (the DMD
# config: the same 4-step causal schedule for all three) with --no_checkpoint; a missing DMD/SID
# checkpoint is an error (--require-checkpoint), never a silent fallback. The encoder runs once;
# every run replays the same noise (same --seed, sfpipe's RNG). --sink-ablate K adds a fourth run, dmd_ablated: the
# DMD checkpoint with sf-denoise's sink ablation in --sink-ablate-layers (default all), tapped like the others: its
# ablated layers' taps hold the key frames they attended, so the report shows where their mass went and how the
# other layers answer (an ablated layer is marked with its first attended frame). --local-attn-size N --sink-size S:
# every run with sf-denoise's rolling KV cache (a long video: --num-frames past the window); --sink-rope realign adds
# dmd_realigned, the DMD checkpoint with the sink's keys moved in time to the recent frames once eviction opens a
# gap (Deep Sink; --sink-rope-gap N frames before them), tapped like the others; --kv-compress N adds dmd_compressed,
# the DMD checkpoint whose cache keeps, per head, the N frames' worth of most attended tokens at each eviction
# (Participative Compression; its taps mark those slots with key frame −1); --pc-budget N [--pc-recent R] adds
# dmd_deepforcing, the DMD checkpoint with Deep Forcing's released compression and sink (sf-denoise --pc-budget, e.g.
# --local-attn-size 21 --sink-size 10 --pc-budget 16, its settings). Every flag also works in
# --underscore_form, as --flag=value and abbreviated to a unique prefix (pipelines/flags.sh).
set -euo pipefail
here=$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")
for bin in "$here/../${SF_BUILD:-build}/bin" "$here/../../../bin"; do # the build tree's or an install's
    if [ -x "$bin/sf-denoise" ]; then PATH="$(cd -- "$bin" && pwd -P):$PATH"; break; fi
done
die() { echo "sink_study.sh: error: $*" >&2; exit 2; }
. "$here/flags.sh"

model_dir=${SF_MODEL_DIR:-wan_models/Wan2.1-T2V-1.3B}
prompts=()
seed=42 num_frames=21 height=480 width=832 device=cpu layers=all select=all progress=none
config=configs/self_forcing_dmd.yaml dmd_config=configs/self_forcing_dmd.yaml sid_config=configs/self_forcing_sid.yaml
dmd_ckpt=checkpoints/self_forcing_dmd.pt sid_ckpt=checkpoints/self_forcing_sid.pt
out_dir=sink_study cache_dir= ablate=0 ablate_layers=all las= sink= sink_rope=absolute rope_gap= kvc=0 pcb=0 pcr=
sf_flags_expand sink_study.sh --help --model-dir= --prompt= --seed= --num-frames= --height= --width= --device= --layers= \
    --config= --dmd-checkpoint= --sid-checkpoint= --dmd-config= --sid-config= --out-dir= --cache-dir= --tap-select= \
    --progress= --sink-ablate= --sink-ablate-layers= --local-attn-size= --sink-size= --sink-rope= --sink-rope-gap= --kv-compress= \
    --pc-budget= --pc-recent= -- "$@"
set -- "${sf_flags[@]}"
while [ $# -gt 0 ]; do
    flag=${1//_/-}
    case "$flag" in
    -h | --help) sf_usage; exit 0 ;;
    --model-dir | --prompt | --seed | --num-frames | --height | --width | --device | --layers | --config | \
        --dmd-checkpoint | --sid-checkpoint | --dmd-config | --sid-config | --out-dir | --cache-dir | --tap-select | --progress | \
        --sink-ablate | --sink-ablate-layers | --local-attn-size | --sink-size | --sink-rope | --sink-rope-gap | --kv-compress | \
        --pc-budget | --pc-recent)
        [ $# -ge 2 ] || die "option $1 needs a value"
        case "$flag" in
        --model-dir) model_dir=$2 ;; --prompt) prompts+=("$2") ;; --seed) seed=$2 ;; --num-frames) num_frames=$2 ;;
        --height) height=$2 ;; --width) width=$2 ;; --device) device=$2 ;; --layers) layers=$2 ;; --config) config=$2 ;;
        --dmd-checkpoint) dmd_ckpt=$2 ;; --sid-checkpoint) sid_ckpt=$2 ;; --dmd-config) dmd_config=$2 ;;
        --sid-config) sid_config=$2 ;; --out-dir) out_dir=$2 ;; --cache-dir) cache_dir=$2 ;; --tap-select) select=$2 ;;
        --progress) progress=$2 ;; --sink-ablate) ablate=$2 ;; --sink-ablate-layers) ablate_layers=$2 ;;
        --local-attn-size) las=$2 ;; --sink-size) sink=$2 ;; --sink-rope) sink_rope=$2 ;; --sink-rope-gap) rope_gap=$2 ;;
        --kv-compress) kvc=$2 ;; --pc-budget) pcb=$2 ;; --pc-recent) pcr=$2 ;;
        esac
        shift 2 ;;
    *) die "unknown option '$1' (see --help)" ;;
    esac
done
[ ${#prompts[@]} -gt 0 ] || prompts=("A majestic eagle soaring through a cloudy sky, cinematic lighting")
for v in "$seed" "$num_frames" "$height" "$width" "${ablate:-0}" "${sink:-0}" "${rope_gap:-0}" "$kvc" "${pcb:-0}" "${pcr:-0}"; do [[ "$v" =~ ^[0-9]+$ ]] || die "expected a non-negative integer, got '$v'"; done
[ -n "$ablate" ] || ablate=0
for c in "$dmd_ckpt" "$sid_ckpt"; do [ -f "$c" ] || die "checkpoint $c not found (give --dmd-checkpoint / --sid-checkpoint)"; done
runs=(base dmd sid)
[ -z "$las" ] || [[ "$las" =~ ^(-1|[0-9]+)$ ]] || die "--local-attn-size: expected -1 or a number of frames, got '$las'"
window=() # the rolling cache, every run's
[ -n "$las" ] && window+=(--local_attn_size "$las")
[ -n "$sink" ] && window+=(--sink_size "$sink")
case $sink_rope in absolute) [ -z "$rope_gap" ] || die "--sink-rope-gap goes with --sink-rope realign" ;; realign) ;;
*) die "--sink-rope must be absolute or realign" ;; esac
realign=(--sink-rope realign ${rope_gap:+--sink-rope-gap "$rope_gap"})
if [ "$sink_rope" = realign ]; then # the realigned run, checked by sf-denoise before any work (it needs a sink)
    why=$(sf-denoise --check --model-dir "$model_dir" --config_path "$dmd_config" --no_checkpoint --num_frames "$num_frames" \
        --height "$height" --width "$width" "${window[@]}" "${realign[@]}" --log-level error 2>&1) || die "${why##*error: }"
    runs+=(dmd_realigned)
fi
if [ "$kvc" -gt 0 ]; then # the compressed run, checked by sf-denoise before any work (a rolling cache that holds it)
    why=$(sf-denoise --check --model-dir "$model_dir" --config_path "$dmd_config" --no_checkpoint --num_frames "$num_frames" \
        --height "$height" --width "$width" "${window[@]}" --kv-compress "$kvc" --log-level error 2>&1) || die "${why##*error: }"
    runs+=(dmd_compressed)
fi
[ -n "$pcb" ] || pcb=0
[ -z "$pcr" ] || [ "$pcb" -gt 0 ] || die "--pc-recent goes with --pc-budget N"
deepf=(--pc-budget "$pcb" ${pcr:+--pc-recent "$pcr"})
if [ "$pcb" -gt 0 ]; then # Deep Forcing's released rule, checked by sf-denoise before any work
    why=$(sf-denoise --check --model-dir "$model_dir" --config_path "$dmd_config" --no_checkpoint --num_frames "$num_frames" \
        --height "$height" --width "$width" "${window[@]}" "${deepf[@]}" --log-level error 2>&1) || die "${why##*error: }"
    runs+=(dmd_deepforcing)
fi
if [ "$ablate" -gt 0 ]; then # the ablated run; its layers checked against the model before any work
    size=(--model-dir "$model_dir" --num_frames "$num_frames" --height "$height" --width "$width" --no_checkpoint --log-level error)
    ablated=$(sf-denoise --check --list-layers "${size[@]}" --layer_indices "$ablate_layers" 2>&1) ||
        die "--sink-ablate-layers: ${ablated##*--layer_indices: }"
    runs+=(dmd_ablated)
fi
mkdir -p "$out_dir"

encode=(sf-encode --model-dir "$model_dir" --save-embeds "$out_dir/embeds.safetensors" --log-level warn)
[ -n "$cache_dir" ] && encode+=(--cache-dir "$cache_dir")
for p in "${prompts[@]}"; do encode+=(--prompt "$p"); done
"${encode[@]}"

common=(--model-dir "$model_dir" --seed "$seed" --num_frames "$num_frames" --height "$height" --width "$width"
        --device "$device" --layer_indices "$layers" --tap-select "$select" --progress "$progress" --log-level warn
        "${window[@]}")
for i in "${!prompts[@]}"; do
    d="$out_dir/p$i"
    mkdir -p "$d"
    for run in "${runs[@]}"; do
        case $run in
        base) ck=(--config_path "$config" --no_checkpoint) ;;
        dmd) ck=(--config_path "$dmd_config" --checkpoint_path "$dmd_ckpt" --require-checkpoint) ;;
        dmd_ablated) ck=(--config_path "$dmd_config" --checkpoint_path "$dmd_ckpt" --require-checkpoint
                         --sink-ablate "$ablate" --sink-ablate-layers "$ablate_layers") ;;
        dmd_realigned) ck=(--config_path "$dmd_config" --checkpoint_path "$dmd_ckpt" --require-checkpoint "${realign[@]}") ;;
        dmd_compressed) ck=(--config_path "$dmd_config" --checkpoint_path "$dmd_ckpt" --require-checkpoint --kv-compress "$kvc") ;;
        dmd_deepforcing) ck=(--config_path "$dmd_config" --checkpoint_path "$dmd_ckpt" --require-checkpoint "${deepf[@]}") ;;
        sid) ck=(--config_path "$sid_config" --checkpoint_path "$sid_ckpt" --require-checkpoint) ;;
        esac
        for mode in probs frames tokens; do
            echo "sink_study: prompt $i, $run, $mode" >&2
            lat=() # the video is the same in every mode (same seed and noise): kept from the last run
            [ "$mode" = tokens ] && lat=(--save-latents "$d/latents_$run.safetensors")
            [ "$mode" = probs ] && lat=(--tap-cross) # and which words each frame looks at
            sf-denoise "${common[@]}" "${ck[@]}" --prompt-embeds "$out_dir/embeds.safetensors:emb.$i" \
                --prompt "${prompts[$i]}" --tap-mode "$mode" --output_path "$d/${mode}_$run.safetensors" "${lat[@]}"
        done
        rm -rf "$d/video_$run" # this script's own output folder: a rerun replaces it (sf-decode writes a new one only)
        sf-decode --model-dir "$model_dir" --device "$device" --latents "$d/latents_$run.safetensors" \
            -o "$d/video_$run/" --progress "$progress" --log-level warn
    done
    probs=() toks=() vids=()
    for run in "${runs[@]}"; do
        probs+=("$d/probs_$run.safetensors") toks+=("$d/tokens_$run.safetensors") vids+=("$d/video_$run")
    done
    sf-taps compare "${probs[@]}" --labels "${runs[@]}" -o "$d/compare" --log-level warn
    sf-taps report "${probs[@]}" --labels "${runs[@]}" -o "$d/report.html" --log-level warn \
        --tokens "${toks[@]}" --frames "${vids[@]}"
    echo "sink_study: $d/report.html" >&2
done
