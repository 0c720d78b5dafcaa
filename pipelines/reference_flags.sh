# reference_flags.sh — sourced by figure4.sh, streaming.sh, full_attention.sh and
# streaming_distributed.sh: the flags the reference's
# experiments/run_extraction_*.py scripts share (same defaults), our shared additions, the checks
# made before any stage starts, and the sf-encode | sf-denoise command lines they lead to. Set
# ref_prog before sourcing. Every spelling argparse accepts (--flag=value, --flag_name,
# --flag-name, unique abbreviations) goes through sf_flags_expand (flags.sh), and one loop reads
# them all (ref_parse below): a script names its own flags and the function that takes them.

# The sf-* programs next to these scripts come before PATH: the build tree's
# (pipelines/../build/bin, or ../$SF_BUILD/bin) or an installed tree's
# (<prefix>/share/sfpipe/pipelines → <prefix>/bin), so they run right after a plain `make`.
ref_here=$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")
. "$ref_here/flags.sh"
case "${SF_BUILD:-build}" in /*) ref_build=${SF_BUILD} ;; *) ref_build=$ref_here/../${SF_BUILD:-build} ;; esac
for ref_bin in "$ref_build/bin" "$ref_here/../../../bin"; do
    if [ -x "$ref_bin/sf-denoise" ] && [ -x "$ref_bin/sf-encode" ]; then
        PATH="$(cd -- "$ref_bin" && pwd -P):$PATH"
        break
    fi
done

config_path=configs/self_forcing_dmd.yaml
checkpoint_path=checkpoints/self_forcing_dmd.pt
prompt="A majestic eagle soaring through a cloudy sky, cinematic lighting"
no_checkpoint=0
seed=42
device=
encode_device=
model_dir=${SF_MODEL_DIR:-wan_models/Wan2.1-T2V-1.3B}
height=480
width=832
cache_dir=
extra_encode=()
extra_denoise=()

# the shared flags of ref_flag, for sf_flags_expand (a trailing '=': takes a value)
ref_known=(--config-path= --checkpoint-path= --prompt= --no-checkpoint --use-ema --seed= --gpu-id= --device=
    --encode-device= --model-dir= --height= --width= --cache-dir= --log-level= --progress= --help)
# ref_parse_flags OWN_KNOWN... -- ARG...: sf_flags = ARG... in --dash-form (see flags.sh)
ref_parse_flags() { sf_flags_expand "$ref_prog" "${ref_known[@]}" "$@"; }

ref_need() { [ $# -ge 2 ] || { echo "$ref_prog: error: option $1 needs a value" >&2; exit 2; }; }
ref_int() { [[ "$2" =~ ^[0-9]+$ ]] || { echo "$ref_prog: error: $1 must be a non-negative integer, got '$2'" >&2; exit 2; }; }
# ref_dec VAR FLAG VALUE: ref_int, then VAR = VALUE as Python's int() reads it (010 is 10: bash
# arithmetic would take it as octal, and refuse 08), for the numbers a script computes with; one
# too long for the shell's arithmetic is an error.
ref_dec() {
    ref_int "$2" "$3"
    local v=${3#"${3%%[!0]*}"}
    [ ${#v} -le 18 ] || { echo "$ref_prog: error: $2 $3 is too large" >&2; exit 2; }
    printf -v "$1" '%d' "$((10#${v:-0}))"
}

# ref_flag FLAG [VALUE...]: handle one shared flag (FLAG already in --dash-form); sets ref_used
# to the number of words consumed, 0 when FLAG is not a shared one.
ref_flag() {
    ref_used=2
    case "$1" in
    --config-path) ref_need "$@"; config_path=$2 ;;
    --checkpoint-path) ref_need "$@"; checkpoint_path=$2 ;;
    --prompt) ref_need "$@"; prompt=$2 ;;
    --no-checkpoint) no_checkpoint=1; ref_used=1 ;;
    --use-ema) ref_used=1 ;; # always true in the reference scripts
    --seed) ref_need "$@"; ref_dec seed "$1" "$2" ;;
    --gpu-id) ref_need "$@"; ref_dec device "$1" "$2"; device=cuda:$device ;;
    --device) ref_need "$@"; device=$2 ;;
    --encode-device) ref_need "$@"; encode_device=$2 ;;
    --model-dir) ref_need "$@"; model_dir=$2 ;;
    --height) ref_need "$@"; ref_dec height "$1" "$2" ;;
    --width) ref_need "$@"; ref_dec width "$1" "$2" ;;
    --cache-dir) ref_need "$@"; cache_dir=$2 ;;
    --log-level) ref_need "$@"; extra_encode+=("$1" "$2"); extra_denoise+=("$1" "$2") ;;
    --progress) ref_need "$@"; extra_denoise+=("$1" "$2") ;;
    *) ref_used=0 ;;
    esac
}

# ref_layers FLAG L...: each layer must be a non-negative integer (the reference's type=int;
# sfpipe has no negative layers). Whether the model has that layer is sf-denoise's to say, asked by
# ref_check before any stage starts. Sets ref_layer_flag (FLAG, the reference's spelling) for it.
ref_layers() {
    local l
    ref_layer_flag=$1
    shift
    for l in "$@"; do
        [[ "$l" =~ ^[0-9]+$ ]] || { echo "$ref_prog: error: $ref_layer_flag: '$l' is not a layer (a non-negative integer)" >&2; exit 2; }
    done
}

# ref_layer_list --layer-indices WORD...: --layer_indices N [N ...] (argparse's nargs='+'): the words up
# to the next flag into the array layer_words, at least one (else an error, exit 2); ref_used = the words
# taken with the flag. Also sf-batch's.
ref_layer_list() {
    local w
    layer_words=()
    for w in "${@:2}"; do [[ "$w" != --* ]] || break; layer_words+=("$w"); done
    [ ${#layer_words[@]} -gt 0 ] || { echo "$ref_prog: error: --layer_indices needs at least one value" >&2; exit 2; }
    ref_used=$((1 + ${#layer_words[@]}))
}

# ref_mkdir DIR: mkdir -p DIR (before ref_check, which wants the output's folder), remembering the
# folders it made, so that a refusal by ref_check removes them again: a refused run leaves nothing.
# A run that fails later (a stage's error, a signal) removes them too when they are still empty (every
# output is written to a temp file and renamed, so a failed run left nothing in them): like the
# reference, which makes its output folder only when it saves.
ref_made=()
ref_mkdir() {
    local d=$1 new=()
    while [ ! -d "$d" ] && [ "$d" != "$(dirname -- "$d")" ]; do new=("$d" "${new[@]}"); d=$(dirname -- "$d"); done
    mkdir -p -- "$1"
    ref_made+=("${new[@]}")
    [ ${#ref_made[@]} -eq 0 ] || trap 'ref_unmake $?' EXIT
}
ref_unmake() { # status: on failure, the folders ref_mkdir made, deepest first, those still empty
    local i
    [ "$1" -ne 0 ] || return 0
    for ((i = ${#ref_made[@]} - 1; i >= 0; i--)); do rmdir -- "${ref_made[i]}" 2>/dev/null || true; done
}

# ref_check: the finished `denoise` command asked to check itself (sf-denoise --check: its flags
# against the config, the model and the checkpoint, the tap layers), before any stage starts.
# Otherwise a refusal comes only once sf-encode is running, and that stage then also reports the
# closed pipe, a second line. A refusal is the stage's own one line, in the script's name and with
# the reference's layer flag; its exit status is kept. Warnings of a passing check are left to the
# run, which prints them again.
ref_check() {
    local msg rc=0
    msg=$("${denoise[@]}" --check --log-level error 2>&1 >/dev/null) || rc=$?
    [ "$rc" -eq 0 ] && return 0
    local i
    for ((i = ${#ref_made[@]} - 1; i >= 0; i--)); do rmdir -- "${ref_made[i]}" 2>/dev/null || true; done
    msg=${msg##*sf-denoise: error: }
    [ -n "${ref_layer_flag:-}" ] && msg=${msg//--layer_indices:/$ref_layer_flag:}
    echo "$ref_prog: error: ${msg:-sf-denoise --check failed (exit $rc)}" >&2
    exit "$rc"
}

# ref_commands NUM_FRAMES: the arrays `encode` and `denoise` (the script appends its tap flags), and
# `encode_base`, encode without its prompt and output.
# The noise is the reference's own: what torch.manual_seed(--seed) and torch.randn draw on the GPU
# (sf-denoise --noise-rng torch-cuda: on --gpu_id's card its geometry, on the CPU an H100's/H200's).
# The reference always runs on CUDA device --gpu_id (default 0). sf-denoise's DiT and sf-encode's umT5
# run there with --gpu_id N / --device cuda[:N]; without either we keep the CPU, so that the scripts also
# run on machines without a GPU. --encode-device puts the text encoder elsewhere (cpu: a card too small
# for umT5-XXL beside the DiT; a cached prompt runs no encoder at all).
ref_commands() {
    [ -n "$device" ] || device=cpu
    encode_base=(sf-encode --model-dir "$model_dir" --device "${encode_device:-$device}" "${extra_encode[@]}")
    [ -n "$cache_dir" ] && encode_base+=(--cache-dir "$cache_dir")
    encode=("${encode_base[@]}" --prompt "$prompt" --out -)
    denoise=(sf-denoise --model-dir "$model_dir" --config_path "$config_path" --device "$device"
        --num_frames "$1" --height "$height" --width "$width" --seed "$seed" --noise-rng torch-cuda --in - "${extra_denoise[@]}")
    if [ "$no_checkpoint" = 1 ]; then
        denoise+=(--no_checkpoint)
    else
        denoise+=(--checkpoint_path "$checkpoint_path" --use_ema)
    fi
}

# ref_parse OWN_FLAG OWN_KNOWN... -- ARG...: the whole command line, for every script here. Each
# spelling is expanded (ref_parse_flags, with the script's OWN_KNOWN flags), then each flag is a shared
# one (ref_flag), one of the script's own (its function OWN_FLAG FLAG [VALUE...] handles it and, as
# ref_flag does, sets ref_used to the words it took, 0 when FLAG is not its), -h/--help (the script's
# usage), or an unknown option: an error, exit 2.
ref_parse() {
    local own=$1 flag
    shift
    ref_parse_flags "$@"
    set -- "${sf_flags[@]}"
    while [ $# -gt 0 ]; do
        flag=${1//_/-}
        ref_flag "$flag" "${@:2}"
        [ "$ref_used" -gt 0 ] || "$own" "$flag" "${@:2}"
        if [ "$ref_used" -gt 0 ]; then shift "$ref_used"; continue; fi
        case "$flag" in
        -h|--help) sf_usage; exit 0 ;;
        *) echo "$ref_prog: error: unknown option '$1' (see --help)" >&2; exit 2 ;;
        esac
    done
}

# ref_parse_layer_script ARGS...: the flags of the reference's layer-list extraction scripts
# (run_extraction_figure4.py, _full_attention.py: --output_path, --num_frames, --layer_indices
# N [N ...] and the shared ones above) into output_path, num_frames and layer_indices, whose
# defaults the script sets first.
ref_layer_script_flag() {
    ref_used=2
    case "$1" in
    --output-path) ref_need "$@"; output_path=$2 ;;
    --num-frames) ref_need "$@"; ref_int "$1" "$2"; num_frames=$2 ;;
    --layer-indices) ref_layer_list "$@"; layer_indices=("${layer_words[@]}") ;;
    *) ref_used=0 ;;
    esac
}
ref_parse_layer_script() { ref_parse ref_layer_script_flag --output-path= --num-frames= --layer-indices= -- "$@"; }
