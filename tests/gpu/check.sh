#!/usr/bin/env bash
# tests/gpu/check.sh — the one prepared device check, run on the lent GPU machine through the
# device tool with the binaries built HERE by ../shared/device/bundle.sh (the GPU machine has no
# Debian -dev packages, so it cannot `make`):
#
#   ../shared/device/bundle.sh                       # on the CPU machine: build-gpu/ + .gpu/
#   bash tests/gpu/rehearse.sh                       # still here: the bundle tried on the CPU
#   device run: bash tests/gpu/check.sh              carry [".gpu", ".ref"]
#
# Steps (each under its own timeout; the summary table is printed last):
#   0. attention (part "attn", also in "tests"): test_hopper_gpu (the Hopper probes: wgmma in each operand
#      form, TMA through an mbarrier ring, named barriers — exact), test_tap_mass_gpu (every fused-attention
#      variant vs the CPU), test_dit_cuda attention_paths / taps_probs_cross, compute-sanitizer on the variants
#      (memcheck, racecheck, synccheck), sf-denoise --bench attn (every path beside cuDNN)
#   1. test_cuda_kernels          every CUDA kernel against its CPU reference
#      test_cuda_glue             test_cuda_emu.c's kernel cases on the real GPU
#   2. test_sdpa_plans            cuDNN fused attention: plans + forward vs the CPU attention
#   3. test_dit_cuda              golden dit_forward / dit_pipeline_* / taps on the GPU (bf16 tolerances)
#      test_t5_glue_gpu           the umT5 encoder's kernels against their CPU references
#      test_t5_cuda               golden t5 (all 28 prompts, prompt-0 intermediates) on the GPU
#      test_vae_glue              the VAE decoder's own kernels vs their CPU references
#      test_conv_plans            the VAE's cuDNN conv3d (every tiny-golden shape) vs sf_conv3d_cpu
#      test_vae_cuda              the GPU VAE decoder vs the vae golden (streamed = one-shot);
#                                 then sf-decode --device cuda vs --device cpu
#   4. compute-sanitizer          memcheck on small end-to-end runs (test_dit_cuda forward, test_t5_cuda
#                                 all_prompts, test_vae_cuda, test_tap_mass_gpu attn_mass_*), racecheck on
#                                 the kernels (DiT's, umT5's, the fused attention + mass: cp.async buffers)
#   5. sf-denoise --bench 1.3b    full size, random weights: ms per forward, video s, GPU memory
#      sf-encode --bench xxl      full-size umT5-XXL, random weights: ms per 512-token prompt, GPU memory
#      sf-decode --bench 1.3b     the VAE decoder, full size, random weights: s per 3-latent block, video s, memory
#   5b. taps overhead             (part "taps") the 1.3b video with all 30 layers tapped, every forward
#                                 kept: frames, probs (fused attn_mass.cu), probs on the explicit path
#                                 (SF_TAP_PROBS_EXPLICIT=1), on wgmma (SF_ATTN_WGMMA=1) and on the
#                                 warp-specialised TMA kernel (SF_ATTN_WS=1, =2 with the intra-warpgroup
#                                 overlap); then frames and probs with the default
#                                 selection (step 0 of each block); against the plain run (issue 14's
#                                 ≤ 10 % / ≤ 25 %)
#   6. the reference PyTorch bench (../shared/refbench/ref_bench.py, copied into .ref) in the same call
# Everything lands in $OUT (at most 8 files come back): summary.txt, report.txt, bench.txt,
# ref_bench.json, deviceprop.json, table.md (issue 13's figures, measured / target, beside the reference). A step that fails prints enough to fix it blind.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
OUT=${OUT:-$ROOT/gpu-out}
G=${SF_GPU_DIR:-/tmp/sfgpu}
mkdir -p "$OUT" "$G"
exec > >(tee "$OUT/report.txt") 2>&1
S=$OUT/summary.txt
: >"$S"
row() { printf '%-26s %s\n' "$1" "$2" >>"$S"; }
fail=0
echo "== sfpipe GPU check $(date -u +%FT%TZ) on $(uname -n)"
nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv,noheader | tee "$OUT/gpu.txt"
row gpu "$(head -n1 "$OUT/gpu.txt")"
tar -xzf .gpu/bundle.tar.gz -C "$G" || { echo "no .gpu/bundle.tar.gz: run ../shared/device/bundle.sh first"; exit 1; }

