#!/usr/bin/env bash
# tests/gpu/check.sh — the one prepared device check (run through the device tool on an H100):
#   1. build with nvcc -arch=sm_90a,
#   2. run build/tests/test_cuda_kernels (must pass, not SKIP: a device is expected), then every unit test (each CUDA kernel's test compares it with its CPU reference when a
#      GPU is present) and the golden end-to-end bats suites,
#   3. run `make bench` at full size with random weights (sf-mkmodel 1.3b),
# and write a report under $OUT (default ./gpu-out). Record the figures in tests/gpu/RESULTS.md.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
report="$OUT/report.txt"
exec > >(tee "$report") 2>&1
echo "== sfpipe GPU check $(date -u +%FT%TZ)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "nvidia-smi: not available"
command -v nvcc >/dev/null || export PATH=/usr/local/cuda/bin:$PATH
nvcc --version | tail -n 2
echo "== build (sm_90a)"
make -j"$(nproc)" CUDA_ARCH=90a >"$OUT/build.log" 2>&1 || { tail -n 50 "$OUT/build.log"; echo "BUILD FAILED"; exit 1; }
grep -m1 '^sfpipe build' "$OUT/build.log"
echo "== device"
build/bin/sf-tensor --version || true
echo "== CUDA kernels vs CPU references (tests/unit/test_cuda_kernels.c; a GPU is expected here)"
# A SKIP here means the test found no usable device: on the GPU machine that is a failure.
cuda_log="$OUT/test_cuda_kernels.txt"
SF_TEST_DEVICE=cuda:0 build/tests/test_cuda_kernels >"$cuda_log" 2>&1
cuda_rc=$?
cat "$cuda_log"
if [ "$cuda_rc" -ne 0 ] || grep -q '^not ok' "$cuda_log"; then
    echo "CUDA KERNEL TESTS FAILED (exit $cuda_rc); see $cuda_log"; cuda_bad=1
elif grep -q '# SKIP' "$cuda_log"; then
    echo "CUDA KERNEL TESTS SKIPPED ON A GPU MACHINE: no usable CUDA device (nvidia-smi above, driver?)"; cuda_bad=1
else
    cuda_bad=0
fi
echo "== unit + bats tests (CUDA kernels vs CPU references where a GPU is present)"
SF_TEST_DEVICE=cuda:0 make test 2>&1 | tail -n 40
echo "== bench (full size, random weights)"
SF_BENCH_FULL=1 make bench 2>&1 | tee "$OUT/bench.txt"
echo "== done; report in $report"
[ "$cuda_bad" -eq 0 ] || { echo "FAILED: CUDA kernel tests (see above)"; exit 1; }
