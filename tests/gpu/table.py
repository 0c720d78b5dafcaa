#!/usr/bin/env python3
"""table.py BENCH_TXT [E2E_SUMMARY] [REF_JSON] [GPU_TXT] — issue 13's table: every figure measured / target,
beside the reference PyTorch pipeline measured in the same device call (../shared/refbench); then
issue 14's all-layer tap overheads and issue 15's live figures.

Inputs are what tests/gpu/check.sh leaves: bench.txt (the sf-denoise / sf-decode / sf-encode
--bench lines, with the SF_CUDA_PROFILE line that carries the GEMM and attention TFLOP/s), the
e2e summary (tests/gpu/e2e.sh: the full-size sf-run with its SF_TRACE timeline figures) and
ref_bench.json; gpu.txt (nvidia-smi's name, memory, driver, compute capability) names the card in the
table's header — the targets are the H200's, and the device tool may lend an H100 instead. A missing
input leaves its figures as "—"; the script never fails a check."""
import json
import re
import sys

FRAMES = 81
# The reference's achieved rates from its kprof stage (ref_bench.json summary.kprof_last_block_forward_ms:
# device ms per kernel category of one last-block forward of Wan2.1-1.3B at 832x480, the bench's config):
# that forward's arithmetic, counted as sfpipe's profile counts its own (2 per multiply-add). 30 layers of
# dim 1536, FFN 8960; block 6: 3 frames x 1560 tokens of queries against 7 x 4680 keys; 512 text tokens.
_L, _D, _FF, _NL, _LK, _TXT = 4680, 1536, 8960, 30, 32760, 512
REF_GEMM_FLOP = 2 * _L * _D * (6 * _D + 2 * _FF) * _NL      # q, k|v, o, cross q, cross o, FFN (the text
#                                                            # MLP and the head add < 0.1 %)
REF_ATTN_FLOP = 4 * _L * (_LK + _TXT) * _D * _NL             # self- and cross-attention: QK^T and PV


def ref_rate(ref, cat, flop):
    """TFLOP/s of the reference's kernels of category cat in its profiled last-block forward, or None."""
    ms = (ref.get("kprof_last_block_forward_ms") or {}).get(cat)
    return flop / (ms * 1e-3) / 1e12 if isinstance(ms, (int, float)) and ms > 0 else None


def grab(text, pattern, cast=float):
    m = re.search(pattern, text)
    return cast(m.group(1)) if m else None