# Libraries the bundle does not carry: cuBLAS (toolkit or the venv's wheels), cuDNN, NVRTC.
find1() { find /usr/local /opt /usr/lib -name "$1" -print -quit 2>/dev/null | xargs -r dirname; }
cublas=$(for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do [ -e "$d/libcublas.so.13" ] && echo "$d" && break; done)
[ -n "$cublas" ] || cublas=$(find1 libcublas.so.13)
cudnn=$(find1 libcudnn.so.9)
nvrtc=$(find1 libnvrtc.so.13)
export LD_LIBRARY_PATH="$G/lib${cublas:+:$cublas}${cudnn:+:$cudnn}${nvrtc:+:$nvrtc}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PATH="$G/bin:$PATH" SF_ROOT="$ROOT" SF_GOLDEN="$ROOT/tests/golden" SF_TEST_DEVICE=cuda:0
row libraries "cublas ${cublas:-MISSING}; cudnn ${cudnn:-MISSING}; nvrtc ${nvrtc:-MISSING}"

# step LABEL SECONDS CMD... : run, keep the log in the report, summarise TAP counts.
step() {
    local label=$1 t=$2 log=/tmp/sf-$1.log rc p f k
    shift 2
    echo "== $label: $*"
    timeout "$t" "$@" >"$log" 2>&1
    rc=$?
    cat "$log"
    p=$(grep -c '^ok' "$log") f=$(grep -c '^not ok' "$log") k=$(grep -ci '^ok.*# skip' "$log")
    if [ "$rc" -ne 0 ] || [ "$f" -ne 0 ] || [ "$k" -ne 0 ]; then
        fail=1
        row "$label" "FAILED: exit $rc, $((p - k)) ok, $f not ok, $k skipped (a SKIP on the GPU is a failure)"
    else
        row "$label" "$p ok, exit 0"
    fi
}

# sanitize "TOOL TEST [CASE]"... : compute-sanitizer on each, its summary in the report and the table.
cs=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -n1)
sanitize() {
    local spec rc sum
    for spec in "$@"; do
        set -- $spec
        timeout 120 "$cs" --tool "$1" --error-exitcode 99 "$G/tests/$2" ${3:-} >/tmp/sf-san-$1.log 2>&1
        rc=$?
        sum=$(grep -m1 -oE '(ERROR|RACECHECK) SUMMARY: [0-9]+ [a-z]+' /tmp/sf-san-$1.log)
        echo "== sanitizer $1 on $2 ${3:-}: exit $rc, $sum"
        grep -m8 -E '^=+ +(Invalid|Race|Error|.*hazard|Uninitialized)|^=+ +at ' /tmp/sf-san-$1.log
        tail -n 3 /tmp/sf-san-$1.log
        row "sanitizer $1" "exit $rc; ${sum:-no summary} ($2 ${3:-})"
        [ "$rc" -eq 0 ] || fail=1
    done
}

# SF_CHECK_ONLY=LIST (comma list of attn,tests,bench,taps,e2e,ref) runs only those parts; default all.
# SF_CHECK_AB=0: part bench without its A/B runs (the headline figures only, to fit bench,e2e,ref in one call).
want() { [ -z "${SF_CHECK_ONLY:-}" ] || [[ ",$SF_CHECK_ONLY," == *",$1,"* ]]; }

# sfpipe's own attention kernels first (part "attn", also run by "tests"; a minute or two): correct on
# this GPU (each variant against the CPU, alone and inside the DiT), clean under the sanitizers (the
# warp-specialised kernel's mbarriers and TMA: synccheck), then their speed beside cuDNN's on the same
# inputs — the numbers that decide which kernel the DiT and the probs taps use — and the glue kernels'
# TB/s (seconds: here so that one short call brings every kernel-level figure).
if want attn || want tests; then
step hopper 60 "$G/tests/test_hopper_gpu" # wgmma operand forms, TMA ring, named barriers: exact, one at a time
step tap_mass 90 "$G/tests/test_tap_mass_gpu" # the probability taps' kernels vs kernels/tap_mass.h
step attn_dit 180 "$G/tests/test_dit_cuda" attention_paths taps_probs_cross graphs # graphs: forwards as CUDA graphs = without
if [ -n "$cs" ]; then
    # the warp-specialised modes share their memory traffic (memcheck on one), differ in register-level
    # overlap (racecheck on the overlapped one) and barriers (synccheck on the one with all of them)
    sanitize "racecheck test_tap_mass_gpu attn_mass_frames" "memcheck test_tap_mass_gpu attn_mass_small_groups" \
        "memcheck test_tap_mass_gpu attn_mass_wgmma" "memcheck test_tap_mass_gpu attn_mass_ws" \
        "racecheck test_tap_mass_gpu attn_mass_ws2" "synccheck test_tap_mass_gpu attn_mass_ws3" \
        "memcheck test_tap_mass_gpu attn_ws_split"
