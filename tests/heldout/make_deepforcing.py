#!/usr/bin/env python3
"""What Deep Forcing's released code computes on the tiny golden DiT, for sfpipe's `--pc-budget` to be held to
(tests/bats/sf-denoise.bats), and what its Deep Sink alone computes, for `--sink-rope realign --sink-rope-gap block`.

    /usr/bin/python3 tests/heldout/make_deepforcing.py tests/golden/expect [--mirror GITDIR] [--commit SHA]
    /usr/bin/python3 tests/heldout/make_deepforcing.py OUTDIR --sweep     (tests/heldout/run_deepforcing.sh)

The code: the authors' release ("code release", YJ-142150, 2026-02-08: commit ea9961a, kept in the history of
Nizben/Spectral_C, fetched to /work/.mirror/Nizben+Spectral_C/repo), its .py and .yaml files extracted with git
archive — Participative Compression with its Deep Sink as its `inference.py` runs it by default (budget 16,
recent 4, top-C reuse limit 7, `wan/modules/causal_model.py`). Around it, make_heldout.py's shims (exact float32
attention, diffusers, no flash-attn; the pipeline's caches sized for this model) and one size adaptation: the
release hard-codes 832x480's 1560 tokens a frame (its compression's capacity and window, its attention window,
its sink's first shift); each `1560` of `wan/modules/causal_model.py` and `utils/wan_wrapper.py` becomes this
model's frame_seq_length. Nothing else of its code is changed.

The run: its own settings (a 21-frame rolling cache, a 10-frame sink, blocks of 3) over 33 latent frames of 4x6
(6 tokens a frame) — blocks 7 and 9 compress — 2 warped steps [1000, 500] + the clean-context pass, the golden
prompt embedding (tests/golden/expect/dit_pipeline_base.safetensors), noise seeded here. Writes
OUTDIR/dit_deepforcing.yaml (the run config) and OUTDIR/dit_deepforcing.safetensors: noise.init,
noise.renoise.<k>, pred.<b>.<s> (s = 2: the clean-context pass), latents; then the same for its Deep Sink alone
(`inference.py --is_ds_only 1`, `causal_model_DS.py`; its configs' sink of 14 frames): OUTDIR/dit_deepsink.*. A few
seconds on 2 cores; needs python3 with torch, numpy and pyyaml.

--sweep: instead, settings the goldens never used (SWEEP): Participative Compression with other budgets, recent windows,
sinks, reuse limits and longer videos, each run as its `inference.py --Budget B --Recent R` passes them (model_kwargs
budget / recent) with the reuse limit — which its wrapper does not expose — set on its PCConfig; and its Deep Sink
alone with other sinks and windows. OUTDIR/<name>.*, and OUTDIR/sweep.txt, a line per run: name, latent frames, the
sf-denoise flags that ask for the same. Each compressing run must compress at least twice, and where the limit is low
hold candidates back; each Deep Sink run must move its sink.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections import OrderedDict

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import make_heldout as MH  # noqa: E402  (its shims and its reference loop)

MIRROR = "/work/.mirror/Nizben+Spectral_C/repo"
RELEASE = "ea9961aa4bd5b554daeecdcf59e37c495fba9df6"
RUN = dict(frames=33, lat_h=4, lat_w=6, num_frame_per_block=3, local_attn_size=21, sink_size=10, steps=[1000, 500])
SEED = 11
# held-out settings (--sweep): name, latent frames, window, sink, budget, recent, reuse limit; budget 0: its Deep Sink
# alone (is_ds_only). Participative Compression keeps the 21-frame window: the release's sink shift at a first
# compression is 21 − budget, sfpipe's the place that number stands for there (docs/sink-workbench.md)
SWEEP = [("df_reuse1", 45, 21, 10, 16, 4, 1),   # a token chosen once stands back: the limit bites from the 2nd compression
         ("df_budget14", 39, 21, 8, 14, 3, 7),  # a smaller budget, recent = one block, an 8-frame sink
         ("df_sink4", 48, 21, 4, 12, 4, 2),     # a small sink, many candidates, a limit of 2
         ("df_budget18", 42, 21, 10, 18, 5, 3), # a larger budget and recent window
         ("ds_sink10", 39, 21, 10, 0, 0, 0),    # Deep Sink alone, a 10-frame sink
         ("ds_window15", 36, 15, 6, 0, 0, 0)]   # Deep Sink alone in a 15-frame window, a 6-frame sink


def extract(mirror, commit, dst, fsl):
    files = subprocess.run(["git", "--git-dir", mirror, "ls-tree", "-r", "--name-only", commit], capture_output=True,
                           text=True, check=True).stdout.split("\n")
    files = [f for f in files if f.endswith((".py", ".yaml")) and f.split("/")[0] in
             ("wan", "utils", "pipeline", "configs", "demo_utils")]
    tar = subprocess.run(["git", "--git-dir", mirror, "archive", "--format=tar", commit, "--"] + files,
                         capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", dst], input=tar, check=True)
    for rel in ("wan/modules/causal_model.py", "utils/wan_wrapper.py"):  # the one size adaptation
        p = os.path.join(dst, rel)
        with open(p) as f:
            src = f.read()
        assert "1560" in src, rel
        with open(p, "w") as f:
            f.write(src.replace("1560", str(fsl)))


def record(noise, calls, draws, output, n_steps, frames):
    rec = OrderedDict()
    rec["noise.init"] = MH.npf(noise)
    for k, t in enumerate(draws):
        rec[f"noise.renoise.{k}"] = MH.npf(t)
    assert len(calls) == (frames // 3) * (n_steps + 1), len(calls)
    for j, (x, t, flow, x0, cs) in enumerate(calls):
        b, s = divmod(j, n_steps + 1)
        rec[f"pred.{b}.{s}"] = MH.npf(x0)  # [1, F, C, H, W], as sf-denoise --dump-preds writes them
    rec["latents"] = MH.npf(output)  # the video's latents, named as sf-denoise --save-latents names them
    return rec


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--mirror", default=MIRROR)
    ap.add_argument("--commit", default=RELEASE)
    ap.add_argument("--sweep", action="store_true", help="the held-out settings (SWEEP) instead of the goldens")
    a = ap.parse_args()
    import json
    import torch
    MH.torch = torch
    torch.set_num_threads(max(1, min(os.cpu_count() or 1, 4)))
    fsl = (RUN["lat_h"] // 2) * (RUN["lat_w"] // 2)
    golden = os.path.join(ROOT, "tests", "golden")
    mdir = os.path.join(golden, "model")
    ctx = torch.from_numpy(MH.st_read(os.path.join(golden, "expect", "dit_pipeline_base.safetensors"))["context.prompt_embeds"])
    with open(os.path.join(mdir, "config.json")) as f:
        cfg = json.load(f)
    L, nh = cfg["num_layers"], cfg["num_heads"]
    hd = cfg["dim"] // nh
    n_steps = len(RUN["steps"])
    os.makedirs(a.outdir, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        ref = os.path.join(tmp, "ref")
        os.makedirs(ref)
        extract(a.mirror, a.commit, ref, fsl)
        if not hasattr(torch, "compile"):  # causal_model_DS.py (imported by the wrapper) compiles flex_attention
            torch.compile = lambda fn=None, *x, **k: fn if fn is not None else (lambda f: f)  # at import: unused here
        R = MH.import_reference(ref)
        DS = sys.modules["wan.modules.causal_model_DS"]
        prune, pruned, rotate, rotated = R.causal._mkv_prune_cache, [], DS._rope_time_delta_mul_, []

        def counted(kv_cache, keep_lists, *x, **k):  # how many compressions ran, and what each kept
            pruned.append(len(keep_lists[0]))
            return prune(kv_cache, keep_lists, *x, **k)

        def turned(k_chunk, freqs, delta):  # Deep Sink alone: each move of the sink
            rotated.append(delta)
            return rotate(k_chunk, freqs, delta)
        R.causal._mkv_prune_cache, DS._rope_time_delta_mul_ = counted, turned
        write_config = MH.write_run_config
        if a.sweep:
            sweep(a, R, tmp, mdir, ctx, L, nh, hd, n_steps, fsl, pruned, rotated, write_config)
            return
        for name, sink, ds in (("dit_deepforcing", 10, False), ("dit_deepsink", 14, True)):
            what = ("Deep Sink alone (is_ds_only): local_attn_size 21, sink_size 14" if ds else
                    "local_attn_size 21, sink_size 10, budget 16, recent 4, top-C reuse 7")
            n = release_run(a, R, tmp, mdir, ctx, (L, nh, hd), n_steps, write_config, name, dict(RUN, sink_size=sink),
                            "  is_ds_only: true\n" if ds else "", what)
            MH.log(f"wrote {a.outdir}/{name}.safetensors ({n} tensors) and {name}.yaml")
    # PC: blocks 7 and 9 compress every layer's cache to the budget (16 frames of 6 tokens), and the Deep Sink-only
    # code never compresses; it moves the sink 3 frames at each block's eviction after the first (blocks 8-10)
    assert pruned == [16 * fsl] * (2 * L), pruned
    assert rotated == [3] * (3 * L), rotated


def release_run(a, R, tmp, mdir, ctx, dims, n_steps, write_config, name, run, kwargs, what):
    """One run of the release under run's config, its model_kwargs given the lines kwargs too (its inference.py's
    flags as they reach its wrapper): OUTDIR/<name>.yaml (the config) and OUTDIR/<name>.safetensors (record(), what
    in its metadata). Returns how many tensors that holds."""
    def config(path, r):
        write_config(path, r)
        if kwargs:
            with open(path, "a") as f:
                f.write(kwargs)
    MH.write_run_config = config
    try:
        noise, calls, draws, output, _ = MH.reference_loop(R, run, tmp, mdir, ctx, SEED, *dims)
    finally:
        MH.write_run_config = write_config
    shutil.copyfile(os.path.join(tmp, "config.yaml"), os.path.join(a.outdir, name + ".yaml"))
    rec = record(noise, calls, draws, output, n_steps, run["frames"])
    MH.st_write(os.path.join(a.outdir, name + ".safetensors"), rec,
                metadata={"reference": f"Deep Forcing's release {a.commit}", "seed": str(SEED), "settings": what})
    return len(rec)


def sweep(a, R, tmp, mdir, ctx, L, nh, hd, n_steps, fsl, pruned, rotated, write_config):
    """The SWEEP runs (see the module's text)."""
    pc_init, select = R.causal.PCConfig.__init__, R.causal._mkv_select_indices
    limit, held = [0], [0]

    def init(self, *x, **k):  # the reuse limit of this run, where its wrapper passes none
        pc_init(self, *x, **k)
        self.topc_max_reuse = limit[0]

    def selecting(scores_fused, T, R_eff, sink_tokens, top_c, device, topc_counts=None, topc_max_reuse=0):
        if topc_counts is not None and topc_max_reuse > 0:  # the candidates it holds back
            old = max(0, T - R_eff)
            held[0] += int((topc_counts[:, min(sink_tokens, old):old] >= topc_max_reuse).sum())
        return select(scores_fused, T=T, R_eff=R_eff, sink_tokens=sink_tokens, top_c=top_c, device=device,
                      topc_counts=topc_counts, topc_max_reuse=topc_max_reuse)
    R.causal.PCConfig.__init__, R.causal._mkv_select_indices = init, selecting
    lines = []
    for name, frames, window, sink, budget, recent, reuse in SWEEP:
        limit[0], held[0] = reuse, 0
        del pruned[:], rotated[:]
        if budget:  # its inference.py's --Budget / --Recent, else its --is_ds_only
            what = f"local_attn_size {window}, sink_size {sink}, budget {budget}, recent {recent}, top-C reuse {reuse}"
            kwargs = f"  budget: {budget}\n  recent: {recent}\n"
        else:
            what = f"Deep Sink alone (is_ds_only): local_attn_size {window}, sink_size {sink}"
            kwargs = "  is_ds_only: true\n"
        release_run(a, R, tmp, mdir, ctx, (L, nh, hd), n_steps, write_config, name,
                    dict(RUN, frames=frames, local_attn_size=window, sink_size=sink), kwargs, what)
        runs = len(pruned) // L
        if budget:
            assert runs >= 2 and pruned == [budget * fsl] * (runs * L), (name, pruned)
            assert reuse >= 4 or held[0] > 0, (name, "the reuse limit never held a candidate back")
            flags, did = f"--pc-budget {budget} --pc-recent {recent} --pc-max-reuse {reuse}", \
                f"{runs} compressions, {held[0]} candidates held back"
        else:
            assert not pruned and rotated, (name, pruned, rotated)
            flags, did = "--sink-rope realign --sink-rope-gap block", f"{len(rotated) // L} moves of the sink"
        lines.append(f"{name} {frames} {flags}")
        MH.log(f"wrote {a.outdir}/{name}.* ({what}: {did})")
    with open(os.path.join(a.outdir, "sweep.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
