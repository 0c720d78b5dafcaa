#!/usr/bin/env bash
# tests/emu_perturbed.sh — the emulated CUDA tests again with the emulation perturbed the ways a GPU may
# differ from it (kernels/cuda/emu/cuda_emu.h "Order" and "Asynchrony"): threads and blocks reversed
# or shuffled (a missing __syncthreads, a block reading another block's output), and streams deferred
# until the host waits (a staging buffer refilled before its upload ran, a download read before its
# event) — each finds a bug class the default emulation hides whenever the writer happens to run first.
# TAP on stdout; a binary that dies without reporting a failure is reported as one. Run by tests/run.sh
# in the background at nice 19 (like the fuzz smoke), BUILD selecting the build folder.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export SF_GOLDEN=${SF_GOLDEN:-$PWD/tests/golden}
one() { # "ENV=V ..." binary [cases...]
    local envs=$1 g=$2 t="$BUILD/tests/$2" o rc
    shift 2
    [ -x "$t" ] || return 0
    echo "# == $g ($envs${*:+: $*})"
    o=$(env $envs "$t" "$@" 2>&1)
    rc=$?
    printf '%s\n' "$o"
    if [ "$rc" -ne 0 ] && ! grep -q '^not ok' <<<"$o"; then
        echo "not ok - $g ($envs) exited with status $rc without reporting a failure"
    fi
}
# reversed order: the kernel tests (their launch / vector-load counters need the synchronous streams)
for g in test_cuda_emu test_t5_glue test_hopper test_vae_glue_emu test_taehv_glue_emu test_tap_mass test_kv_compress; do
    one SF_EMU_ORDER=reverse "$g"
done
# a seeded shuffle: the quick ones (the compressions' radix select: its histograms, scans and early stop)
for g in test_cuda_emu test_t5_glue test_hopper test_vae_glue_emu test_kv_compress; do one SF_EMU_ORDER=shuffle:1 "$g"; done
# TMA loads and cp.async copies landing only when a wait needs them (SF_EMU_COPIES_LATE): a missing or
# early wait in the attention kernels finds the buffer's old contents; with the shuffle too
for o in forward shuffle:2; do one "SF_EMU_COPIES_LATE=1 SF_EMU_ORDER=$o" test_tap_mass; done
one SF_EMU_COPIES_LATE=1 test_hopper
# reversed and deferred: the whole emulated encoder and decoder, CUDA graphs, and the DiT cases whose
# sampling loop runs ahead of the device (staging uploads, x0 hand-outs, taps' pinned slots, the rolling
# cache, a prompt switch) — the cases checked by value, not by the emulation's counters
one "SF_EMU_ORDER=reverse SF_EMU_ASYNC=1" test_cuda_graphs
one "SF_EMU_ORDER=reverse SF_EMU_ASYNC=1" test_t5_emu
one "SF_EMU_ORDER=reverse SF_EMU_ASYNC=1" test_vae_emu
one "SF_EMU_ORDER=reverse SF_EMU_ASYNC=1" test_dit_emu pipeline_runs_ahead prompt_switch taps_frames taps_probs_graphs \
    rolling_cache
# the same DiT on the other model shapes (head dims, odd tokens a frame, each attention path, rolling), ~6 s
one "SF_EMU_ORDER=reverse SF_EMU_ASYNC=1" test_dit_shapes_emu
# the decoder on other widths and odd latent sizes (the norm's lane groups at 3 to 48 vectors a pixel; caches
# handed over between calls), ~15 s; the encoder's shapes add nothing here (its kernels launch the golden's
# thread counts for every dim up to 256)
one "SF_EMU_ORDER=reverse SF_EMU_ASYNC=1" test_vae_shapes_emu
# the GPU encoder (vae_enc_cuda.c): its pixel upload, the stage's memset and the host's read of mu behind the
# stream's work, ~3 s
one "SF_EMU_ORDER=reverse SF_EMU_ASYNC=1" test_vae_encode_emu
# the TAEHV decoder (taehv_cuda.c): its pinned slots, the pipelined submits, a reset with a frame in flight, <1 s
one "SF_EMU_ORDER=reverse SF_EMU_ASYNC=1" test_taehv_emu
# --fp8: the quantization's atomic max across blocks in other orders, and its scale read by the deferred FP8 GEMM
# (the whole fp8 forward, as a CUDA graph too), ~10 s
one "SF_EMU_ORDER=reverse SF_EMU_ASYNC=1" test_fp8_emu
one SF_EMU_ORDER=shuffle:3 test_fp8_emu quantize_ties_subnormals quantize_saturate quantize_strided_scalar quantize_grid_wrap
exit 0