fi
echo "== the attention paths alone at full size (sf-denoise --bench attn)"
timeout 150 sf-denoise --bench attn --device cuda:0 2>&1 | tee -a "$OUT/bench.txt"
rc=${PIPESTATUS[0]}
mism=$(grep -c '^attention gpu .*MISMATCH' "$OUT/bench.txt")
row "bench attn" "exit $rc; $(grep -c '^attention gpu .* ms, ' "$OUT/bench.txt") paths timed, $(grep -c '^attention gpu .*not run' "$OUT/bench.txt") not run, $(grep -c '^attention gpu .*FAILED' "$OUT/bench.txt") failed, $mism wrong at full size (O vs cuDNN, masses vs the first mass path and their row sums)"
[ "$rc" -eq 0 ] && [ "$mism" -eq 0 ] || fail=1
echo "== the DiT's glue kernels alone at full size (sf-denoise --bench glue: TB/s against a device copy)"
timeout 60 sf-denoise --bench glue --device cuda:0 2>&1 | tee -a "$OUT/bench.txt"
row "bench glue" "exit ${PIPESTATUS[0]}; $(grep -m1 'glue gpu per forward' "$OUT/bench.txt" | sed 's/^glue gpu //')"
fi # attn

if want tests; then
step kernels 60 "$G/tests/test_cuda_kernels"
step glue 60 "$G/tests/test_cuda_glue" $(for t in rmsnorm_strided rmsnorm_odd_inplace rmsnorm_wide_odd \
    layernorm_plain_strided layernorm_affine_inplace gelu_tanh gelu_tanh_wrap silu_wrap modulate modulate_wrap \
    gated_add_wrap mod_table timestep_embed_wrap scheduler_steps_wrap rope_strided patchify_unpatchify f32_to_bf16 bf16_to_f32_and_add_wrap \
    softmax_rows_strided softmax_rows_short softmax_rows_spike gemm_bias_strided linear_bias_epilogue \
    attention_blas_kv_interleaved graphs; do echo $t; done) # the emulator's self-tests SKIP on a GPU
step sdpa 120 env SF_CUDNN_DEBUG=1 "$G/tests/test_sdpa_plans" forward_gpu # deviceless_plans: CPU machine only
step dit_cuda 180 "$G/tests/test_dit_cuda"
step t5_glue 60 "$G/tests/test_t5_glue_gpu"
step t5_cuda 120 "$G/tests/test_t5_cuda"
step vae_glue 60 "$G/tests/test_vae_glue" # the VAE's own kernels vs kernels/vae_ops.h
step conv 120 env SF_CUDNN_DEBUG=1 "$G/tests/test_conv_plans" forward_gpu # the VAE's cuDNN conv3d vs sf_conv3d_cpu
step vae_cuda 180 env SF_TEST_VERBOSE=1 "$G/tests/test_vae_cuda" # GPU VAE decoder vs the vae golden, streamed = one-shot

if [ -n "$cs" ]; then
    sanitize "memcheck test_dit_cuda forward" "racecheck test_cuda_kernels" "memcheck test_t5_cuda all_prompts" \
        "racecheck test_t5_glue_gpu" "memcheck test_vae_cuda vae_cuda_golden"
else
    row compute-sanitizer "not found"
fi

echo "== sf-decode --device cuda vs --device cpu on the vae golden latents (video: max abs diff <= 0.1, the bound of SF_TOL_VAE_BF16)"
for d in cuda cpu; do
    timeout 120 sf-decode --latents tests/golden/expect/vae.safetensors:z --vae tests/golden/model/Wan2.1_VAE.pth \
        --device $d --save-video /tmp/sf-vae-$d.safetensors -o /tmp/sf-vae-$d.y4m 2>&1 | tail -n 2
done
sf-tensor diff /tmp/sf-vae-cpu.safetensors /tmp/sf-vae-cuda.safetensors --rtol 0 --atol 0.1 -q 2>&1 | tail -n 3
rd=${PIPESTATUS[0]}
row "sf-decode --device cuda" "diff vs cpu exit $rd"
[ "$rd" -eq 0 ] || fail=1

