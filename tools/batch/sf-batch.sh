#!/usr/bin/env bash
# sf-batch — a prompt file → a folder of videos, the reference inference.py's flags, resumable;
# N local workers or one Slurm job array. Installed as build/bin/sf-batch (tests/bats/sf-batch.bats).
#
#   sf-batch --data_path PROMPTS.txt --output_folder DIR [--num_output_frames N] [--num_samples N]
#            [--save_with_index] [--use_ema | --no_ema] [--seed N] [--config_path P]
#            [--checkpoint_path P | --no_checkpoint] [--extended_prompt_path F] [--model-dir DIR]
#            [--device cpu|cuda|cuda:N | --gpu_id N] [--encode-device D] [--vae FILE] [--fp8] [--workers N] [--height H] [--width W]
#            [--threads N] [--cache-dir DIR] [--layer_indices L ... [--tap-mode M] [--tap-select S]
#            [--tap-token-frames K] [--tap-cross]] [--sink-ablate K [--sink-ablate-layers L ...]]
#            [--sink-rope absolute|realign [--sink-rope-gap N]] [--kv-compress N]
#            [--deep-forcing] [--Budget N] [--Recent N] [--is_ds_only N]
#            [--retries N] [--dry-run | -n]
#            [--progress none|lines|bar|auto] [--log-level L] [--noise-rng torch-cuda|sfpipe]
#            [--torchrun W[:P]]
#   sf-batch --i2v --data_path IMAGE_DIR (the flags above): image-to-video
#   sf-batch --slurm [--partition P] [--account A] [--time T] [--gres gpu:1] [--qos Q]
#            [--constraint C] [--mem M] [--cpus-per-task N] [--job-name J] [--nodelist L]
#            [--exclude L] [--sbatch-arg ARG]... [--requeue (default) | --no-requeue] [--wait]
#            (the flags above)
#   sf-batch --status [DIR | --output_folder DIR]
#   sf-batch -h | --help | --version
#
# Every flag also works in --dash-form. A video is one (prompt line, sample): prompt line i
# (0-based, like the reference's idx), sample s < num_samples. Its noise is the reference's: what
# inference.py draws for it after torch.manual_seed(seed) — prompt after prompt, num_samples at once
# (sf-denoise --noise-rng torch-cuda --noise-sequence i --noise-batch num_samples:s), fixed per
# video whatever the worker count or order; --noise-rng sfpipe uses sfpipe's own generator seeded
# seed + i*num_samples + s instead. --torchrun W[:P]: the noise of the reference run as
# `torchrun --nproc_per_node P` on W processes in all (P = W: one node) — rank r = i mod W seeds
# seed + (r mod P) (its LOCAL_RANK) and makes items r, r+W, ... in turn, so item i is video i div W of
# that loop. Blank lines make no video (the reference makes one of the empty
# prompt and draws its noise; the indices are the same). Its file is the reference's name,
# "<i>-<s>_ema.mp4" / "<i>-<s>_regular.mp4" with --save_with_index, else "<prompt[:100]>-<s>.mp4"
# ('/' → '_', control characters → '_', cut to 200 bytes on a character boundary: NAME_MAX).
# --layer_indices (all, N, A-B as sf-denoise) also writes the taps "<name>.pt" beside each video (the
# figure-4 dict; --tap-select picks its forwards); with --tap-mode frames|probs|tokens or --tap-cross,
# sf-denoise's workbench taps, "<name>.safetensors" with the run's facts (docs/sink-workbench.md).
# --i2v: image-to-video as inference.py --i2v. --data_path is then the reference's image folder
# (target_crop_info_<ratio>.json, a list of items with file_name and caption, and the images in
# <ratio>/): item i is video i, its caption the prompt. The image, resized to --height x --width as the
# reference's transform does, becomes the first latent frame (sf-vae-encode on the --device), and sf-denoise
# --initial-latents generates --num_output_frames - 1 more (the noise the reference draws for them): the
# config must have independent_first_frame and num_output_frames - 1 must fill whole blocks (22 with the
# shipped configs' blocks of 3). The video holds all num_output_frames latent frames, the image's first.
# Locally, --workers N processes each take every N-th video (cuda:w for worker w with --device
# cuda); with --slurm each array task takes its slice. Every video is sf-encode | sf-denoise |
# sf-decode written to DIR/.sf-batch/tmp and renamed into DIR when complete, so a file in DIR is a
# finished video, a rerun does only what is missing, and a killed worker loses its current video.
# The flags are checked first (sf-denoise --check: frames, size, layers, config, weights). The first
# run records the flags that change a video (DIR/.sf-batch/flags); a rerun with other ones is
# refused while the folder holds videos. --progress (default none) goes to each video's log.
# --use_ema is off by default (inference.py's); --no_checkpoint, like no --checkpoint_path, uses
# the base weights; --gpu_id N is --device cuda:N. --encode-device runs the text encoder elsewhere (cpu, or
# cuda: worker w's cuda:w as --device cuda). --vae FILE: sf-decode's checkpoint instead of the model folder's
# Wan2.1_VAE.pth — a TAEHV (taew2_1.pth) decodes several times faster, at some cost in quality. --fp8: sf-denoise's
# (the DiT's block linears in float8, the reference demo's FP8 switch). --sink-ablate K [--sink-ablate-layers L]:
# sf-denoise's attention-sink ablation (those layers skip the first K key frames of each block's context).
# --sink-rope realign [--sink-rope-gap N]: sf-denoise's Deep Sink re-alignment (a config with a rolling cache and a sink).
# --kv-compress N: sf-denoise's Participative Compression of the rolling cache (N frames' worth of kept tokens).
# --deep-forcing: Deep Forcing's inference.py (its authors' release): its Participative Compression with its Deep Sink
# (sf-denoise --pc-budget 16 --pc-recent 4; its --Budget N and --Recent N set them), or with --is_ds_only 1 its Deep
# Sink alone (sf-denoise --sink-rope realign --sink-rope-gap block); --Budget, --Recent and --is_ds_only imply it, and
# --num_output_frames defaults to its 126, --seed to its 1356145. Its configs are the reference's with model_kwargs local_attn_size 21 and
# sink_size 10-14 (e.g. --local_attn_size 21 --sink_size 10 with the shipped configs).
# Exit 0 when every video exists, 1 otherwise (the summary says which failed and why), 2 bad flags;
# SIGINT, SIGTERM or SIGHUP stop every worker and exit 130, 143 or 129 after the summary; when
# sf-batch is SIGKILLed its local workers get SIGTERM (setpriv --pdeathsig) and stop too.
set -uo pipefail
export LC_ALL=C.UTF-8   # ${prompt:0:100} counts characters, as Python's prompt[:100] does

self=$(readlink -f -- "$0")
here=$(dirname -- "$self")
ref_prog=sf-batch
ref=
for f in "$here/../../pipelines/reference_flags.sh" "$here/../share/sfpipe/pipelines/reference_flags.sh" \
    "${SF_ROOT:-/nonexistent}/pipelines/reference_flags.sh"; do
    [ -f "$f" ] && { ref=$f; break; }
done
[ -n "$ref" ] || { echo "sf-batch: error: pipelines/reference_flags.sh not found next to $self" >&2; exit 1; }
. "$ref"
PATH="$here:$PATH"   # the sf-* programs beside this script first