def main(argv):
    bench = open(argv[1]).read() if len(argv) > 1 else ""
    e2e = ""
    if len(argv) > 2:
        try:
            e2e = open(argv[2]).read()
        except OSError:
            pass
    ref = {}
    if len(argv) > 3:
        try:
            ref = json.load(open(argv[3])).get("summary", {}) or {}
        except (OSError, ValueError):
            pass

    card, when = "", ""  # gpu.txt: nvidia-smi's line, then check.sh's "measured DATE, build ..." line
    if len(argv) > 4:
        try:
            with open(argv[4]) as g:
                card, when = g.readline().strip(), g.readline().strip()
        except OSError:
            pass
    card_name = card.split(",")[0].strip() if card else ""

    # The default figures are the lines as the programs print them: at a line's start, untagged. An A/B
    # or a profiled run's lines carry a prefix ("no autotune: ", "profiled: ") and a tapped or
    # non-cuDNN video a "[...]" tag, and none of them may stand in for the default when the call that
    # made them did not run part "bench".
    dit = grab(bench, r"(?m)^denoise 1\.3b gpu video: ([0-9.]+) s(?![^\n]*\[)")
    vae = grab(bench, r"(?m)^decode 1\.3b gpu video: ([0-9.]+) s")
    t5 = grab(bench, r"(?m)^encode xxl gpu: ([0-9.]+) ms per 512-token prompt")
    gemm = grab(bench, r"denoise 1\.3b gpu profile \(SF_CUDA_PROFILE, timed video\): [^\n]*linear \(cuBLASLt\)[^(]*\([^)]*?([0-9.]+) TFLOP/s\)")
    attn = grab(bench, r"denoise 1\.3b gpu profile \(SF_CUDA_PROFILE, timed video\): [^\n]*self-attention[^(]*\([^)]*?([0-9.]+) TFLOP/s\)")
    own = grab(bench, r"gpu profile \(SF_CUDA_PROFILE, timed video\) \[attention: sfpipe fused, [^\n]*self-attention[^(]*\([^)]*?([0-9.]+) TFLOP/s\)")
    own_video = grab(bench, r"denoise 1\.3b gpu video: ([0-9.]+) s[^\n]*\[attention: sfpipe fused, ")
    wg = grab(bench, r"gpu profile \(SF_CUDA_PROFILE, timed video\) \[attention: sfpipe fused wgmma[^\n]*self-attention[^(]*\([^)]*?([0-9.]+) TFLOP/s\)")
    wg_video = grab(bench, r"denoise 1\.3b gpu video: ([0-9.]+) s[^\n]*\[attention: sfpipe fused wgmma")
    ws = {v: grab(bench, r"gpu profile \(SF_CUDA_PROFILE, timed video\) \[attention: sfpipe fused " + v +
                  r",[^\n]*self-attention[^(]*\([^)]*?([0-9.]+) TFLOP/s\)") for v in ("ws", "ws2")}
    ws_video = {v: grab(bench, r"denoise 1\.3b gpu video: ([0-9.]+) s[^\n]*\[attention: sfpipe fused " + v + ",")
                for v in ("ws", "ws2")}
    mem = [grab(bench, r"(?m)^denoise 1\.3b gpu memory: ([0-9.]+) GiB"), grab(bench, r"(?m)^decode 1\.3b gpu memory: ([0-9.]+) GiB"),
           grab(bench, r"(?m)^encode xxl gpu memory: ([0-9.]+) GiB")]
    # the last full-size timeline of a normal run (the second has warm files; "run low" is low_memory)
    tl = [dict(kv.split("=") for kv in m.split()) for m in re.findall(r"run [0-9]+ timeline: (dit=[^\n]*)", e2e)]
    tl = {k: float(v) for k, v in tl[-1].items()} if tl else {}

    r_dit, r_vae = ref.get("dit_total_s"), ref.get("vae_decode_s")
    r_blk, r_first_blk = ref.get("dit_block_ms"), ref.get("dit_first_block_ms")
    r_vae_blk = r_vae / 7 if r_vae else None
    r_mem = [ref.get("dit_peak_gib"), ref.get("vae_peak_gib"), ref.get("t5_peak_gib")]

    def f(v, fmt):
        return "—" if v is None else fmt.format(v)

    def row(name, ours, fmt, target, cmp, refv, note=""):
        ok = "" if ours is None or cmp is None else ("  ✓" if cmp(ours) else "  ✗")
        print(f"| {name} | {f(ours, fmt)} / {target}{ok} | {f(refv, fmt)}{note} |")

    gib = lambda xs: sum(xs) if all(x is not None for x in xs) else None
    if card:
        print(f"Card: {card}" + ("" if "H200" in card_name else
                                 " — not an H200: the targets below are the H200's; the reference column is this card's"))
        if when:
            print(when[0].upper() + when[1:])
        print()
    print(f"| figure ({card_name or 'card not recorded'}, full Wan VAE, bf16, embedding cached; targets: H200) "
          "| sfpipe measured / target | reference, same call |")
    print("|---|---|---|")
    row("whole 81-frame video, end to end (from the first forward)", tl.get("e2e"), "{:.3f} s", "≤ 2.0 s",
        lambda v: v <= 2.0, (r_dit + r_vae) if r_dit and r_vae else None, " (DiT + VAE, serial)")
    row("end-to-end FPS", FRAMES / tl["e2e"] if tl.get("e2e") else None, "{:.1f}", "≥ 40", lambda v: v >= 40,
        FRAMES / (r_dit + r_vae) if r_dit and r_vae else None)
    mps = re.search(r"run mps timeline: (dit=[^\n]*)", e2e)
    mps = {k: float(v) for k, v in (kv.split("=") for kv in mps.group(1).split())} if mps else {}
    row("whole video end to end with MPS (the stages' kernels side by side)", mps.get("e2e"), "{:.3f} s", "—", None,
        None, f" (steady block {mps['steady_ms']:.0f} ms)" if mps.get("steady_ms") else "")
    tae = re.search(r"run taehv timeline: (dit=[^\n]*)", e2e)
    tae = {k: float(v) for k, v in (kv.split("=") for kv in tae.group(1).split())} if tae else {}
    tae_note = ", ".join(fm.format(tae[k]) for k, fm in (("fps", "{:.1f} FPS"), ("steady_ms", "steady block {:.0f} ms"),
                                                         ("first", "first frames {:.3f} s")) if tae.get(k))
    row("whole video end to end with the TAEHV tiny decoder (vae=taew2_1.pth)", tae.get("e2e"), "{:.3f} s", "—", None,
        None, f" ({tae_note})" if tae_note else "")
    row("DiT only, 7 blocks", dit, "{:.3f} s", "≤ 1.45 s", lambda v: v <= 1.45, r_dit)
    row("denoise-only FPS", FRAMES / dit if dit else None, "{:.1f}", "—", None, FRAMES / r_dit if r_dit else None)
    row("steady block (DiT + its decode, pipelined)", tl.get("steady_ms"), "{:.0f} ms", "≤ 260 ms", lambda v: v <= 260,
        (r_blk + r_vae_blk * 1e3) if r_blk and r_vae_blk else None, " (DiT block + VAE/7, serial)")
    row("first frames on screen after the embedding", tl.get("first"), "{:.3f} s", "≤ 0.25 s", lambda v: v <= 0.25,
        (r_first_blk / 1e3 + r_vae_blk) if r_first_blk and r_vae_blk else None, " (first DiT block + VAE/7)")
    row("VAE decode, 81 frames", vae, "{:.3f} s", "≤ 0.55 s", lambda v: v <= 0.55, r_vae)
    tae_vae = grab(bench, r"(?m)^decode taehv gpu video: ([0-9.]+) s")
    row("TAEHV tiny decoder, 81 frames (sf-decode --bench taehv)", tae_vae, "{:.3f} s", "—", None, None,
        f" (the Wan VAE's: {vae / tae_vae:.1f}× the time)" if tae_vae and vae else "")
    # the VAE's A/Bs: cuDNN's first-choice conv plans instead of the autotuned ones, one call per frame
    tune_s = grab(bench, r"conv shapes autotuned in ([0-9.]+) s")
    for what, pre in (("cuDNN's first-choice conv plans (SF_CUDNN_AUTOTUNE=0)", "no autotune"),
                      ("one conv call per frame (SF_VAE_FRAME_CONVS=1)", "per-frame convs"),
                      ("the norm as it was: a warp per pixel, SiLU in fp64 (SF_VAE_NORM_PLAIN=1)", "plain norm")):
        alt = grab(bench, pre + r": decode 1\.3b gpu video: ([0-9.]+) s")
        note = f" (default: {100 * (vae / alt - 1):+.1f} %)" if alt and vae else ""
        if pre == "no autotune" and tune_s is not None:
            note += f" (autotune at init: {tune_s:.2f} s)"
        row(f"VAE decode, 81 frames, {what}", alt, "{:.3f} s", "—", None, None, note)
    row("GEMM achieved (DiT linear, cuBLASLt)", gemm, "{:.0f} TFLOP/s", "≥ 600", lambda v: v >= 600,
        ref_rate(ref, "gemm", REF_GEMM_FLOP), " (reference: its GEMM kernels in one profiled last-block forward)")
    row("attention achieved (DiT self-attention)", attn, "{:.0f} TFLOP/s", "≥ 600", lambda v: v >= 600,
        ref_rate(ref, "attention", REF_ATTN_FLOP), " (reference: self + cross, one profiled last-block forward)")
    # sfpipe's own fused kernel (attn_mass.cu, mma.sync) in cuDNN's place: SF_NO_CUDNN=1, part "taps"
    # the attention alone at 4680 × 32760 (sf-denoise --bench attn): every path on the same inputs
    for name in ("cudnn", "sfpipe mma.sync", "sfpipe mma.sync + mass", "sfpipe mma.sync bm128",
                 "sfpipe mma.sync bm128 + mass", "sfpipe wgmma", "sfpipe wgmma + mass", "sfpipe wgmma bm128",
                 "sfpipe wgmma bm128 + mass", "sfpipe ws", "sfpipe ws + mass", "sfpipe ws2", "sfpipe ws2 + mass",
                 "sfpipe ws3", "sfpipe ws3 + mass", "sfpipe ws n128", "sfpipe ws n128 + mass", "sfpipe ws2 n128",
                 "sfpipe ws2 n128 + mass", "sfpipe ws3 n128", "sfpipe ws3 n128 + mass", "sfpipe ws2 whole units",
                 "sfpipe ws2 n128 whole units"):
        v = grab(bench, r"attention gpu 4680 q x 32760 k x 12 heads \(d 128\), " + re.escape(name) + r": [0-9.]+ ms, ([0-9.]+) TFLOP/s")
        row(f"attention alone, 4680 × 32760 keys, {name}", v, "{:.0f} TFLOP/s", "—" if "mass" in name else "≥ 600",
            None if "mass" in name else (lambda x: x >= 600), None)
    row("attention achieved, sfpipe's fused kernel (SF_NO_CUDNN=1)", own, "{:.0f} TFLOP/s", "≥ 600",
        lambda v: v >= 600, None)
    row("DiT only, 7 blocks, sfpipe's fused attention (SF_NO_CUDNN=1)", own_video, "{:.3f} s", "≤ 1.45 s",
        lambda v: v <= 1.45, None)
    row("attention achieved, sfpipe's wgmma kernel (SF_NO_CUDNN=1 SF_ATTN_WGMMA=1)", wg, "{:.0f} TFLOP/s", "≥ 600",
        lambda v: v >= 600, None)
    row("DiT only, 7 blocks, sfpipe's wgmma attention", wg_video, "{:.3f} s", "≤ 1.45 s", lambda v: v <= 1.45, None)
    for v, what in (("ws", "warp-specialised"), ("ws2", "warp-specialised + overlap")):
        knob = "1" if v == "ws" else "2"
        row(f"attention achieved, sfpipe's {what} kernel (SF_NO_CUDNN=1 SF_ATTN_WS={knob})", ws[v], "{:.0f} TFLOP/s",
            "≥ 600", lambda x: x >= 600, None)
        row(f"DiT only, 7 blocks, sfpipe's {what} attention", ws_video[v], "{:.3f} s", "≤ 1.45 s",
            lambda x: x <= 1.45, None)
    # the A/B of the CUDA graphs (SF_CUDA_GRAPHS=0: launch by launch) and the glue kernels alone (--bench glue)
    nog = grab(bench, r"no graphs: denoise 1\.3b gpu video: ([0-9.]+) s")
    row("DiT only, 7 blocks, without CUDA graphs (SF_CUDA_GRAPHS=0)", nog, "{:.3f} s", "—", None, None,
        f" (graphs: {100 * (dit / nog - 1):+.1f} %)" if dit and nog else "")
    glue = grab(bench, r"glue gpu per forward [^:]*: ([0-9.]+) ms")
    shares = [float(x) for x in re.findall(r"glue gpu [^\n]*\(([0-9.]+)% of the copy's\), [0-9]+ per forward", bench)]
    row("norm / RoPE / residual kernels of one block-0 forward (--bench glue)", glue, "{:.2f} ms", "—", None, None,
        f" (slowest at {min(shares):.0f} % of a device copy's TB/s)" if shares else "")
    glue_sc = grab(bench, r"glue gpu A/B: the same with per-value vector loads: ([0-9.]+) ms")
    row("the same, their per-column vectors loaded one value at a time (A/B)", glue_sc, "{:.2f} ms", "—", None, None,
        f" (16-byte loads: {100 * (glue / glue_sc - 1):+.1f} %)" if glue and glue_sc else "")
    row("umT5-XXL, one 512-token prompt", t5, "{:.1f} ms", "—", None,
        ref.get("t5_encode_ms"))
    m, rm = gib(mem), gib(r_mem)
    row("GPU memory, three stages together (sum of the benches)", m, "{:.2f} GiB", "≤ 40 GB (37.25 GiB)",
        lambda v: v <= 37.25, rm, " (sum of the stages' peaks)")
    peaks = [float(v) for v in re.findall(r"run [0-9]+ peak GPU memory: ([0-9.]+) GiB", e2e)]
    row("GPU memory, the pipeline's measured peak", max(peaks) if peaks else None, "{:.2f} GiB",
        "≤ 40 GB (37.25 GiB)", lambda v: v <= 37.25, None)
    row("`low_memory=true` (24 GB cards), measured peak",
        grab(e2e, r"run low peak GPU memory: ([0-9.]+) GiB"), "{:.2f} GiB", "≤ 22 GB (20.49 GiB)",
        lambda v: v <= 20.49, None)
    # issue 14: the same video with all 30 layers tapped (check.sh part "taps"), against the plain one
    for mode, limit in (("frames", 10), ("probs", 25), ("probs-explicit", 25), ("probs-wgmma", 25), ("probs-ws", 25), ("probs-ws2", 25),
                        ("frames@seed", 10), ("probs@seed", 25)):
        t = grab(bench, r"denoise 1\.3b gpu video: ([0-9.]+) s[^\n]*\[taps: " + mode + r"[ ,]")
        what = {"probs-explicit": "probs-mode taps on the explicit attention (A/B)",
                "probs-wgmma": "probs-mode taps on the wgmma kernel (SF_ATTN_WGMMA=1)",
                "probs-ws": "probs-mode taps on the warp-specialised kernel (SF_ATTN_WS=1)",
                "probs-ws2": "probs-mode taps on the overlapped warp-specialised kernel (SF_ATTN_WS=2)",
                "frames@seed": "frames-mode taps, default selection (step 0 of each block)",
                "probs@seed": "probs-mode taps, default selection (step 0 of each block)"}.get(mode, f"{mode}-mode taps")
        row(f"all-layer {what}: extra time over the plain video", 100 * (t / dit - 1) if t and dit else None,
            "{:+.1f} %", f"≤ {limit} %", lambda v, lim=limit: v <= lim, None)
    # tokens mode (the sink frame's per-token mass; no target in the issue): what it costs
    t = grab(bench, r"denoise 1\.3b gpu video: ([0-9.]+) s[^\n]*\[taps: tokens@seed[ ,]")
    row("all-layer tokens-mode taps, default selection (sink frame's per-token mass): extra time over the plain video",
        100 * (t / dit - 1) if t and dit else None, "{:+.1f} %", "—", None, None)
    # issue 15: the live pipeline at full size (tests/gpu/live.sh, run by e2e.sh)
    row("live (endless, full size): frames shown per second", grab(e2e, r"live: fps [0-9.]+ before / ([0-9.]+) after"),
        "{:.1f}", "—", None, None)
    row("live: the generator's own rate (video frames per second of generation)",
        grab(e2e, r"live: .*generated at ([0-9.]+)\)"), "{:.1f}", "≥ 16 (real time)", lambda v: v >= 16, None)
    row("live: prompt posted → its first frame on the page", grab(e2e, r"live: .*prompt switch ([0-9.]+) ms"),
        "{:.0f} ms", "—", None, None)
    if ref.get("gpu"):
        print(f"\nreference ran on: {ref.get('gpu')} (torch {ref.get('torch')}, attention {ref.get('attention_path')})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
