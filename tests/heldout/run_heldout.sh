#!/usr/bin/env bash
# tests/heldout/run_heldout.sh [OUTDIR] — sfpipe against the reference on model shapes and sampling configs the
# goldens never used.
#   1. make_heldout.py writes tiny models of other sizes in the real file formats and runs the reference PyTorch
#      modules on them (float32 CPU, exact softmax): umT5 embeddings, the causal loop under each shape's config
#      (block sizes, step list, warp, context noise, shift, cache window), a VAE decode;
#   2. sfpipe's CPU stages run on the same files and inputs: sf-encode (the prompts), sf-denoise (the reference's
#      prompt embedding, replayed noise and initial latents where the shape has them, --dump-preds), sf-decode (the reference's latent);
#   3. compare_heldout.py compares tensor by tensor (max|d| / max|ref|; 1e-4 single forward, 1e-3 end of loop);
#      build/tests/test_vae_encode encode_heldout holds the VAE encoder to the reference's encode_to_latent (1e-4);
#      taehv_heldout.py holds sf-decode's TAEHV tiny decoder to the reference's on checkpoints of its own.
# OUTDIR defaults to a temporary folder (removed on success). Needs a built tree (make), python3 with torch
# (Debian's python3-torch: /usr/bin/python3), numpy and pyyaml, and the reference source (see make_heldout.py:
# --ref / $SF_REF / ./.ref / the fork's git mirror). Env: SF_HELDOUT_SHAPES=a,b (subset), SF_HELDOUT_PY (python),
# SF_BIN (default build/bin), SF_HELDOUT_ARGS (more make_heldout.py arguments, e.g. "--ref DIR"),
# SF_HELDOUT_MD (write the table as markdown there), SF_HELDOUT_REUSE=1 (OUTDIR already holds the reference's
# files: only rerun sfpipe, e.g. under SF_CPU_EXACT=1 or after a rebuild), SF_HELDOUT_DEVICE=cuda:N (the stages on
# that GPU — or, with SF_BIN=build/emu-bin, on the CPU emulation of the CUDA backend — held to bf16 bounds, as
# under SF_CPU_PRECISION=bf16). Exit 1 when anything is out of tolerance. About a minute.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${SF_HELDOUT_PY:-}
if [ -z "$PY" ]; then
    for p in python3 /usr/bin/python3; do "$p" -c 'import torch, numpy, yaml' 2>/dev/null && PY=$p && break; done
