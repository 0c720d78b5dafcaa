#!/usr/bin/env bash
# tests/heldout/run_deepforcing.sh [OUTDIR] — sf-denoise --pc-budget and --sink-rope realign against Deep Forcing's
# released code on settings its goldens (tests/golden/expect/dit_deepforcing.*, dit_deepsink.*: one setting each, the
# reuse limit never reached) never used: other budgets, recent windows, sinks and reuse limits, longer videos, Deep
# Sink alone in another window (make_deepforcing.py --sweep's SWEEP). Each run of the release, then sf-denoise with
# the flags that ask for the same on the same noise, every prediction within 1e-4 (as the goldens' bats tests). A developer's check (`make heldout` runs it after
# run_heldout.sh), not part of make test: it needs python3 with torch and the release's git history — a mirror of
# Nizben/Spectral_C ($SF_DF_MIRROR, default /work/.mirror/Nizben+Spectral_C/repo); without one it says so and exits 0.
# OUTDIR defaults to a temporary folder (removed on success). SF_BIN: the programs (default build/bin). Exit 1 when a
# run differs. About a minute.
set -euo pipefail
cd "$(dirname "$0")/../.."
MIRROR=${SF_DF_MIRROR:-/work/.mirror/Nizben+Spectral_C/repo}
if ! git --git-dir "$MIRROR" cat-file -e ea9961aa4bd5b554daeecdcf59e37c495fba9df6 2>/dev/null; then
    echo "run_deepforcing: no git history of Deep Forcing's release at $MIRROR (fetch github:Nizben/Spectral_C, or set SF_DF_MIRROR): skipped"
    exit 0
fi
PY=${SF_HELDOUT_PY:-}
if [ -z "$PY" ]; then
    for p in python3 /usr/bin/python3; do "$p" -c 'import torch, numpy, yaml' 2>/dev/null && PY=$p && break; done
fi
[ -n "$PY" ] || { echo "run_deepforcing: no python3 with torch, numpy and pyyaml" >&2; exit 1; }
BIN=${SF_BIN:-build/bin}
for b in sf-denoise sf-tensor; do [ -x "$BIN/$b" ] || { echo "run_deepforcing: no $BIN/$b (make first)" >&2; exit 1; }; done
keep=1
if [ $# -ge 1 ]; then OUT=$1; else OUT=$(mktemp -d); keep=0; fi
mkdir -p "$OUT"
"$PY" tests/heldout/make_deepforcing.py "$OUT" --mirror "$MIRROR" --sweep
G=tests/golden
P=$G/expect/dit_pipeline_base.safetensors
fail=0
while read -r name frames flags; do
    [ -n "$name" ] || continue
    E=$OUT/$name.safetensors
    # shellcheck disable=SC2086
    "$BIN/sf-denoise" --model-dir "$G/model" --config_path "$OUT/$name.yaml" --no_checkpoint --num_frames "$frames" \
        --height 32 --width 48 --prompt-embeds "$P:context.prompt_embeds" --noise "$E" --deterministic --dump-preds \
        --progress none $flags --save-latents "$OUT/$name.sfpipe.safetensors" >"$OUT/$name.log" 2>&1 ||
        { echo "FAIL $name: sf-denoise $flags: $(tail -n 1 "$OUT/$name.log")"; fail=1; continue; }
    # the release's noise is only in its file: names only in A make the exit 1, so the summary line decides
    sum=$("$BIN/sf-tensor" diff "$E" "$OUT/$name.sfpipe.safetensors" --rtol 1e-4 --atol 1e-4 -q | grep '^# .* compared' || true)
    preds=$((frames / 3 * 3 + 1)) # 3 predictions a block (2 steps + the clean-context pass) and the latents
    if [[ "$sum" == "# $preds compared, 0 mismatched,"* ]]; then
        echo "ok   $name ($frames latent frames; $flags): ${sum#\# }"
    else
        echo "FAIL $name ($frames latent frames; $flags): ${sum:-no summary} — rerun: $BIN/sf-tensor diff $E $OUT/$name.sfpipe.safetensors"
        fail=1
    fi
done <"$OUT/sweep.txt"
if [ $fail -eq 0 ]; then
    echo "run_deepforcing: every setting within 1e-4 of the release"
    [ $keep -eq 1 ] || rm -rf "$OUT"
else
    echo "run_deepforcing: differences (files kept in $OUT)"
fi
exit $fail
