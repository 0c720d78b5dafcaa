#!/usr/bin/env python3
"""compare_heldout.py OUTDIR [--md FILE] [--bf16] [--allow-refusal] — sfpipe's outputs (OUTDIR/<shape>/got/*) against the reference's
(OUTDIR/<shape>/expect/*, tests/heldout/make_heldout.py), tensor by tensor.

Metric as in tests/golden's manifests: max|got - ref| / max|ref| per tensor.
  umT5   emb.<i> over the real rows (< sum(mask)) <= 1e-4; pad rows exactly 0; ids / mask exact
  DiT    pred.0.0 (the first forward, a single forward) <= 1e-4; every pred.<b>.<s> (s = steps: the refresh
         pass) and the output latents <= 1e-3 (errors compound over the loop; typically ~1e-6)
  VAE    video <= 1e-4
With --bf16 (a GPU run, or the CPU's bf16 numerics) the golden manifests' bf16 bounds: 2e-2 for a single
forward (umT5, pred.0.0), 5e-2 at the end of the loop and for the VAE's video; an umT5 embedding may also lie
as far from float32 as the reference's own bf16 encoder does (emb_bf16.<i>: 2-5e-2 on these random models at
512 tokens, where rounding error grows over the longer rows).
Prints one line per checked tensor group and a summary table; exit 1 when anything is out of tolerance or
missing. Needs only numpy.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_heldout import st_read  # noqa: E402  (numpy only at import: torch is imported in its main)

TOL_FWD, TOL_PIPE, TOL_VAE = 1e-4, 1e-3, 1e-4  # float32; main() sets the bf16 bounds for --bf16
TOL_TAPS = 1e-3  # the logits as a tap file keeps them: float16 (~5e-4 of a value)
BF16 = False


class Report:
    def __init__(self):
        self.rows, self.fail, self.nrefused = [], 0, 0

    def add(self, shape, comp, what, d, m, tol, note=""):
        rel = d / m if m > 0 else (0.0 if d == 0 else float("inf"))
        ok = rel <= tol
        self.fail += not ok
        self.rows.append(dict(shape=shape, component=comp, tensor=what, max_abs_diff=d, max_abs_ref=m, rel=rel,
                              tol=tol, ok=ok, note=note))
        print(f"{'ok  ' if ok else 'FAIL'} {shape:2s} {comp:4s} {what:34s} max|d| {d:.3e}  max|ref| {m:.3e}  "
              f"rel {rel:.2e}  (tol {tol:.0e}){'  ' + note if note else ''}", flush=True)

    def refused(self, shape, comp, why):
        self.nrefused += 1
        print(f"REFUSED {shape:2s} {comp:4s} by the stage: {why}", flush=True)

    def missing(self, shape, comp, what):
        self.fail += 1
        self.rows.append(dict(shape=shape, component=comp, tensor=what, ok=False, note="missing"))
        print(f"FAIL {shape:2s} {comp:4s} {what}: missing", flush=True)


def diff(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.size != b.size:
        raise ValueError(f"{a.shape} vs {b.shape}")
    return float(np.max(np.abs(a.reshape(-1) - b.reshape(-1)))), float(np.max(np.abs(b)))


def check_t5(r, s, exp, got):
    i = 0
    while f"emb.{i}" in exp:
        e, m = exp[f"emb.{i}"], exp[f"mask.{i}"]
        if f"emb.{i}" not in got:
            r.missing(s, "t5", f"emb.{i}")
            i += 1
            continue
        ids_ok = np.array_equal(got[f"ids.{i}"], exp[f"ids.{i}"]) and np.array_equal(got[f"mask.{i}"], m)
        n = int(m.sum())
        g = got[f"emb.{i}"].reshape(e.shape)
        d, mx = diff(g[:n], e[:n])
        pad = int(np.count_nonzero(g[n:])) + int(np.count_nonzero(e[n:]))
        note = f"{n} tokens" + ("" if ids_ok else ", IDS/MASK DIFFER") + ("" if pad == 0 else f", {pad} pad values != 0")
        tol = TOL_FWD
        if BF16 and f"emb_bf16.{i}" in exp:  # no further from float32 than the reference's own bf16 encoder
            d16, _ = diff(exp[f"emb_bf16.{i}"][:n], e[:n])
            tol = max(tol, d16 / mx)
            note += f", reference's bf16 {d16 / mx:.1e}"
        r.add(s, "t5", f"emb.{i}", d, mx, tol if ids_ok and pad == 0 else -1, note)
        i += 1


def worst_of(r, s, comp, keys, exp, got, scale=None):
    """The tensor of keys furthest from the reference, relative to its largest value (or to scale(key)): (rel, key,
    max|d|, that scale), or None; a key the stage did not write is reported missing."""
    worst = None
    for k in keys:
        if k not in got:
            r.missing(s, comp, k)
            continue
        d, m = diff(got[k], exp[k])
        if scale:
            m = scale(k)
        if worst is None or d / m > worst[0]:
            worst = (d / m, k, d, m)
    return worst


def check_dit(r, s, exp, got, info):
    nb, steps = info["blocks"], info["steps"]
    d, m = diff(got["pred.0.0"], exp["pred.0.0"]) if "pred.0.0" in got else (None, None)
    if d is None:
        r.missing(s, "dit", "pred.0.0")
    else:
        r.add(s, "dit", "pred.0.0 (single forward)", d, m, TOL_FWD)
    worst = worst_of(r, s, "dit", [f"pred.{b}.{st}" for b in range(nb) for st in range(steps + 1)], exp, got)
    if worst:
        r.add(s, "dit", f"worst of {nb * (steps + 1)} preds ({worst[1]})", worst[2], worst[3], TOL_PIPE)
    if "latents" in got:
        d, m = diff(got["latents"], exp["output"])
        r.add(s, "dit", "output latents", d, m, TOL_PIPE)
    else:
        r.missing(s, "dit", "latents")


def check_taps(r, s, exp, got):
    """sf-denoise --layer_indices all --tap-select all: every layer's self-attention logits of every forward, the
    worst of them (the tap file stores float16: ~5e-4 of a value); then --tap-mode frames and probs (float32, from
    their own runs: got/taps_<mode>.safetensors, merged into got by main). In bf16 a frame's mean logit is held
    against the scale of the logits it averages (its forward's largest |logit|): bf16 q and k err in proportion to
    each logit, and a mean of logits of both signs is much smaller than they are."""
    def logits_scale(k):
        return float(np.max(np.abs(np.asarray(exp["taps." + k.split(".", 1)[1]], dtype=np.float64))))
    for prefix, what, tol in (("taps.", "logits taps", TOL_TAPS), ("frames.", "frames taps (mean logits)", TOL_FWD),
                              ("probs.", "probs taps (softmax mass)", TOL_FWD)):
        keys = sorted(x for x in exp if x.startswith(prefix))
        worst = worst_of(r, s, "taps", keys, exp, got, logits_scale if BF16 and prefix == "frames." else None)
        if worst:
            r.add(s, "taps", f"worst of {len(keys)} {what} ({worst[1]})", worst[2], worst[3], tol)


def check_vae(r, s, exp, got):
    if "video" not in got:
        r.missing(s, "vae", "video")
        return
    d, m = diff(got["video"], exp["video"])
    r.add(s, "vae", f"video {list(exp['video'].shape)}", d, m, TOL_VAE)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--md", help="also write the table as markdown")
    ap.add_argument("--bf16", action="store_true", help="bf16 bounds (a GPU run, SF_CPU_PRECISION=bf16)")
    ap.add_argument("--allow-refusal", action="store_true",
                    help="a stage that refused the shape (got/<comp>.refused: its error) is reported, not failed")
    a = ap.parse_args()
    if a.bf16:
        global TOL_FWD, TOL_PIPE, TOL_VAE, TOL_TAPS, BF16
        TOL_FWD, TOL_PIPE, TOL_VAE, TOL_TAPS, BF16 = 2e-2, 5e-2, 5e-2, 5e-2, True
    r = Report()
    shapes = sorted(d for d in os.listdir(a.out) if os.path.isfile(os.path.join(a.out, d, "shape.json")))
    if not shapes:
        sys.exit(f"compare_heldout: no shapes under {a.out}")
    for s in shapes:
        sd = os.path.join(a.out, s)
        with open(os.path.join(sd, "shape.json")) as f:
            info = json.load(f)
        for comp, fn in (("t5", check_t5), ("dit", check_dit), ("taps", check_taps), ("vae", check_vae)):
            e = os.path.join(sd, "expect", f"{comp}.safetensors")
            g = os.path.join(sd, "got", f"{comp}.safetensors")
            if comp == "taps" and not os.path.isfile(e):  # reference files made before the taps were
                continue
            if not os.path.isfile(g):
                rf = os.path.join(sd, "got", f"{comp}.refused")
                if a.allow_refusal and os.path.isfile(rf):
                    with open(rf) as f:
                        r.refused(s, comp, f.read().strip())
                else:
                    r.missing(s, comp, g)
                continue
            exp, got = st_read(e), st_read(g)
            for mode in ("frames", "probs") if comp == "taps" else ():
                gm = os.path.join(sd, "got", f"taps_{mode}.safetensors")
                if os.path.isfile(gm):
                    got.update(st_read(gm))
            if comp == "dit":
                fn(r, s, exp, got, info["dit_run"])
            else:
                fn(r, s, exp, got)
    if a.md:
        with open(a.md, "w") as f:
            f.write("| shape | comp | tensor | max abs diff | max abs ref | rel | tol | ok |\n|---|---|---|---|---|---|---|---|\n")
            for x in r.rows:
                if "rel" in x:
                    f.write(f"| {x['shape']} | {x['component']} | {x['tensor']} {x['note']} | {x['max_abs_diff']:.3e} | "
                            f"{x['max_abs_ref']:.3e} | {x['rel']:.2e} | {x['tol']:.0e} | {'yes' if x['ok'] else 'NO'} |\n")
                else:
                    f.write(f"| {x['shape']} | {x['component']} | {x['tensor']} | | | | | missing |\n")
    n = len(r.rows)
    print(f"compare_heldout: {n - r.fail}/{n} within tolerance" + (f", {r.fail} FAILED" if r.fail else "") +
          (f"; {r.nrefused} refused by their stage" if r.nrefused else ""))
    sys.exit(1 if r.fail else 0)


if __name__ == "__main__":
    main()