fi
[ -n "$PY" ] || { echo "run_heldout: no python3 with torch, numpy and pyyaml (apt-get install python3-torch python3-yaml)" >&2; exit 1; }
BIN=${SF_BIN:-build/bin}
for b in sf-encode sf-denoise sf-decode; do [ -x "$BIN/$b" ] || { echo "run_heldout: no $BIN/$b (make first)" >&2; exit 1; }; done
keep=1
if [ $# -ge 1 ]; then OUT=$1; else OUT=$(mktemp -d); keep=0; fi
mkdir -p "$OUT"
shapes=${SF_HELDOUT_SHAPES:-}
if [ "${SF_HELDOUT_REUSE:-0}" = 1 ] && ls "$OUT"/*/shape.json >/dev/null 2>&1; then
    echo "run_heldout: reusing the reference outputs in $OUT (SF_HELDOUT_REUSE=1)"
else
    # shellcheck disable=SC2086
    "$PY" tests/heldout/make_heldout.py "$OUT" ${shapes:+--shapes "$shapes"} ${SF_HELDOUT_ARGS:-}
fi
thr=$(nproc 2>/dev/null || echo 2)
dev=() bf16=()
# on a GPU a stage may refuse a shape its device code does not take (e.g. the VAE's cuDNN convolutions need
# widths that are multiples of 8): reported as refused, with the stage's reason, not as a mismatch
if [ -n "${SF_HELDOUT_DEVICE:-}" ]; then dev=(--device "$SF_HELDOUT_DEVICE") bf16=(--bf16 --allow-refusal); fi
if [ "${SF_CPU_PRECISION:-}" = bf16 ]; then bf16=(--bf16); fi
for sd in "$OUT"/*/; do
    sd=${sd%/}
    [ -f "$sd/shape.json" ] || continue
    name=$(basename "$sd")
    if [ -n "$shapes" ] && [[ ",$shapes," != *",$name,"* ]]; then continue; fi
    read -r frames height width initial < <("$PY" -c 'import json,sys; d=json.load(open(sys.argv[1]))["dit_run"]; print(d["frames"], d["height"], d["width"], d.get("initial", 0))' "$sd/shape.json")
    init=()
    if [ "$initial" != 0 ]; then init=(--initial-latents "$sd/expect/dit.safetensors:initial_latent"); fi
    rm -rf "$sd/got" # nothing from an earlier run may stand in for a stage that fails now
    mkdir -p "$sd/got"
    log="$sd/got/stages.log"
    : >"$log"
    echo "run_heldout: $name: sf-encode, sf-denoise ($frames latent frames, ${width}x${height}), sf-decode"
    "$BIN/sf-encode" --model-dir "$sd/model" --no-cache --prompts "$sd/prompts.txt" \
        --save-embeds "$sd/got/t5.safetensors" "${dev[@]}" --threads "$thr" --progress none >>"$log" 2>&1 ||
        { echo "run_heldout: $name: sf-encode failed:"; tail -n 5 "$log"; tail -n 1 "$log" >"$sd/got/t5.refused"; }
    run=(--model-dir "$sd/model" --config-path "$sd/config.yaml" --no-checkpoint --num-frames "$frames" --height "$height"
         --width "$width" --prompt-embeds "$sd/expect/dit.safetensors:context.prompt_embeds" --noise "$sd/expect/dit.safetensors"
         "${init[@]}" "${dev[@]}" --threads "$thr" --progress none)
    taps=() # every layer's self-attention logits of every forward, beside the reference's (expect/taps.safetensors)
    if [ -f "$sd/expect/taps.safetensors" ]; then taps=(--layer_indices all --tap-select all --output_path "$sd/got/taps.safetensors"); fi
    "$BIN/sf-denoise" "${run[@]}" --dump-preds "${taps[@]}" --save-latents "$sd/got/dit.safetensors" >>"$log" 2>&1 ||
        { echo "run_heldout: $name: sf-denoise failed:"; tail -n 5 "$log"; tail -n 1 "$log" >"$sd/got/dit.refused"; }
    for mode in frames probs; do # and their aggregates: each a run of its own (one tap mode a run)
        [ ${#taps[@]} -gt 0 ] || break
        "$BIN/sf-denoise" "${run[@]}" --layer_indices all --tap-select all --tap-mode "$mode" \
            --output_path "$sd/got/taps_$mode.safetensors" >>"$log" 2>&1 ||
            { echo "run_heldout: $name: sf-denoise --tap-mode $mode failed:"; tail -n 5 "$log"; }
    done
    "$BIN/sf-decode" --latents "$sd/expect/vae.safetensors:z" --model-dir "$sd/model" \
        --save-video "$sd/got/vae.safetensors" "${dev[@]}" --threads "$thr" --progress none >>"$log" 2>&1 ||
        { echo "run_heldout: $name: sf-decode failed:"; tail -n 5 "$log"; tail -n 1 "$log" >"$sd/got/vae.refused"; }
done
rc=0
# the VAE encoder has no stage of its own yet: test_vae_encode's encode_heldout holds it to every shape's
# expect/vae_encode.safetensors (the reference's encode_to_latent on that shape's VAE)
enc_test=${SF_ENC_TEST:-$(dirname "$BIN")/tests/test_vae_encode}
if [ -z "${SF_HELDOUT_DEVICE:-}" ] && [ -x "$enc_test" ]; then
    echo "run_heldout: the VAE encoder (${enc_test} encode_heldout)"
    SF_HELDOUT_DIR="$OUT" SF_HELDOUT_SHAPES="$shapes" "$enc_test" encode_heldout || rc=1
elif [ -z "${SF_HELDOUT_DEVICE:-}" ]; then
    echo "run_heldout: no $enc_test (SF_ENC_TEST): the VAE encoder is not checked"
fi
# the TAEHV tiny decoder (sf-decode --vae taew2_1.pth): its own checkpoints of other widths / strides / depths
echo "run_heldout: the TAEHV decoder (tests/heldout/taehv_heldout.py)"
# shellcheck disable=SC2086
"$PY" tests/heldout/taehv_heldout.py "$OUT/taehv" --bin "$BIN" ${SF_HELDOUT_DEVICE:+--device "$SF_HELDOUT_DEVICE"} \
    ${SF_HELDOUT_ARGS:-} || rc=1
rc2=0
"$PY" tests/heldout/compare_heldout.py "$OUT" "${bf16[@]}" ${SF_HELDOUT_MD:+--md "$SF_HELDOUT_MD"} || rc2=$?
[ "$rc2" = 0 ] || rc=$rc2
if [ "$keep" = 0 ]; then
    if [ "$rc" = 0 ]; then rm -rf "$OUT"; else echo "run_heldout: kept $OUT"; fi
fi
exit "$rc"
