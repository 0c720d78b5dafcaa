#!/usr/bin/env bash
# tests/bench/run.sh — `make bench`: every benchmark prints figures (ms, GB/s, peak RSS) and
# ratios; nothing here passes or fails on time. SF_BENCH_FULL=1 adds the full-size runs
# (used by tests/gpu/check.sh); SF_THREADS sets the thread count (default: all cores).
set -uo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
export PATH="$PWD/$BUILD/bin:$PATH" SF_ROOT="$PWD" SF_GOLDEN="$PWD/tests/golden"
echo "sfpipe bench — $(uname -m), $(nproc) cores, $(date -u +%F)"
grep -m1 'model name' /proc/cpuinfo | sed 's/.*: /cpu: /'
status=0
for b in "$BUILD"/bench/bench_*; do
    [ -x "$b" ] || continue
    echo
    echo "== $(basename "$b")"
    if [ -n "${SF_BENCH_FULL:-}" ]; then "$b" --full || status=1; else "$b" || status=1; fi
done
echo
echo "== sf-denoise --bench (ms per block-forward, peak RSS)"
sf-denoise --bench tiny --model-dir tests/golden/model --progress none || status=1
sf-denoise --bench 1.3b-layer --progress none || status=1
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo
    echo "== sf-denoise --bench 1.3b --device cuda (the whole DiT, 21 frames at 832x480, random weights)"
    sf-denoise --bench 1.3b --device cuda --progress none || status=1
    SF_CUDA_PROFILE=1 sf-denoise --bench 1.3b --device cuda --progress none | grep 'gpu profile' || status=1
    echo
    echo "== attention-tap overhead: the same video with all 30 layers tapped (frames, probs) vs no taps"
    tap_bench() { SF_BENCH_TAPS=$1 sf-denoise --bench 1.3b --device cuda --progress none | grep -m1 'gpu video:' | awk '{print $5}'; }
    t0=$(tap_bench "") && for m in frames probs; do
        t=$(tap_bench $m) && awk -v m=$m -v a="$t0" -v b="$t" 'BEGIN { printf "taps %s: %.3f s vs %.3f s without taps: +%.1f%%\n", m, b, a, 100 * (b / a - 1) }'
    done || status=1
fi
if command -v sf-wire >/dev/null 2>&1; then
    echo
    echo "== transports (sf-wire bench; memcpy baseline first)"
    for mb in 4 15; do
        for t in pipe ipc tcp shm; do
            sf-wire bench --transport "$t" --size-mb "$mb" --count "${SF_BENCH_COUNT:-40}" || status=1
        done
    done
fi
echo
echo "== sf-batch throughput (tiny model, 1/2/3 local workers)"
BUILD=$BUILD bash tests/bench/batch.sh || status=1
exit $status
