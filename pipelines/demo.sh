#!/usr/bin/env bash
# demo.sh — the reference's demo.py (its live web demo), same flags and defaults, as sfpipe's live
# pipeline (pipelines/live.yaml: sf-encode --serve → sf-denoise → sf-decode → sf-view): one page that
# plays the video while it is generated and takes new prompts.
#
#   pipelines/demo.sh [--port 5001] [--host 127.0.0.1] [--checkpoint_path P] [--config_path P] [--trt]
#                     [--prompt S] [--seed N] [--no_checkpoint] [--gpu_id N]
#                     [--model-dir DIR] [--device cpu|cuda|cuda:N] [--encode-device cpu|cuda|cuda:N]
#                     [--height H] [--width W] [--cache-dir DIR] [--fp8] [--vae FILE]
#                     [--log-level L] [--dry-run]
# Every flag also works in --dash-form, as --flag=value and abbreviated to a unique prefix, like argparse.
# Then open http://127.0.0.1:5001/ (the port given); Ctrl-C, or closing the page for 10 s, ends it.
# What differs from demo.py, on purpose:
#   --host     demo.py listens on 0.0.0.0, every interface, by default; here 127.0.0.1, this machine only
#              (the page has no login: anyone who reaches it can watch and send prompts). --host ADDR
#              listens there, with a warning, and the page also answers to this machine's name.
#   --trt      demo.py's TensorRT build of the Wan VAE: accepted; on --device cuda sfpipe's decoder is its
#              own CUDA VAE (a note says so).
#   the page   one endless video (a rolling KV cache) that new prompts steer, not demo.py's 81-frame
#              clips started from a form; its "FP8" and "TAEHV" switches are --fp8 (sf-denoise) and
#              --vae taew2_1.pth (sf-decode) here, chosen at start; its seed field is --seed (default 42).
#   --device   like the other drop-ins, the CPU unless --gpu_id N or --device is given, so that it runs on
#              machines without a GPU (demo.py always uses CUDA; at full size a CPU is far from real time).
# --dry-run prints the sf-run command and the stages' command lines, and exits.
set -euo pipefail

ref_prog=demo.sh
. "$(dirname -- "$0")/reference_flags.sh"
port=5001
host=127.0.0.1
trt=0
fp8=false
vae=
dry=0

demo_flag() {
    ref_used=2
    case "$1" in
    --port) ref_need "$@"; ref_dec port "$1" "$2" ;;
    --host) ref_need "$@"; host=$2 ;;
    --vae) ref_need "$@"; vae=$2 ;;
    --trt) ref_used=1; trt=1 ;;
    --fp8) ref_used=1; fp8=true ;;
    --dry-run) ref_used=1; dry=1 ;;
    *) ref_used=0 ;;
    esac
}
ref_parse demo_flag --port= --host= --vae= --trt --fp8 --dry-run -- "$@"
[ "$port" -ge 1 ] && [ "$port" -le 65535 ] || { echo "demo.sh: error: --port must be in 1..65535, got $port" >&2; exit 2; }
[ -n "$device" ] || device=cpu
[ "$trt" = 0 ] || echo "demo.sh: note: --trt (demo.py's TensorRT VAE) has no counterpart: on --device cuda sf-decode runs its own CUDA VAE" >&2
vars=(model_dir="$model_dir" config="$config_path" prompt="$prompt" seed="$seed" device="$device"
    height="$height" width="$width" cache_dir="$cache_dir" port="$port" bind="$host" fp8="$fp8" vae="$vae"
    encoder_socket="${TMPDIR:-/tmp}/sf-demo-encoder")
if [ "$no_checkpoint" = 1 ]; then vars+=(checkpoint= denoise.no-checkpoint=true)
else vars+=(checkpoint="$checkpoint_path"); fi
[ -z "$encode_device" ] || vars+=(encode.device="$encode_device")
case $host in 127.0.0.1|localhost) ;; *) vars+=(allow_host="$(hostname)") ;; esac
opts=()
for ((i = 0; i + 1 < ${#extra_encode[@]}; i++)); do
    [ "${extra_encode[i]}" != --log-level ] || opts+=(--log-level "${extra_encode[i + 1]}")
done
if [ "$dry" = 1 ]; then
    printf 'sf-run %q' "$ref_here/live.yaml"
    printf ' %q' "${vars[@]}"
    echo
    opts+=(--dry-run)
fi
exec sf-run "$ref_here/live.yaml" "${vars[@]}" "${opts[@]}"
