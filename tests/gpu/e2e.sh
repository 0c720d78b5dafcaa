#!/usr/bin/env bash
# tests/gpu/e2e.sh — the three stages as one pipeline on the GPU (`sf-run pipelines/t2v.yaml
# device=cuda:0`: sf-encode | sf-denoise | sf-decode over ipc), run by tests/gpu/check.sh (part
# "e2e") with its environment (PATH to the bundle's programs, LD_LIBRARY_PATH to cuBLAS / cuDNN).
#   1. tiny random model: the pipeline on the GPU and on the CPU, both must finish with the same
#      number of frames; the mean / max |Δ| of the 8-bit frames is reported (bf16 vs f32).
#   2. full size, random weights (sf-mkmodel 1.3b: DiT 1.3B, VAE, umT5-XXL at full width but
#      SF_E2E_T5_LAYERS layers (default 2) so that writing the model fits the device minutes; the
#      24-layer encoder costs ~11 ms more per prompt, measured by sf-encode --bench xxl): 832x480,
#      21 latent frames -> 81 frames, timed end to end (process start, weight loading, plans,
#      encode, denoise, decode, writing the video) twice, then once more with low_memory=true (the
#      encoder streams its layers: the 24 GB-card configuration), each with an SF_TRACE timeline whose
#      figures (tests/gpu/timeline.sh: DiT, first frames on screen, steady block, end to end from
#      the embedding and sf-denoise both ready) and the peak GPU memory of the whole pipeline (nvidia-smi, sampled every
#      100 ms) go into the summary and the bench table (tests/gpu/table.py); then once with MPS
#      (nvidia-cuda-mps-control, if present: the stages' kernels side by side instead of taking turns).
#   3. the live pipeline on the same model (tests/gpu/live.sh: pipelines/live.yaml device=cuda:0,
#      endless at 832x480): frames shown per second, frame latency and the prompt-to-change latency
#      of one prompt switch posted to the page, then Ctrl-C (issue 15's figures).
#   4. the full t2v once more with the TAEHV tiny decoder (vae=taew2_1.pth, sf-mkmodel's random one at the
#      real shapes), timed with its timeline like run 2 (SF_E2E_TAEHV=0 skips it).
# The GPU machine has no ffmpeg, so the video is .y4m (an .mp4 output needs ffmpeg on PATH).
# One line per result in /tmp/sf-e2e/summary.txt; exit 1 when a pipeline fails.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
W=/tmp/sf-e2e
rm -rf "$W" && mkdir -p "$W"
S=$W/summary.txt
: >"$S"
fail=0
now() { date +%s.%N; }
# python3 with the machine's own library path (check.sh's SF_LD0), not the bundle's Debian libraries
py() { LD_LIBRARY_PATH="${SF_LD0-${LD_LIBRARY_PATH:-}}" python3 "$@"; }
el() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