echo "== figure4.sh --gpu_id 0 (the reference command on the GPU) vs the same on the CPU, tiny model"
M=/tmp/sf-tiny
rm -rf "$M" /tmp/f4 && mkdir -p /tmp/f4
if sf-mkmodel tiny "$M" --seed 5 --checkpoint "$M/ckpt.pt" >/tmp/sf-mk.log 2>&1; then
    f4() { timeout 120 pipelines/figure4.sh --config_path configs/self_forcing_dmd.yaml --checkpoint_path "$M/ckpt.pt" \
        --prompt "A red fox trotting through fresh snow" --num_frames 9 --layer_indices 0 2 --use_ema --seed 42 \
        --model-dir "$M" --height 64 --width 96 --cache-dir /tmp/f4/cache "$@"; }
    f4 --output_path /tmp/f4/gpu.pt --gpu_id 0 >/tmp/f4/gpu.log 2>&1
    rg=$?
    f4 --output_path /tmp/f4/cpu.pt >/tmp/f4/cpu.log 2>&1
    rc=$?
    tail -n 3 /tmp/f4/gpu.log
    sf-tensor ls /tmp/f4/gpu.pt 2>&1 | head -n 6
    # bf16 GPU logits vs the f32 CPU run: the tolerance of the GPU golden taps (5e-2 of the logits' scale)
    sf-tensor diff /tmp/f4/cpu.pt /tmp/f4/gpu.pt --rtol 0.05 --atol 0.5 -q 2>&1 | tail -n 4
    rd=${PIPESTATUS[0]}
    row "figure4.sh --gpu_id 0" "gpu exit $rg, cpu exit $rc, diff exit $rd"
    [ "$rg" -eq 0 ] && [ "$rc" -eq 0 ] || fail=1
else
    row "figure4.sh --gpu_id 0" "sf-mkmodel failed: $(tail -n1 /tmp/sf-mk.log)"
    fail=1
fi

fi # tests