die() { echo "sf-batch: error: $*" >&2; exit 1; }
bad() { echo "sf-batch: error: $*" >&2; exit 2; }
say() { echo "sf-batch: $*" >&2; }
esc() { # $1 on stdout with its control bytes as \xhh and tabs/CRs as spaces, like the stages'
    local LC_ALL=C s=${1//[$'\t\r\n']/ } out= c   # sf_escape_ctl (docs/reliability.md)
    while [[ "$s" == *[[:cntrl:]]* ]]; do
        c=${s%%[[:cntrl:]]*}; out+=$c; s=${s:${#c}}
        printf -v c '\\x%02x' "'${s:0:1}"; out+=$c; s=${s:1}
    done
    printf '%s' "$out$s"
}
plural() { if [ "$1" = 1 ]; then printf '1 %s' "$2"; else printf '%s %ss' "$1" "$2"; fi; }
mkdirs() { # what dir... : one line, not one per folder, when they cannot be made (a read-only folder)
    local e
    e=$(mkdir -p -- "${@:2}" 2>&1) || { e=${e%%$'\n'*}; die "cannot create $1: ${e##*: }"; }
}

# ---- flags: the reference's inference.py, the shared ones (reference_flags.sh), ours ----
seed= checkpoint_path= use_ema=0   # inference.py's defaults: no checkpoint → the base weights (seed below)
data_path= output_folder= extended= num_frames=21 num_samples=1 with_index=0
workers=1 retries=1 threads= layers=() dry=0 status=0 progress=none noise_rng=torch-cuda torchrun=0 nproc=0
slurm=0 sbatch_args=() requeue=1 wait=0 i2v=0 vae= fp8=0 ablate=0 ab_layers=() sink_rope= sink_rope_gap= kv_compress=0
df=0 df_budget=16 df_recent=4 df_ds=0 nf_given=0   # Deep Forcing's inference.py: --Budget, --Recent, --is_ds_only
tap_mode= tap_select= token_frames= tap_cross=0   # sf-denoise's, with --layer_indices (checked by sf-denoise --check)
worker_job= task=0 tasks=1
orig=("$@")
while [ $# -gt 0 ]; do
    if [[ "$1" == --*=* ]]; then set -- "${1%%=*}" "${1#*=}" "${@:2}"; fi   # --gres=gpu:1
    flag=${1//_/-}
    case "$flag" in
    --use-ema) use_ema=1; shift; continue ;;
    --no-ema) use_ema=0; shift; continue ;;
    --prompt) bad "--prompt: sf-batch reads prompts from --data_path (one per line)" ;;
    --progress) ref_need "$@"; progress=$2; shift 2; continue ;;   # the stages', into each video's log
    esac
    ref_flag "$flag" "${@:2}"
    if [ "$ref_used" -gt 0 ]; then shift "$ref_used"; continue; fi
    case "$flag" in
    --data-path) ref_need "$@"; data_path=$2; shift 2 ;;
    --output-folder) ref_need "$@"; output_folder=$2; shift 2 ;;
    --extended-prompt-path) ref_need "$@"; extended=$2; shift 2 ;;
    --num-output-frames) ref_need "$@"; ref_dec num_frames "$1" "$2"; nf_given=1; shift 2 ;;
    --num-samples) ref_need "$@"; ref_dec num_samples "$1" "$2"; shift 2 ;;
    --noise-rng) ref_need "$@"; noise_rng=$2; shift 2 ;;   # checked with the rest by sf-denoise --check
    --vae) ref_need "$@"; vae=$2; shift 2 ;;   # sf-decode's checkpoint (a Wan VAE or a TAEHV)
    --fp8) fp8=1; shift ;;                     # sf-denoise --fp8
    --sink-ablate) ref_need "$@"; ref_int "$1" "$2"; ablate=$2; shift 2 ;;   # sf-denoise's, checked by its --check
    --sink-ablate-layers) ref_layer_list "$@"; ab_layers=("${layer_words[@]}"); shift "$ref_used" ;;
    --sink-rope) ref_need "$@"; sink_rope=$2; shift 2 ;;   # sf-denoise's, checked by its --check
    --sink-rope-gap) ref_need "$@"; ref_int "$1" "$2"; sink_rope_gap=$2; shift 2 ;;
    --kv-compress) ref_need "$@"; ref_int "$1" "$2"; kv_compress=$2; shift 2 ;;
    --deep-forcing) df=1; shift ;;
    --Budget) ref_need "$@"; ref_dec df_budget "$1" "$2"; df=1; shift 2 ;;   # checked by sf-denoise --check
    --Recent) ref_need "$@"; ref_dec df_recent "$1" "$2"; df=1; shift 2 ;;
    --is-ds-only) ref_need "$@"; ref_dec df_ds "$1" "$2"; df=1; shift 2 ;;   # its int: any but 0 is on
    --tap-mode) ref_need "$@"; tap_mode=$2; shift 2 ;;
    --tap-select) ref_need "$@"; tap_select=$2; shift 2 ;;
    --tap-token-frames) ref_need "$@"; token_frames=$2; shift 2 ;;
    --tap-cross) tap_cross=1; shift ;;
    --torchrun) ref_need "$@"   # W[:P]: the reference's run on W processes, P per node (default all W on one)
        [[ "$2" =~ ^[0-9]+(:[0-9]+)?$ ]] || bad "--torchrun: expected W or W:P (processes, and per node), got '$(esc "$2")'"
        ref_dec torchrun "$1" "${2%%:*}"; nproc=$torchrun; [[ "$2" != *:* ]] || ref_dec nproc "$1" "${2#*:}"
        [ "$torchrun" -ge 1 ] && [ "$torchrun" -le 65536 ] || bad "--torchrun: the process count must be in 1..65536"
        shift 2 ;;
    --save-with-index) with_index=1; shift ;;
    --i2v) i2v=1; shift ;;
    --workers) ref_need "$@"; ref_dec workers "$1" "$2"; shift 2 ;;
    --retries) ref_need "$@"; ref_dec retries "$1" "$2"; shift 2 ;;
    --threads) ref_need "$@"; ref_int "$1" "$2"; threads=$2; shift 2 ;;
    --layer-indices) # sf-denoise's syntax (N, A-B, A,B, all), checked with the rest by sf-denoise --check
        ref_layer_list "$@"; layers=("${layer_words[@]}"); shift "$ref_used" ;;
    --dry-run|-n) dry=1; shift ;;
    --status) status=1; shift ;;
    --slurm) slurm=1; shift ;;
    --partition|--account|--time|--gres|--qos|--constraint|--mem|--cpus-per-task|--job-name|--nodelist|--exclude)
        ref_need "$@"; sbatch_args+=("$flag=$2"); shift 2 ;;
    --sbatch-arg) ref_need "$@"; sbatch_args+=("$2"); shift 2 ;;
    --requeue) requeue=1; shift ;;
    --no-requeue) requeue=0; shift ;;
    --wait) wait=1; shift ;;
    --worker) ref_need "$@"; worker_job=$2; shift 2 ;;
    --task) ref_need "$@"; ref_dec task "$1" "$2"; shift 2 ;;
    --tasks) ref_need "$@"; ref_dec tasks "$1" "$2"; shift 2 ;;
    -h|--help) sf_usage; exit 0 ;;
    --version) # the build's version: the sf-* programs beside this script are the same build
        v=$(sf-denoise --version 2>/dev/null) || die "sf-denoise not found next to $self"; echo "sf-batch ${v##* }"; exit 0 ;;
    --*) bad "unknown option '$1' (see --help)" ;;
    *) if [ "$status" = 1 ] && [ -z "$output_folder" ]; then output_folder=$1; shift
       else bad "unexpected argument '$1' (see --help)"; fi ;;
    esac