t2v() { # MODEL DEVICE OUT LOG [var=value ...]
    local m=$1 d=$2 o=$3 log=$4
    shift 4
    timeout "${SF_E2E_TIMEOUT:-150}" sf-run pipelines/t2v.yaml model_dir="$m" checkpoint= \
        "prompt=A red fox trotting through fresh snow, cinematic lighting" device="$d" output="$o" \
        cache_dir="$W/cache-$RANDOM" "$@" >"$log" 2>&1
}
# frames of two .y4m files: "n_a n_b mean|Δ| max|Δ|" over the frame bytes
y4mdiff() { # frames of two .y4m files: "n_a n_b mean|Δ| max|Δ|" over the frame bytes (the tiny run only)
    py - "$1" "$2" <<'PY'
import sys
def frames(p):
    b = open(p, 'rb').read()
    i = b.index(b'\n')
    h = dict((t[0], t[1:]) for t in b[:i].decode().split()[1:])
    size = int(h['W']) * int(h['H']) * 3 if h.get('C', '420').startswith('444') else int(h['W']) * int(h['H']) * 3 // 2
    out, i = [], i + 1
    while i < len(b):
        j = b.index(b'\n', i) + 1  # the FRAME line
        out.append(b[j:j + size]); i = j + size
    return out
a, c = frames(sys.argv[1]), frames(sys.argv[2])
tot = mx = n = 0
for x, y in zip(a, c):
    for u, v in zip(x, y):
        d = abs(u - v); tot += d; n += 1; mx = max(mx, d)
print(len(a), len(c), "%.2f" % (tot / max(n, 1)), mx)
PY
}
y4mframes() { # frames of a .y4m file (header fields W, H, C; FRAME lines without parameters)
    py - "$1" <<'PY'
import os, sys
p = sys.argv[1]
with open(p, 'rb') as f:
    hdr = f.readline()
h = dict((t[0], t[1:]) for t in hdr.decode().split()[1:])
size = int(h['W']) * int(h['H']) * (3 if h.get('C', '420').startswith('444') else 1.5)
print(int((os.path.getsize(p) - len(hdr)) // (size + 6)))
PY
}

# GPU memory in use (all processes: the three stages are the only ones on the device machine), sampled
# by nvidia-smi every 100 ms while a pipeline runs; mempeak prints the largest sample in GiB.
MEMPID=
memwatch_start() {
    MEMPID=
    command -v nvidia-smi >/dev/null 2>&1 || return 0
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i 0 -lms 100 >"$1" 2>/dev/null &
    MEMPID=$!
}
memwatch_stop() { [ -n "$MEMPID" ] && kill "$MEMPID" 2>/dev/null && wait "$MEMPID" 2>/dev/null; MEMPID=; return 0; }
mempeak() { awk '$1 + 0 > m { m = $1 + 0 } END { if (NR) printf "%.2f", m / 1024; else printf "-" }' "$1" 2>/dev/null || echo -; }

echo "== e2e 1: tiny model, sf-run t2v.yaml on the GPU and on the CPU"
M=$W/tiny
sf-mkmodel tiny "$M" --seed 5 >"$W/mk-tiny.log" 2>&1 || { echo "sf-mkmodel tiny failed"; tail -n 3 "$W/mk-tiny.log"; exit 1; }
tiny=(num_frames=9 height=64 width=96)
t2v "$M" cuda:0 "$W/tiny-gpu.y4m" "$W/tiny-gpu.log" "${tiny[@]}"; rg=$?
t2v "$M" cpu "$W/tiny-cpu.y4m" "$W/tiny-cpu.log" "${tiny[@]}"; rc=$?
tail -n 4 "$W/tiny-gpu.log"
if [ $rg -eq 0 ] && [ $rc -eq 0 ]; then
    read -r na nb mean mx < <(y4mdiff "$W/tiny-gpu.y4m" "$W/tiny-cpu.y4m")
    echo "tiny t2v: gpu $na frames, cpu $nb frames, 8-bit |Δ| mean $mean max $mx (bf16 vs f32 pipelines)" | tee -a "$S"
    [ "$na" = "$nb" ] && [ "$na" -gt 0 ] || fail=1
else
    echo "tiny t2v: FAILED (gpu exit $rg, cpu exit $rc)" | tee -a "$S"
    tail -n 8 "$W/tiny-gpu.log" "$W/tiny-cpu.log"
    fail=1
fi

# the full-size and live pipelines run the same programs on the same GPU: when the tiny one failed there,
# they would fail the same way after minutes of the call's time
if [ $rg -ne 0 ]; then
    echo "full size and live: not run (the tiny GPU pipeline failed: they would fail the same way)" | tee -a "$S"
    exit 1
fi
echo "== e2e 2: full size, random weights, sf-run t2v.yaml device=cuda:0 (832x480, 21 latent frames -> 81 frames)"
F=$W/full
a=$(now)
if timeout 240 sf-mkmodel 1.3b "$F" --seed 1 --t5-layers "${SF_E2E_T5_LAYERS:-2}" >"$W/mk-full.log" 2>&1; then
    echo "full model written in $(el "$a" "$(now)") s ($(du -sh "$F" | cut -f1), umT5 with ${SF_E2E_T5_LAYERS:-2} layers)" | tee -a "$S"
    full_fail=0
    for run in 1 2 low; do
        extra=()
        [ "$run" = low ] && extra=(low_memory=true) # 24 GB cards: the encoder streams its layers
        a=$(now)
        # memory sampled in runs 1 and low: run 2, whose timeline the table reports, runs without the poller
        [ "$run" = 2 ] || memwatch_start "$W/mem-$run.txt"
        SF_TRACE="$W/trace-$run" t2v "$F" cuda:0 "$W/full-$run.y4m" "$W/full-$run.log" "${extra[@]}"; r=$?
        memwatch_stop
        b=$(now)
        grep -E 'finished|decoded 21|encoded|DiT:|weights' "$W/full-$run.log" | tail -n 6
        if [ $r -eq 0 ]; then
            nf=$(y4mframes "$W/full-$run.y4m")
            echo "full t2v run $run: $(el "$a" "$b") s end to end (sf-run wall: 3 processes, loading, plans, encode + denoise + decode, $nf frames of 832x480 written)" | tee -a "$S"
            # from the embedding ready and sf-denoise ready, the later (lag: to its first forward): timeline.sh
            echo "full t2v run $run timeline: $(tests/gpu/timeline.sh "$W/trace-$run" 2>&1)" | tee -a "$S"
            [ "$run" = 2 ] ||
                echo "full t2v run $run peak GPU memory: $(mempeak "$W/mem-$run.txt") GiB (nvidia-smi memory.used, every process, sampled every 100 ms)" | tee -a "$S"
        else
            echo "full t2v run $run: FAILED (exit $r)" | tee -a "$S"
            tail -n 12 "$W/full-$run.log"
            fail=1
            # low_memory is a path of its own (the streaming encoder): MPS and live do not use it
            [ "$run" = low ] || { full_fail=1; break; }
        fi
    done
    # The same pipeline once more with MPS (where the image has nvidia-cuda-mps-control): without it the
    # three processes' kernels take turns on the GPU (time slices), with it the decoder's and the DiT's
    # kernels may run side by side. A private pipe directory: only this run's processes connect; the
    # daemon quits afterwards. SF_E2E_MPS=0 skips it.
    mps=$(command -v nvidia-cuda-mps-control || true)
    if [ -n "$mps" ] && [ "${SF_E2E_MPS:-1}" != 0 ] && [ $full_fail -eq 0 ]; then
        export CUDA_MPS_PIPE_DIRECTORY=$W/mps-pipe CUDA_MPS_LOG_DIRECTORY=$W/mps-log
        mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
        if timeout 20 "$mps" -d; then
            a=$(now)
            SF_TRACE="$W/trace-mps" t2v "$F" cuda:0 "$W/full-mps.y4m" "$W/full-mps.log"; r=$?
            b=$(now)
            echo quit | timeout 20 "$mps"
            sleep 1
            if [ $r -eq 0 ]; then
                echo "full t2v run mps: $(el "$a" "$b") s end to end (MPS: the stages' kernels may share the GPU)" | tee -a "$S"
                echo "full t2v run mps timeline: $(tests/gpu/timeline.sh "$W/trace-mps" 2>&1)" | tee -a "$S"
            else # an A/B only: reported, not a failure of the check
                echo "full t2v run mps: FAILED (exit $r; $(tail -n 1 "$W/full-mps.log"))" | tee -a "$S"
            fi
        else
            echo "full t2v run mps: the MPS daemon did not start ($(tail -n 1 "$CUDA_MPS_LOG_DIRECTORY/control.log" 2>/dev/null))" | tee -a "$S"
        fi
        unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
    fi
    if [ $full_fail -ne 0 ]; then # the full-size t2v failed: live runs the same stages at that size
        echo "full live: not run (a full-size t2v run failed)" | tee -a "$S"
    else
        echo "== e2e 3: live, full size (pipelines/live.yaml device=cuda:0: endless, a prompt switch posted to the page)"
        # a first frame within 90 s (the full-size pipeline showed its first in ~9 s on the H200, run 10):
        # a pipeline that never plays must not take the reference's and the later units' minutes
        live=$(SF_LIVE_WAIT=90 SF_LIVE_LOG="$W/live-run.log" timeout 240 tests/gpu/live.sh "$F" cuda:0 2>"$W/live.err"); r=$?
        echo "full ${live:-live: FAILED (exit $r)}" | tee -a "$S"
        [ $r -eq 0 ] || { tail -n 12 "$W/live.err"; fail=1; }
    fi
    # The same pipeline with the TAEHV tiny decoder (vae=taew2_1.pth: sf-mkmodel's random one at the real
    # shapes): the end to end a user gets who trades the Wan VAE's quality for speed (the reference demo's
    # option). An A/B: reported, not a failure of the check; after live (whose figures come first when the
    # call runs short); SF_E2E_TAEHV=0 skips it.
    if [ $full_fail -eq 0 ] && [ -s "$F/taew2_1.pth" ] && [ "${SF_E2E_TAEHV:-1}" != 0 ]; then
        a=$(now)
        SF_TRACE="$W/trace-taehv" t2v "$F" cuda:0 "$W/full-taehv.y4m" "$W/full-taehv.log" vae="$F/taew2_1.pth"; r=$?
        b=$(now)
        if [ $r -eq 0 ]; then
            echo "full t2v run taehv: $(el "$a" "$b") s end to end (vae=taew2_1.pth: the TAEHV tiny decoder, $(y4mframes "$W/full-taehv.y4m") frames)" | tee -a "$S"
            echo "full t2v run taehv timeline: $(tests/gpu/timeline.sh "$W/trace-taehv" 2>&1)" | tee -a "$S"
        else
            echo "full t2v run taehv: FAILED (exit $r; $(tail -n 1 "$W/full-taehv.log"))" | tee -a "$S"
        fi
    fi
else
    echo "full model: sf-mkmodel failed or timed out ($(tail -n 1 "$W/mk-full.log"))" | tee -a "$S"
    fail=1
fi
rm -rf "$F"
exit $fail