if want bench; then
echo "== bench: sf-denoise --bench 1.3b --device cuda (random weights, 832x480, 21 latent frames)"
timeout 150 sf-denoise --bench 1.3b --device cuda:0 --progress none 2>&1 | tee -a "$OUT/bench.txt"
rc=${PIPESTATUS[0]}
row "bench sfpipe" "exit $rc; $(grep -m1 'gpu video:' "$OUT/bench.txt" | sed 's/^denoise 1.3b gpu video: //')"
[ "$rc" -eq 0 ] || fail=1
echo "== bench: sf-decode --bench 1.3b --device cuda (random weights, 21 latent frames -> 81 frames at 832x480)"
timeout 150 sf-decode --bench 1.3b --device cuda:0 2>&1 | tee -a "$OUT/bench.txt"
rc=${PIPESTATUS[0]}
row "bench sf-decode" "exit $rc; $(grep -m1 'decode 1.3b gpu video:' "$OUT/bench.txt" | sed 's/^decode 1.3b gpu video: //')"
[ "$rc" -eq 0 ] || fail=1
# the A/B runs (SF_CHECK_AB=0 skips them: a call that must also fit e2e and the reference keeps only
# the headline figures — the DiT's profiled run stays, it gives the GEMM / attention TFLOP/s rows)
if [ "${SF_CHECK_AB:-1}" != 0 ]; then
echo "== VAE bench with one cuDNN call per output frame (SF_VAE_FRAME_CONVS=1: the batched convolutions must pay against it)"
SF_VAE_FRAME_CONVS=1 timeout 120 sf-decode --bench 1.3b --device cuda:0 2>&1 | grep -E 'gpu (video|seconds|memory)' | sed 's/^/per-frame convs: /' | tee -a "$OUT/bench.txt"
echo "== VAE bench with cuDNN's first-choice conv plans (SF_CUDNN_AUTOTUNE=0: the autotuned plans must pay against them)"
SF_CUDNN_AUTOTUNE=0 timeout 120 sf-decode --bench 1.3b --device cuda:0 2>&1 | grep -E 'gpu (video|seconds|memory)' | sed 's/^/no autotune: /' | tee -a "$OUT/bench.txt"
row "VAE conv autotune" "$(awk '/^decode 1.3b gpu video:/ && !a { a = $5 } /^no autotune: decode 1.3b gpu video:/ { b = $7 } END { if (a > 0 && b > 0) printf "tuned %.3f s vs first choices %.3f s: %+.1f%%", a, b, 100 * (a / b - 1); else print "no figures" }' "$OUT/bench.txt"); $(grep -m1 -o '[0-9]* conv shapes autotuned in [0-9.]* s' "$OUT/bench.txt")"
echo "== VAE bench again with SF_CUDA_PROFILE=1 (per latent frame: convs, 1x1 GEMMs, norms, attention, upsampling, caches, I/O)"
SF_CUDA_PROFILE=1 timeout 120 sf-decode --bench 1.3b --device cuda:0 2>&1 | grep -E 'gpu (video|profile)' | sed 's/^/profiled: /' | tee -a "$OUT/bench.txt"
fi # A/B
echo "== bench again with SF_CUDA_PROFILE=1 (events around every op: where the time goes)"
SF_CUDA_PROFILE=1 timeout 120 sf-denoise --bench 1.3b --device cuda:0 --progress none 2>&1 | grep -E 'gpu (video|profile)' | tee -a "$OUT/bench.txt"
if [ "${SF_CHECK_AB:-1}" != 0 ]; then
echo "== DiT bench with the FFN's GELU as its own kernel (SF_CUDA_GELU_UNFUSED=1: the cuBLASLt GELU epilogue must pay against it)"
SF_CUDA_GELU_UNFUSED=1 timeout 120 sf-denoise --bench 1.3b --device cuda:0 --progress none 2>&1 | grep -E 'gpu video' | sed 's/^/gelu unfused: /' | tee -a "$OUT/bench.txt"
row "GELU epilogue" "$(awk '/^denoise 1.3b gpu video:/ && !a { a = $5 } /^gelu unfused: denoise 1.3b gpu video:/ { b = $7 } END { if (a > 0 && b > 0) printf "fused %.3f s vs unfused %.3f s: %+.1f%%", a, b, 100 * (a / b - 1); else print "no figures" }' "$OUT/bench.txt")"
echo "== DiT bench without CUDA graphs (SF_CUDA_GRAPHS=0: each forward's ~600 launches one by one; the graphs must pay against it)"
SF_CUDA_GRAPHS=0 timeout 120 sf-denoise --bench 1.3b --device cuda:0 --progress none 2>&1 | grep -E 'gpu (video|block|CUDA graphs)' | sed 's/^/no graphs: /' | tee -a "$OUT/bench.txt"
row "CUDA graphs" "$(awk '/^denoise 1.3b gpu CUDA graphs:/ && !g { g = $6 " of " $8 " forwards" } /^denoise 1.3b gpu video:/ && !a { a = $5 } /^no graphs: denoise 1.3b gpu video:/ { b = $7 } END { if (a > 0 && b > 0) printf "graphs %.3f s (%s) vs none %.3f s: %+.1f%%", a, g, b, 100 * (a / b - 1); else print "no figures" }' "$OUT/bench.txt")"
fi # A/B

echo "== bench: sf-encode --bench xxl --device cuda (umT5-XXL, random bf16 weights, one 512-token prompt)"
timeout 120 sf-encode --bench xxl --device cuda:0 2>&1 | tee -a "$OUT/bench.txt" /tmp/sf-t5bench.log
rc=${PIPESTATUS[0]}
row "bench umT5-XXL" "exit $rc; $(grep -m1 'per 512-token prompt' /tmp/sf-t5bench.log | sed 's/^encode xxl gpu: //'); $(grep -m1 -o 'device used [0-9.]* of [0-9.]* GiB' /tmp/sf-t5bench.log)"
[ "$rc" -eq 0 ] || fail=1
[ "${SF_CHECK_AB:-1}" != 0 ] && SF_CUDA_PROFILE=1 timeout 120 sf-encode --bench xxl --device cuda:0 2>&1 | grep -E 'per 512|profile' | tee -a "$OUT/bench.txt"

fi # bench

# attention-tap overhead: the same full-size video with all 30 layers tapped (every forward kept)
if want taps; then
echo "== taps: sf-denoise --bench 1.3b with SF_BENCH_TAPS=frames / probs vs no taps"
tv() { SF_BENCH_TAPS=$1 timeout 200 sf-denoise --bench 1.3b --device cuda:0 --progress none 2>&1 | tee -a "$OUT/bench.txt" | grep -m1 'gpu video:' | awk '{print $5}'; }
t0=$(grep -m1 'gpu video:' "$OUT/bench.txt" 2>/dev/null | awk '{print $5}')
[ -n "$t0" ] || t0=$(tv "")
# sfpipe's own fused attention in cuDNN's place (the kernel probs mode runs, without the masses): its
# TFLOP/s against cuDNN's decides whether a wgmma version is the next step
echo "== sfpipe's fused attention instead of cuDNN (SF_NO_CUDNN=1, profiled): mma.sync, wgmma, warp-specialised"
SF_NO_CUDNN=1 SF_CUDA_PROFILE=1 timeout 200 sf-denoise --bench 1.3b --device cuda:0 --progress none 2>&1 | tee -a "$OUT/bench.txt" |
    grep -E 'gpu video:|gpu profile'