done
[ -n "$output_folder" ] || bad "--output_folder DIR is required (see --help)"
if [ "$df" = 1 ]; then
    [ "$kv_compress" = 0 ] && [ -z "$sink_rope$sink_rope_gap" ] ||
        bad "--deep-forcing (--Budget, --Recent, --is_ds_only: Deep Forcing's inference.py) sets the cache's rule itself: leave --kv-compress and --sink-rope out"
    [ "$nf_given" = 1 ] || num_frames=126   # its inference.py's defaults
    [ -n "$seed" ] || seed=1356145
fi
[ -n "$seed" ] || seed=0
if [ ${#layers[@]} -eq 0 ] && { [ -n "$tap_mode$tap_select$token_frames" ] || [ "$tap_cross" = 1 ]; }; then
    bad "--tap-mode, --tap-select, --tap-token-frames and --tap-cross go with --layer_indices (the layers to tap)"
fi
state=$output_folder/.sf-batch   # job lists, logs, failure reasons, temp files

# ---- the set of videos: all.tsv = name \t idx \t sample \t noise \t prompt, one line per video (with
# --i2v the prompt field is image \t caption: a changed image is a changed prompt); noise =
# seed/i/s (the reference's stream: video i of the seed-once loop, sample s) or sfpipe's seed ----
bytes() { local LC_ALL=C; nbytes=${#1}; }   # $1's length in bytes → nbytes
video_name() { # idx sample prompt → vname, the reference's file name
    local p=${3:0:100}
    if [ "$with_index" = 1 ]; then
        if [ "$use_ema" = 1 ]; then vname="$1-$2_ema.mp4"; else vname="$1-$2_regular.mp4"; fi
    else
        p=${p//\//_}; p=${p//$'\t'/ }   # a '/' would name a folder (the reference then fails)
        p=${p//[[:cntrl:]]/_}           # no terminal escape in a name (the reference keeps them)
        # NAME_MAX is 255 bytes: 100 characters of CJK are 300. Leave room for "-<s>.mp4" and the
        # stages' temp suffix ".tmp.<pid>.<n>.mp4" (common/outfile.c); cut whole characters only
        while bytes "$p"; [ "$nbytes" -gt 200 ]; do p=${p%?}; done
        vname="$p-$2.mp4"
    fi
}

# read_lines FILE VAR: FILE's lines into the array VAR as Python's text mode splits them (TextDataset's
# `for line in f`): "\n", "\r\n" and a lone "\r" each end a line, so that line i is the reference's idx i
read_lines() {
    [ -r "$1" ] && [ ! -d "$1" ] || return 1
    mapfile -t "$2" < <(sed 's/\r$//' -- "$1" | tr '\r' '\n')
}

list_videos() { # → stdout; blank lines keep their index but make no video
    local idx line ext s vname noise image
    local -A seen=()
    local -a lines=() exts=()
    if [ "$i2v" = 1 ]; then   # IMAGE \t CAPTION per item, checked whole by sf-vae-encode
        local listed
        # absolute image paths: a worker (a Slurm task too) and a rerun from another folder find the same files
        listed=$(sf-vae-encode --list-dataset "$(readlink -f -- "$data_path")" --log-level error 2>&1) || {
            listed=${listed##*sf-vae-encode: error: }; die "--i2v --data_path: $(esc "${listed#--list-dataset }")"; }
        [ -z "$listed" ] || mapfile -t lines <<<"$listed"
    else
        read_lines "$data_path" lines || die "cannot read --data_path $data_path"
    fi
    if [ -n "$extended" ]; then
        read_lines "$extended" exts || die "cannot read --extended_prompt_path $extended"
        [ "${#exts[@]}" = "${#lines[@]}" ] ||
            die "--extended_prompt_path has ${#exts[@]} lines, --data_path ${#lines[@]} (they must match)"
    fi
    for ((idx = 0; idx < ${#lines[@]}; idx++)); do
        line=${lines[idx]}
        if [ "$i2v" = 1 ]; then   # the caption as it is (TextImagePairDataset); the image rides before it
            image=${line%%$'\t'*}; line=${line#*$'\t'}
        else
            line=${line%"${line##*[![:space:]]}"}   # rstrip, like TextDataset
            [ -n "$line" ] || continue
        fi
        ext=${exts[idx]:-}; ext=${ext%"${ext##*[![:space:]]}"}
        for ((s = 0; s < num_samples; s++)); do
            video_name "$idx" "$s" "$line"
            [ -z "${seen[$vname]:-}" ] || continue   # the reference overwrites; we keep the first
            seen[$vname]=1
            if [ "$noise_rng" = sfpipe ]; then noise=$((seed + idx * num_samples + s))
            elif [ "$torchrun" -gt 0 ]; then   # rank idx % W's loop, item idx / W, seeded seed + its LOCAL_RANK
                noise=$((seed + idx % torchrun % nproc))/$((idx / torchrun))/$s
            else noise=$seed/$idx/$s; fi
            if [ "$i2v" = 1 ]; then printf '%s\t%d\t%d\t%s\t%s\t%s\n' "$vname" "$idx" "$s" "$noise" "$image" "$line"
            else printf '%s\t%d\t%d\t%s\t%s\n' "$vname" "$idx" "$s" "$noise" "${ext:-$line}"; fi
        done
    done
    local n=${#lines[@]}
    if [ "$torchrun" -gt 0 ] && [ $((n % torchrun)) != 0 ] && [ "$n" -gt 0 ]; then
        say "note: under torchrun on $torchrun processes the reference (DistributedSampler, drop_last) makes no video of the last $((n % torchrun)) of the $n prompts; they are made here, each as the next video of its rank's loop"
    fi
}

# a video is done when its file is in the folder, and with --layer_indices its taps file too: <name>.pt (the
# figure-4 dict of the default logits taps), else <name>.safetensors (the workbench's modes)
is_done() { [ -e "$output_folder/$1" ] && { [ "$taps" = 0 ] || [ -e "$output_folder/${1%.mp4}$tap_ext" ]; }; }
tap_ext_of() { # tap_mode tap_cross → tap_ext
    tap_ext=.safetensors
    case "$1" in "" | logits) [ "${2:-0}" != 0 ] || tap_ext=.pt ;; esac
}
taps=$((${#layers[@]} > 0))
tap_ext_of "$tap_mode" "$tap_cross"

# counts over all.tsv: sets n_all n_exist n_failed, and prints failure reasons when $1 = show
tally() {
    local name rest
    n_all=0 n_exist=0 n_failed=0
    while IFS=$'\t' read -r name rest; do
        n_all=$((n_all + 1))
        if is_done "$name"; then n_exist=$((n_exist + 1))
        elif [ -f "$state/failed/$name" ]; then
            n_failed=$((n_failed + 1))
            [ "${1:-}" = show ] && say "failed: $(esc "$name"): $(esc "$(head -c 400 "$state/failed/$name")")"
        fi
    done <"$state/all.tsv"
}

# a task's record (tasks/<job>_<task>), and whether the worker it says is running still is: a
# worker killed with -9 (or its host rebooted) cannot write "finished"; on this host /proc knows
task_record() {
    local r pid
    r=$(esc "$(cat -- "$1")")
    if [[ "$r" =~ ^running\ on\ ([^ ]+)\ pid\ ([0-9]+) ]] && [ "${BASH_REMATCH[1]}" = "$(hostname -s)" ]; then
        pid=${BASH_REMATCH[2]}
        grep -qas -- --worker "/proc/$pid/cmdline" || r="gone: pid $pid is not running (killed or crashed); its last record: $r"
    fi
    printf '%s' "$r"
}

# ---- --status: the folder, then the array's state (sacct; scontrol/squeue without accounting) ----
if [ "$status" = 1 ]; then
    [ -f "$state/all.tsv" ] || die "$output_folder has no sf-batch run (no $state/all.tsv)"
    ! grep -qs '^layer_indices=.' "$state/flags" || taps=1
    # the taps file's kind as the folder's flags recorded it (none recorded: an older sf-batch's figure-4 .pt)
    tap_ext_of "$(sed -n 's/^tap_mode=//p' "$state/flags" 2>/dev/null)" "$(sed -n 's/^tap_cross=//p' "$state/flags" 2>/dev/null)"
    tally show
    echo "$output_folder: $(plural "$n_all" video): $n_exist done, $n_failed failed, $((n_all - n_exist - n_failed)) to do"
    if [ ! -f "$state/slurm-jobs" ]; then   # a local run: its workers' own records
        for f in "$state/tasks/local_"*; do [ -f "$f" ] && echo "  worker ${f##*_}: $(task_record "$f")"; done
        exit 0
    fi
    while read -r jid jobfile; do
        if out=$(sacct -n -X -P -j "$jid" --format=JobID,State,ExitCode,NodeList 2>/dev/null) && [ -n "$out" ]; then
            echo "job $jid (sacct):"; sed 's/|/ /g; s/^/  /' <<<"$out"
        elif out=$(scontrol -o show job "$jid" 2>/dev/null) && [ -n "$out" ]; then
            echo "job $jid (scontrol; sacct has no record):"
            sed -nE 's/.* ArrayTaskId=([^ ]+) .* JobState=([A-Z_]+) .* NodeList=([^ ]+).*/  task \1: \2 \3/p' <<<"$out"
        else
            echo "job $jid: no longer known to Slurm (no accounting); its tasks' own records:"
        fi
        for f in "$state/tasks/$jid"_*; do [ -f "$f" ] && echo "  $(basename "$f"): $(task_record "$f")"; done
    done <"$state/slurm-jobs"
    exit 0
fi

# ---- the checks every mode shares ----
if [ "$i2v" = 1 ]; then   # the reference's image folder (checked whole when listed, below)
    [ -n "$data_path" ] || bad "--i2v needs --data_path IMAGE_DIR (target_crop_info_<ratio>.json and <ratio>/; see --help)"
    [ -d "$data_path" ] || die "--i2v --data_path $data_path: no such folder (the reference's i2v data: target_crop_info_<ratio>.json and <ratio>/)"
    [ -z "$extended" ] || bad "--extended_prompt_path: not with --i2v (the captions are the prompts, as in inference.py)"
    [ "$num_frames" -ge 2 ] || bad "--i2v --num_output_frames must be at least 2 (the image's latent frame, then those generated)"
else
    [ -n "$data_path" ] || bad "--data_path PROMPTS.txt is required (see --help)"
    [ -f "$data_path" ] || die "--data_path $data_path: no such file"
    [ -z "$extended" ] || [ -f "$extended" ] || die "--extended_prompt_path $extended: no such file"
fi
[ "$num_samples" -ge 1 ] || bad "--num_samples must be at least 1"
[ "$num_frames" -ge 1 ] || bad "--num_output_frames must be at least 1 (latent frames: 21 makes 81 video frames)"
[ "$workers" -ge 1 ] || bad "--workers must be at least 1"
if [ "$torchrun" != 0 ]; then
    [ "$nproc" -ge 1 ] && [ $((torchrun % nproc)) = 0 ] ||
        bad "--torchrun $torchrun:$nproc: the processes per node must divide the process count"
    [ "$noise_rng" != sfpipe ] || bad "--torchrun reproduces the reference's torch.randn streams: not with --noise-rng sfpipe"
    [ "$i2v" = 0 ] || bad "--torchrun: not with --i2v (the reference's inference.py asserts: no distributed image-to-video)"
fi
[ -z "$checkpoint_path" ] || [ "$no_checkpoint" = 1 ] || [ -f "$checkpoint_path" ] ||
    die "--checkpoint_path $checkpoint_path: no such file (without --checkpoint_path the base weights are used)"
[ -d "$model_dir" ] || die "--model-dir $model_dir: no such folder (set --model-dir or SF_MODEL_DIR)"
[ -n "$device" ] || device=cpu
[[ "$device" =~ ^(cpu|cuda(:[0-9]+)?)$ ]] || bad "--device $device: expected cpu, cuda or cuda:N"
den_flags() { # → den: the flags that shape a video, as sf-denoise takes them (the check and every video)
    den=(--model-dir "$model_dir" --config_path "$config_path" --num_frames "$((num_frames - i2v))" --height "$height"
        --width "$width" --progress "$progress")
    if [ -z "$checkpoint_path" ] || [ "$no_checkpoint" = 1 ]; then den+=(--no_checkpoint)
    else den+=(--checkpoint_path "$checkpoint_path" --require-checkpoint); fi
    if [ "$use_ema" = 1 ]; then den+=(--use_ema); else den+=(--no_ema); fi
    [ ${#layers[@]} -eq 0 ] || den+=(--layer_indices "${layers[@]}")
    [ -z "$tap_mode" ] || den+=(--tap-mode "$tap_mode")
    [ -z "$tap_select" ] || den+=(--tap-select "$tap_select")
    [ -z "$token_frames" ] || den+=(--tap-token-frames "$token_frames")
    [ "$tap_cross" = 0 ] || den+=(--tap-cross)
    [ "$noise_rng" = sfpipe ] || den+=(--noise-rng "$noise_rng")
    [ "$fp8" = 0 ] || den+=(--fp8)
    [ "$ablate" = 0 ] || den+=(--sink-ablate "$ablate")
    [ ${#ab_layers[@]} -eq 0 ] || den+=(--sink-ablate-layers "${ab_layers[@]}")
    [ -z "$sink_rope" ] || den+=(--sink-rope "$sink_rope")
    [ -z "$sink_rope_gap" ] || den+=(--sink-rope-gap "$sink_rope_gap")
    [ "$kv_compress" = 0 ] || den+=(--kv-compress "$kv_compress")
    if [ "$df" = 1 ] && [ "$df_ds" != 0 ]; then den+=(--sink-rope realign --sink-rope-gap block)
    elif [ "$df" = 1 ]; then den+=(--pc-budget "$df_budget" --pc-recent "$df_recent"); fi
}

# ---- worker: the videos k ≡ task (mod tasks) of a job list ----
split_i2v() { # an --i2v prompt field "image \t caption" → i2v_image, i2v_caption (read drops an empty caption's tab)
    i2v_image=${1%%$'\t'*} i2v_caption=
    [[ "$1" != *$'\t'* ]] || i2v_caption=${1#*$'\t'}
}
fail_video() { # name reason → 1, the reason (escaped) in $why and, if it can be written, $state/failed/name
    why=$(esc "$2")
    { printf '%s\n' "$why" >"$state/failed/$1"; } 2>/dev/null
    rm -f -- "$state/tmp/$1" "$state/tmp/$1".tmp.* "$state/tmp/$1.status" "$state/tmp/${1%.mp4}$tap_ext"
    return 1
}

# Never aborts the worker: whatever goes wrong with one video (its log cannot be opened, a file
# cannot be moved) is that video's failure, with its reason, and the worker goes on with the next.
run_video() { # name noise prompt dev → 0 and the video in place, or 1, $why and $state/failed/name
    local name=$1 vseed=$2 prompt=$3 dev=$4 tmp=$state/tmp log=$state/logs/${1%.mp4}.log e image=
    if [ "$i2v" = 1 ]; then split_i2v "$prompt"; image=$i2v_image prompt=$i2v_caption; fi
    local -a nz=(--seed "$vseed")
    if [[ "$vseed" == */*/* ]]; then   # seed/i/s: the reference's stream, video i of the loop, sample s
        local i=${vseed#*/}
        nz=(--seed "${vseed%%/*}" --noise-sequence "${i%%/*}")
        [ "$num_samples" -gt 1 ] && nz+=(--noise-batch "$num_samples:${vseed##*/}")
    fi
    local -a thr=() enc den dec st lv=("${extra_encode[@]}")   # --log-level L, when given (reference_flags.sh)
    [ -n "$threads" ] && thr=(--threads "$threads")
    rm -f -- "$tmp/$name" "$tmp/$name".tmp.* "$tmp/${name%.mp4}$tap_ext"
    e=$( { : >"$log"; } 2>&1) || fail_video "$name" "cannot write its log $log: ${e##*: }" || return 1
    if [ "$i2v" = 1 ]; then   # the image → its latent frame, the video's first (waited for in the background: traps)
        # once per image: its samples follow each other in a worker's list, so the last image's latents are
        # kept (i2v_file, this worker's) while the same file, unchanged, comes again
        local key
        key=$image/$(stat -L -c '%s.%Y.%Z.%i' -- "$image" 2>/dev/null)
        if [ "$key" != "$i2v_key" ] || [ ! -s "$i2v_file" ]; then
            i2v_key= i2v_file=$tmp/i2v.$host.$BASHPID.safetensors
            sf-vae-encode --model-dir "$model_dir" --image "$image" --height "$height" --width "$width" --device "$dev" \
                --out "$i2v_file" "${thr[@]}" "${lv[@]}" 2>>"$log" &
            if ! wait $!; then
                why=$(grep -m1 -E 'error' "$log" || true)
                rm -f -- "$i2v_file"
                fail_video "$name" "${why:-sf-vae-encode failed} (log: $log)"; return 1
            fi
            i2v_key=$key
        else
            echo "sf-batch: the image's latent frame as made for the previous video ($(esc "$image"))" >>"$log"
        fi
    fi
    enc=(sf-encode --model-dir "$model_dir" --prompt "$prompt" --device "$edev" --out - "${thr[@]}" "${lv[@]}")
    [ -n "$cache_dir" ] && enc+=(--cache-dir "$cache_dir")
    den_flags
    den=(sf-denoise "${den[@]}" --device "$dev" "${nz[@]}" --in - --out - "${thr[@]}" "${lv[@]}")
    [ "$i2v" = 1 ] && den+=(--initial-latents "$i2v_file")
    [ ${#layers[@]} -gt 0 ] && den+=(--output_path "$tmp/${name%.mp4}$tap_ext")
    dec=(sf-decode --model-dir "$model_dir" --device "$dev" --height "$height" --width "$width" --in - -o "$tmp/$name"
        --progress "$progress" "${thr[@]}" "${lv[@]}")
    [ -n "$vae" ] && dec+=(--vae "$vae")
    # in the background, waited for: bash runs a trap only once the foreground command has ended, but
    # it ends a wait at once, so a stop signal (sf-batch's own death included) stops the stages now
    { "${enc[@]}" | "${den[@]}" | "${dec[@]}"; echo "${PIPESTATUS[*]}" >"$tmp/$name.status"; } 2>>"$log" &
    wait $!
    { read -ra st <"$tmp/$name.status"; } 2>/dev/null || st=()
    rm -f -- "$tmp/$name.status"
    if [ "${st[*]}" = "0 0 0" ] && [ -s "$tmp/$name" ]; then
        if [ ${#layers[@]} -gt 0 ] && ! e=$(mv -f -- "$tmp/${name%.mp4}$tap_ext" "$output_folder/${name%.mp4}$tap_ext" 2>&1); then
            fail_video "$name" "cannot move its taps into $output_folder: ${e##*: }"; return 1
        fi
        e=$(mv -f -- "$tmp/$name" "$output_folder/$name" 2>&1) || fail_video "$name" "cannot move it into $output_folder: ${e##*: }" ||
            return 1
        rm -f -- "$state/failed/$name"
        return 0
    fi
    # the reason: the first error line of the stages that is not a downstream stage passing the
    # cause on (its "upstream error: ..." can be written before the cause's own line) nor a broken pipe
    # (the wire's two relay wordings: SF_WIRE_UPSTREAM_ERROR and _CLOSED in common/wire.h)
    why=$(grep -E '(error|Error)' "$log" | grep -v -m1 -E 'upstream (error: |closed without end-of-stream)|Broken pipe' || true)
    [ -n "$why" ] || why=$(grep -m1 -E '(error|Error)' "$log" || true)
    [ -n "$why" ] || why="exit statuses encode=${st[0]:-?} denoise=${st[1]:-?} decode=${st[2]:-?}"
    fail_video "$name" "$why (log: $log)"
}

if [ -n "$worker_job" ]; then
    # a signal stops the current video's stages (its process group) and says so in the task's record
    # (else --status would call a stopped worker killed or crashed)
    worker_stop() { # $1 = signal name, $2 = exit status
        trap '' INT TERM HUP   # the kill below reaches this shell too
        echo "stopped on $(hostname -s) by SIG$1: ${done_n:-0} done, ${skip_n:-0} skipped, ${fail_n:-0} failed" >"$rec"
        kill -TERM 0 2>/dev/null
        [ -z "${i2v_file:-}" ] || rm -f -- "$i2v_file"
        exit "$2"
    }
    trap 'worker_stop INT 130' INT
    trap 'worker_stop TERM 143' TERM
    trap 'worker_stop HUP 129' HUP
    # a local worker gets SIGTERM when sf-batch dies, however it dies (start_worker); one whose sf-batch
    # died before that was armed has a parent other than the one it was started by: it stops
    if [ -n "${SF_BATCH_PARENT:-}" ] && [ "$PPID" != "$SF_BATCH_PARENT" ]; then
        echo "sf-batch: worker $task: its sf-batch (pid $SF_BATCH_PARENT) is gone: not starting" >&2
        exit 143
    fi
    unset SF_BATCH_PARENT
    id=${SLURM_ARRAY_JOB_ID:-local}_$task
    dev=$device
    [ "$device" = cuda ] && [ -z "${SLURM_ARRAY_JOB_ID:-}" ] && dev=cuda:$task   # one GPU per local worker
    edev=${encode_device:-$dev}   # the text encoder's (--encode-device; default the stages' device)
    [ "$encode_device" = cuda ] && [ -z "${SLURM_ARRAY_JOB_ID:-}" ] && edev=cuda:$task
    rec=$state/tasks/$id
    [ -n "$threads" ] || threads=${SLURM_CPUS_PER_TASK:-}
    echo "running on $(hostname -s) pid $$ since $(date -u +%T)" >"$rec"
    mine=$(awk -F'\t' -v t="$task" -v n="$tasks" '(NR - 1) % n == t' "$worker_job")
    # fill the embedding cache for the slice's prompts with one encoder load; the per-video
    # sf-encode then only reads the cache (a failure here is retried, and reported, per video)
    todo=$(while IFS=$'\t' read -r name _ _ _ prompt; do
        if [ "$i2v" = 1 ]; then split_i2v "$prompt"; prompt=$i2v_caption; fi   # the caption, not the image
        is_done "$name" || printf '%s\n' "$prompt"; done <<<"$mine" | sort -u)
    if [ -n "$todo" ] && [ -n "$mine" ]; then
        enc=(sf-encode --model-dir "$model_dir" --prompts - --cache-only --device "$edev" "${extra_encode[@]}")
        [ -n "$cache_dir" ] && enc+=(--cache-dir "$cache_dir")
        [ -n "$threads" ] && enc+=(--threads "$threads")
        "${enc[@]}" <<<"$todo" 2>"$state/logs/prefill-$id.log" & # waited for: a signal's trap runs at once
        wait $! || say "[$id] warning: filling the embedding cache failed (see $state/logs/prefill-$id.log)"
    fi
    done_n=0 skip_n=0 fail_n=0 i2v_key= i2v_file= host=$(hostname -s)
    # an image's latents that a killed worker of this host left (Slurm tasks share the folder): their pid is gone
    for f in "$state/tmp/i2v.$host".*.safetensors; do
        [ -e "$f" ] || continue
        p=${f%.safetensors}; p=${p##*.}
        [[ "$p" =~ ^[0-9]+$ ]] && ! kill -0 "$p" 2>/dev/null && rm -f -- "$f"
    done
    while IFS=$'\t' read -r name _ _ vseed prompt; do
        [ -n "$name" ] || continue
        if is_done "$name"; then skip_n=$((skip_n + 1)); continue; fi
        t0=$SECONDS
        if run_video "$name" "$vseed" "$prompt" "$dev"; then
            done_n=$((done_n + 1)); say "[$id] done $(esc "$name") ($((SECONDS - t0)) s)"
        else
            fail_n=$((fail_n + 1)); say "[$id] FAILED $(esc "$name"): $why"
        fi
        echo "running on $(hostname -s) pid $$: $done_n done, $skip_n skipped, $fail_n failed" >"$rec"
    done <<<"$mine"
    [ -z "$i2v_file" ] || rm -f -- "$i2v_file"
    echo "finished on $(hostname -s): $done_n done, $skip_n skipped, $fail_n failed" >"$rec"
    exit 0
fi

# ---- submitter / supervisor: check the flags, list the videos, keep those not yet done ----
# the stages' rules, asked of the stages: sf-denoise --check reads the config and the model's
# config.json, opens the weights and checkpoint and checks frames, size and layers (on the CPU: a
# Slurm login node has no GPU). sf-encode and sf-decode load lazily and have no such mode, so their
# model files are only looked for here (the paths of stages/encode/stage.c and stages/decode/stage.c).
need=(models_t5_umt5-xxl-enc-bf16.pth)
[ -n "$vae" ] || need+=(Wan2.1_VAE.pth)   # --vae names sf-decode's checkpoint
[ -r "$model_dir/google/umt5-xxl/tokenizer.json" ] || need+=(google/umt5-xxl/spiece.model) # either tokenizer file
for f in "${need[@]}"; do
    [ -r "$model_dir/$f" ] || die "--model-dir $model_dir has no $f (sf-encode and sf-decode need it)"
done
[ -z "$vae" ] || [ -r "$vae" ] || die "--vae $(esc "$vae"): cannot read it"
den_flags
i2v_note=
if [ "$i2v" = 1 ]; then   # a stand-in first latent frame (zeros, the real ones' shape): the block rule is checked too
    command -v sf-vae-encode >/dev/null || die "--i2v: sf-vae-encode not found next to $self"
    zf=$(mktemp) || die "mktemp failed"
    zn=$((16 * (height / 8) * (width / 8) * 4)) zh="{\"latents\":{\"dtype\":\"F32\",\"shape\":[1,1,16,$((height / 8)),$((width / 8))],\"data_offsets\":[0,$zn]}}"
    while (( ${#zh} % 8 )); do zh+=" "; done
    { printf "$(printf '\\x%02x' $((${#zh} & 255)) $((${#zh} >> 8 & 255)) 0 0 0 0 0 0)%s" "$zh"; head -c "$zn" /dev/zero; } >"$zf"
    den+=(--initial-latents "$zf")
    i2v_note=" (--i2v: the image's latent frame, then --num_output_frames - 1 = $((num_frames - 1)) generated)"
fi
e=$(sf-denoise --check "${den[@]}" --device cpu --threads 1 --log-level error 2>&1 >/dev/null)
rc=$?
[ "$i2v" = 0 ] || rm -f -- "$zf"
e=${e##*$'\n'}   # its one error line
[ "$rc" = 0 ] || { echo "sf-batch: error: sf-denoise --check: $(esc "${e#sf-denoise: error: }")$i2v_note" >&2; exit $((rc == 2 ? 2 : 1)); }

all=$(list_videos) || exit
[ -n "$all" ] || die "--data_path $data_path has no $([ "$i2v" = 1 ] && echo items || echo prompts)"

# The flags that change a video's bytes, as the folder's first run recorded them (.sf-batch/flags):
# a rerun with others would call the old videos done. Refused while the folder holds one of its
# videos; the checkpoint and model paths are compared resolved (the config's as given: sf-denoise
# also looks for it under SF_ROOT). A changed prompt or seed (same name) is refused for that video.
resolve() { if [ -e "$1" ]; then readlink -f -- "$1"; else printf '%s' "$1"; fi; }
ck=; [ -z "$checkpoint_path" ] || [ "$no_checkpoint" = 1 ] || ck=$(resolve "$checkpoint_path")
flags="seed=$seed
noise_rng=$noise_rng
torchrun=$torchrun:$nproc
num_samples=$num_samples
num_output_frames=$num_frames
height=$height
width=$width
config_path=$config_path
checkpoint_path=$ck
use_ema=$use_ema
model_dir=$(resolve "$model_dir")
layer_indices=${layers[*]}
i2v=$i2v
vae=${vae:+$(resolve "$vae")}
fp8=$fp8
sink_ablate=$ablate${ab_layers[*]:+ layers ${ab_layers[*]}}
sink_rope=${sink_rope:-absolute}${sink_rope_gap:+ gap $sink_rope_gap}
kv_compress=$kv_compress
deep_forcing=$(if [ "$df" = 0 ]; then echo 0; elif [ "$df_ds" != 0 ]; then echo ds; else echo "pc $df_budget $df_recent"; fi)
tap_mode=${tap_mode:-logits}
tap_select=${tap_select:-seed}
tap_token_frames=${token_frames:-1}
tap_cross=$tap_cross"
made=0   # a video of the recorded list is in the folder (legacy folders: their last all.tsv)
rec_videos=$state/videos.tsv; [ -f "$rec_videos" ] || rec_videos=$state/all.tsv
if [ -f "$rec_videos" ]; then
    while IFS=$'\t' read -r name _; do [ -e "$output_folder/$name" ] && { made=1; break; }; done <"$rec_videos"
fi
diff=
oldflags=
[ -f "$state/flags" ] && oldflags=$(cat "$state/flags")
# a folder from before --noise-rng was made with sfpipe's stream
[ -z "$oldflags" ] || grep -q '^noise_rng=' <<<"$oldflags" || oldflags+=$'\nnoise_rng=sfpipe'
[ -z "$oldflags" ] || grep -q '^torchrun=' <<<"$oldflags" || oldflags+=$'\ntorchrun=0:0'   # and before --torchrun
[ -z "$oldflags" ] || grep -q '^i2v=' <<<"$oldflags" || oldflags+=$'\ni2v=0'   # and before --i2v, text-to-video
[ -z "$oldflags" ] || grep -q '^vae=' <<<"$oldflags" || oldflags+=$'\nvae='     # and before --vae, the Wan VAE
[ -z "$oldflags" ] || grep -q '^fp8=' <<<"$oldflags" || oldflags+=$'\nfp8=0'   # and before --fp8, bf16
[ -z "$oldflags" ] || grep -q '^sink_ablate=' <<<"$oldflags" || oldflags+=$'\nsink_ablate=0'   # and before --sink-ablate
[ -z "$oldflags" ] || grep -q '^sink_rope=' <<<"$oldflags" || oldflags+=$'\nsink_rope=absolute'   # and before --sink-rope
[ -z "$oldflags" ] || grep -q '^kv_compress=' <<<"$oldflags" || oldflags+=$'\nkv_compress=0'   # and before --kv-compress
[ -z "$oldflags" ] || grep -q '^deep_forcing=' <<<"$oldflags" || oldflags+=$'\ndeep_forcing=0'   # and --deep-forcing
[ -z "$oldflags" ] || grep -q '^tap_mode=' <<<"$oldflags" ||   # and before --tap-mode, the figure-4 logits taps
    oldflags+=$'\ntap_mode=logits\ntap_select=seed\ntap_token_frames=1\ntap_cross=0'
if [ "$made" = 1 ] && [ -n "$oldflags" ] && [ "$oldflags" != "$flags" ]; then
    diff=$(awk -F= 'NR == FNR { old[$1] = substr($0, length($1) + 2); next }
        ($1 in old) && old[$1] != substr($0, length($1) + 2) {
            v = substr($0, length($1) + 2); printf "%s--%s %s (now %s)", sep, $1, old[$1] == "" ? "none" : old[$1], v == "" ? "none" : v; sep = ", " }' \
        <(printf '%s\n' "$oldflags") - <<<"$flags")
fi
if [ -n "$diff" ]; then
    bad "$output_folder has videos made with other flags: $(esc "$diff"); use another --output_folder (or empty this one)"
fi
if [ "$made" = 1 ]; then   # the first video in the folder whose seed or prompt (columns 4, 5) changed
    while IFS= read -r name; do
        [ -e "$output_folder/$name" ] && bad "$(esc "$output_folder/$name") was made from another prompt or seed (its line of --data_path or --extended_prompt_path changed or moved); remove it, or use another --output_folder"
    done < <(awk -F'\t' '{ k = $1; sub(/^[^\t]*\t[^\t]*\t[^\t]*\t/, "") } NR == FNR { v[k] = $0; next } (k in v) && v[k] != $0 { print k }' \
        "$rec_videos" - <<<"$all")
fi

[ "$dry" = 1 ] || mkdirs "$output_folder" "$output_folder"
out_abs=$(readlink -f -- "$output_folder") || die "cannot resolve $output_folder"
if [ "$dry" = 1 ]; then   # a dry run writes nothing in the folder
    state=$(mktemp -d) || die "mktemp failed"
    trap 'rm -rf -- "$state"' EXIT
fi
mkdirs "$state" "$state/jobs" "$state/logs" "$state/failed" "$state/tmp" "$state/tasks"
exec 9>"$state/lock"
flock -n 9 || die "another sf-batch is working on $output_folder (its lock $state/lock is held)"
printf '%s\n' "$all" >"$state/all.tsv.tmp" && mv -f "$state/all.tsv.tmp" "$state/all.tsv" || die "cannot write $state/all.tsv"
if [ "$dry" = 0 ]; then   # the record: these flags, and every video listed so far with its prompt
    { printf '%s\n' "$flags" >"$state/flags.tmp" && mv -f "$state/flags.tmp" "$state/flags"; } || die "cannot write $state/flags"
    { { [ ! -f "$state/videos.tsv" ] || awk -F'\t' 'NR == FNR { cur[$1]; next } !($1 in cur)' "$state/all.tsv" "$state/videos.tsv"
        cat "$state/all.tsv"; } >"$state/videos.tsv.tmp" && mv -f "$state/videos.tsv.tmp" "$state/videos.tsv"; } ||
        die "cannot write $state/videos.tsv"
fi
stamp=$(date -u +%Y%m%dT%H%M%S)-$$
job=$state/jobs/$stamp.tsv
while IFS=$'\t' read -r name rest; do
    is_done "$name" || printf '%s\t%s\n' "$name" "$rest"
done <"$state/all.tsv" >"$job"
n_all=$(wc -l <"$state/all.tsv") n_todo=$(wc -l <"$job")
skipped=$((n_all - n_todo))
while IFS=$'\t' read -r name rest; do rm -f -- "$state/failed/$name"; done <"$job"   # this run's verdicts only
ntask=$((workers < n_todo ? workers : n_todo))
# the flags a worker needs: ours, minus the ones only the submitter uses
wflags=()
skip_next=0
for a in "${orig[@]}"; do
    if [ "$skip_next" = 1 ]; then skip_next=0; continue; fi
    f=${a%%=*}
    case "${f//_/-}" in
    --slurm|--wait|--dry-run|-n|--requeue|--no-requeue) ;;
    --workers|--retries|--partition|--account|--time|--gres|--qos|--constraint|--mem|--cpus-per-task|--job-name|--nodelist|--exclude|--sbatch-arg)
        [ "$f" != "$a" ] || skip_next=1 ;;   # its value is the next word unless --flag=value
    *) wflags+=("$a") ;;
    esac
done
summary() { # $1 = what ran
    local done_now
    tally show
    done_now=$((n_exist - skipped))
    say "summary: $(plural "$n_all" video) in $output_folder: $done_now done, $skipped skipped (already there), $n_failed failed, $((n_all - n_exist - n_failed)) not done${1:+ ($1)}"
    [ "$n_exist" = "$n_all" ]
}
if [ "$n_todo" = 0 ]; then
    rm -f -- "$job"
    if [ "$n_all" = 1 ]; then say "nothing to do: the 1 video is in $output_folder"
    else say "nothing to do: all $n_all videos are in $output_folder"; fi
    summary
    exit
fi

if [ "$slurm" = 1 ]; then
    command -v sbatch >/dev/null || die "--slurm: sbatch not found (run on a Slurm login node, or without --slurm)"
    if [ -f "$state/slurm-jobs" ] && [ "$dry" = 0 ]; then
        live=$(squeue -h -o %A -j "$(cut -d' ' -f1 "$state/slurm-jobs" | paste -sd,)" 2>/dev/null | sort -u | paste -sd' ')
        [ -z "$live" ] || die "job $live of $output_folder still has tasks queued or running (sf-batch --status $output_folder; scancel $live to stop it)"
    fi
    script=$state/jobs/$stamp.sh
    {
        echo "#!/bin/bash"
        echo "#SBATCH --job-name=sf-batch"
        echo "#SBATCH --array=0-$((ntask - 1))"
        echo "#SBATCH --output=$out_abs/.sf-batch/logs/slurm-%A_%a.out"
        [ "$requeue" = 1 ] && echo "#SBATCH --requeue"
        for a in "${sbatch_args[@]}"; do printf '#SBATCH %s\n' "$a"; done
        printf 'exec %q --worker %q --task "$SLURM_ARRAY_TASK_ID" --tasks %d' "$self" "$out_abs/.sf-batch/jobs/$stamp.tsv" "$ntask"
        printf ' %q' "${wflags[@]}" --output_folder "$out_abs"
        echo
    } >"$script"
    if [ "$dry" = 1 ]; then cat "$script"; say "dry run: $n_todo of $(plural "$n_all" video) to do in $(plural "$ntask" "array task")"; exit 0; fi
    # the job's working directory is this one: relative paths (--data_path, --model-dir) keep their meaning
    # sbatch says why in several "sbatch: error:" lines: one line here, its words kept
    jid=$(sbatch --parsable "$script" 2>"$state/sbatch.err") ||
        die "sbatch failed: $(sed 's/^sbatch: error: //' "$state/sbatch.err" | paste -sd';' | sed 's/;/; /g')"
    rm -f "$state/sbatch.err"
    jid=${jid%%;*}
    echo "$jid $job" >>"$state/slurm-jobs"
    say "submitted array job $jid: $n_todo of $(plural "$n_all" video) in $(plural "$ntask" task) ($skipped already there)"
    if [ "$wait" = 0 ]; then say "watch it with: sf-batch --status $output_folder"; exit 0; fi
    # sbatch --wait would hold this lock's fd; poll squeue instead (a requeued task stays listed)
    while [ -n "$(squeue -h -j "$jid" -o %i 2>/dev/null)" ]; do sleep 1; done
    summary "array job $jid"
    exit
fi

# ---- local: N workers in their own process groups; a worker that dies is restarted ----
if [ "$dry" = 1 ]; then
    for ((w = 0; w < ntask; w++)); do
        printf '%q' "$self"; printf ' %q' --worker "$job" --task "$w" --tasks "$ntask" "${wflags[@]}"; echo
    done
    say "dry run: $n_todo of $(plural "$n_all" video) to do on $(plural "$ntask" worker)"
    exit 0
fi
# --device cuda: worker w on cuda:w, so the last worker's GPU must exist (a missing one would fail every
# video of its slice, one by one): asked of sf-denoise, whose device check is the stages' own
if [ "$device" = cuda ] && [ "$ntask" -gt 1 ]; then
    den_flags
    if ! e=$(sf-denoise "${den[@]}" --device "cuda:$((ntask - 1))" --check --log-level error 2>&1 >/dev/null); then
        e=${e##*sf-denoise: error: }
        die "--workers $ntask --device cuda runs worker $((ntask - 1)) on cuda:$((ntask - 1)): $(esc "${e%%$'\n'*}") (one worker per GPU: --workers at most the GPU count, or --device cuda:N for one GPU)"
    fi
fi
[ -n "$threads" ] || [ "$device" != cpu ] || threads=$(( $(nproc) / ntask > 0 ? $(nproc) / ntask : 1 ))
[ -z "$threads" ] || wflags+=(--threads "$threads")
declare -A slot=() tries=()
# A worker (in a session of its own: see interrupted) gets SIGTERM when this shell dies, however it
# dies (SIGKILL runs no trap): setpriv --pdeathsig (util-linux) arms it in the worker's process, whose
# parent is this shell, and the worker's trap stops its stages. SF_BATCH_PARENT lets the worker see
# whether this shell died before the signal was armed.
deathsig=()
command -v setpriv >/dev/null 2>&1 && deathsig=(setpriv --pdeathsig TERM --)
start_worker() {
    SF_BATCH_PARENT=$$ setsid "${deathsig[@]}" "$self" --worker "$job" --task "$1" --tasks "$ntask" "${wflags[@]}" &
    slot[$!]=$1
}
stop_all() {
    for p in "${!slot[@]}"; do kill -TERM -- "-$p" 2>/dev/null; done
    sleep 1
    for p in "${!slot[@]}"; do kill -KILL -- "-$p" 2>/dev/null; done
}
# Ctrl-C, kill or a closed terminal (the workers, in sessions of their own, see none of them) stop
# every worker, as sf-run stops its stages: the summary, then 128 + the signal (130, 143, 129)
interrupted() { # $1 = signal name, $2 = exit status
    trap - INT TERM HUP
    stop_all
    wait
    rm -f -- "$state"/tmp/i2v.*.safetensors
    summary "interrupted by SIG$1"
    exit "$2"
}
trap 'interrupted INT 130' INT
trap 'interrupted TERM 143' TERM
trap 'interrupted HUP 129' HUP
say "$n_todo of $(plural "$n_all" video) to do on $(plural "$ntask" worker) ($skipped already there)"
for ((w = 0; w < ntask; w++)); do start_worker "$w"; done
while [ ${#slot[@]} -gt 0 ]; do
    wait -n -p pid
    rc=$?
    [ -n "${pid:-}" ] || continue
    w=${slot[$pid]}
    unset "slot[$pid]"
    kill -KILL -- "-$pid" 2>/dev/null   # what the worker left running (its stages)
    [ "$rc" = 0 ] && continue
    why="exit status $rc"; [ "$rc" -gt 128 ] && why="killed by SIG$(kill -l $((rc - 128)))"
    t=$((${tries[$w]:-0} + 1)) tries[$w]=$t
    if [ "$t" -le "$retries" ]; then
        say "worker $w (pid $pid) $why: restarting it (retry $t/$retries); its finished videos are kept"
        start_worker "$w"
    else
        say "worker $w (pid $pid) $why: no retries left (--retries $retries)"
    fi
done
rm -f -- "$state"/tmp/i2v.*.safetensors   # an image's latents a killed worker could not remove (every worker is done)
rmdir -- "$state/tmp" 2>/dev/null
summary "$(plural "$ntask" worker)"