SF_ATTN_WGMMA=1 SF_NO_CUDNN=1 SF_CUDA_PROFILE=1 timeout 200 sf-denoise --bench 1.3b --device cuda:0 --progress none 2>&1 |
    tee -a "$OUT/bench.txt" | grep -E 'gpu video:|gpu profile'
for ws in 1 2; do
    SF_ATTN_WS=$ws SF_NO_CUDNN=1 SF_CUDA_PROFILE=1 timeout 200 sf-denoise --bench 1.3b --device cuda:0 --progress none 2>&1 |
        tee -a "$OUT/bench.txt" | grep -E 'gpu video:|gpu profile'
done
# probs: the attention fused with the masses (attn_mass.cu), then the explicit path it replaced (A/B);
# every forward kept (the worst case), then the CLI's default selection (+seed: step 0 of each block)
for m in frames probs probs-explicit probs-wgmma probs-ws probs-ws2 frames+seed probs+seed; do
    case $m in
    probs-explicit) t=$(SF_TAP_PROBS_EXPLICIT=1 tv probs) ;;
    probs-wgmma) t=$(SF_ATTN_WGMMA=1 tv probs) ;;
    probs-ws) t=$(SF_ATTN_WS=1 tv probs) ;;
    probs-ws2) t=$(SF_ATTN_WS=2 tv probs) ;;
    *) t=$(tv $m) ;;
    esac
    row "taps $m overhead" "$(awk -v a="$t0" -v b="$t" 'BEGIN { if (a > 0 && b > 0) printf "%.3f s vs %.3f s: +%.1f%%", b, a, 100 * (b / a - 1); else print "failed" }')"
done
fi # taps

# the three stages as one sf-run pipeline on the GPU: tiny (GPU vs CPU) and full size, timed end to end
if want e2e; then
    bash tests/gpu/e2e.sh "$G"
    rc=$?
    cat /tmp/sf-e2e/summary.txt 2>/dev/null | while IFS= read -r l; do row "e2e" "$l"; done
    [ "$rc" -eq 0 ] || { fail=1; row "e2e" "FAILED: exit $rc"; }
fi

if want ref && [ -f .ref/ref_bench.py ] && [ "${SF_SKIP_REF:-0}" != 1 ]; then
    echo "== reference PyTorch bench (same call, same card)"
    PYTHONUNBUFFERED=1 timeout -s INT "${SF_REF_TIMEOUT:-260}" python3 .ref/ref_bench.py --ref .ref --out /tmp/ref \
        --stages "${SF_REF_STAGES:-dit,vae,t5}" --deadline-s "${SF_REF_DEADLINE:-220}" >/tmp/sf-ref.log 2>&1
    rc=$?
    tail -n 25 /tmp/sf-ref.log
    cp /tmp/ref/ref_bench.json "$OUT/" 2>/dev/null
    row "bench reference" "exit $rc; $(python3 -c 'import json,sys;d=json.load(open("/tmp/ref/ref_bench.json"));s=d.get("summary",{});print({k:s[k] for k in list(s)[:6]})' 2>/dev/null)"
    row "reference stages" "$(python3 -c 'import json;s=json.load(open("/tmp/ref/ref_bench.json")).get("summary",{});print({k:s.get(k) for k in ("dit_total_s","vae_decode_s","t5_encode_ms","fps","fps_incl_t5","vae_peak_gib","t5_peak_gib")})' 2>/dev/null)"
else
    row "bench reference" "skipped (.ref missing or SF_SKIP_REF=1)"
fi
# issue 13's table: every figure measured / target, the reference's beside it (tests/gpu/table.py)
if want bench || want e2e || want attn || want taps; then
    echo "== the real-time table (tests/gpu/table.py)"
    python3 tests/gpu/table.py "$OUT/bench.txt" /tmp/sf-e2e/summary.txt "$OUT/ref_bench.json" | tee "$OUT/table.md"
fi
echo "== summary (logs in $OUT)"
cat "$S"
[ $fail -eq 0 ] && echo "GPU CHECK PASSED" || { echo "GPU CHECK FAILED"; exit 1; }
