#!/usr/bin/env python3
"""tests/golden/expect/dit_fp8.safetensors: what `sf-denoise --fp8` must compute, for make test without torch
(tests/unit/test_fp8.c holds kernels/cpu/fp8.c and the CPU DiT to it).

    /usr/bin/python3 tests/heldout/make_fp8_golden.py [--ref DIR | --mirror GITDIR]

The reference demo's FP8 switch (demo.py) runs torchao's Float8DynamicActivationFloat8WeightConfig(PerTensor())
on the transformer's linears: per tensor, s = (max|t| / 448 in the tensor's dtype), t8 = e4m3fn(clamp(t / s,
±448)), then torch._scaled_mm (s_x·s_w·(x8 · w8ᵀ) + bias). Neither torchao nor a float8 dtype is in Debian's
torch 1.13, so this script rounds to e4m3fn itself (torch.frexp and torch.round: nearest, ties to even) — an
implementation independent of sfpipe's C one — and applies the bf16 model's scales (inference.py runs bf16).
It writes:
  e4m3.x, e4m3.y          16384 values (random over 2^-12 .. 600, both signs, plus the grid's midpoints, ties,
                          subnormals and saturation) and their e4m3fn roundings
  lin.x, lin.w, lin.b,    one fp8 linear: x [37, 48], w [32, 48] (f32), b [32] -> lin.y [37, 32]
  lin.y, lin.sx, lin.sw   and the two scales
  in.noisy_latent, in.timestep, in.context   dit_forward.safetensors' first forward (block 0, 3 frames)
  out.flow_pred           the reference CausalWanModel (float32, tests/golden/model) on them with the block
                          linears (self/cross-attention q k v o, ffn.0, ffn.2) in fp8 as above
  out.flow_pred_plain     the same model without fp8 (= dit_forward's out.flow_pred within 1e-5: the harness check)
Deterministic (fixed seeds, float32 CPU, one thread); a few seconds. Needs python3 with torch and numpy, and the
reference source (as make_heldout.py finds it).
"""
import json
import os
import sys
import tempfile
from collections import OrderedDict

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_heldout as mh  # noqa: E402

E4M3_MAX = 448.0


def e4m3_round(v):
    """Nearest e4m3fn value (ties to even) of a float64 tensor, saturating at ±448."""
    torch = mh.torch
    a = v.abs()
    _, e = torch.frexp(torch.where(a > 0, a, torch.ones_like(a)))   # a = m * 2^e, m in [0.5, 1)
    ex = torch.clamp(e.to(torch.float64) - 1, min=-6)                  # below 2^-6: subnormal steps of 2^-9
    step = torch.pow(2.0, ex - 3)
    q = torch.clamp(torch.round(a / step) * step, max=E4M3_MAX)
    return torch.where(v < 0, -q, q)


def bf16(t):
    return t.to(mh.torch.bfloat16).to(mh.torch.float32)


def fp8_quant(t):
    """torchao's per-tensor float8 of t as the bf16 model holds it: (values on the e4m3 grid, scale)."""
    torch = mh.torch
    tb = bf16(t)
    s = bf16(tb.abs().max() / E4M3_MAX)        # bf16 tensor / python float: f32 arithmetic, bf16 result
    if not (s.item() > 0):
        s = torch.tensor(1.0)
    q = e4m3_round((tb / s).clamp(-E4M3_MAX, E4M3_MAX).to(torch.float64))
    return q, s.to(torch.float64)


def fp8_linear(x, w, b):
    torch = mh.torch
    shp = x.shape
    x2 = x.reshape(-1, shp[-1])
    qx, sx = fp8_quant(x2)
    qw, sw = fp8_quant(w)
    y = (qx @ qw.t()) * (sx * sw)
    if b is not None:
        y = y + b.to(torch.float64)
    return y.to(torch.float32).reshape(*shp[:-1], w.shape[0])


def fp8_module(lin):
    """A module computing lin in fp8 (fp8_linear), in lin's place."""
    class Fp8Linear(mh.torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = lin

        def forward(self, x):
            return fp8_linear(x, self.lin.weight, self.lin.bias)
    return Fp8Linear()


def qualifies(lin):
    return lin.weight.shape[0] % 16 == 0 and lin.weight.shape[1] % 16 == 0


def e4m3_cases(torch):
    g = torch.Generator().manual_seed(8001)
    r = torch.rand(12000, generator=g, dtype=torch.float64)
    mag = torch.pow(2.0, -12 + r * (9.3 + 12))                          # 2^-12 .. ~630
    sign = torch.where(torch.rand(12000, generator=g) < 0.5, -1.0, 1.0).to(torch.float64)
    vals = [mag * sign]
    codes = []                                                          # every finite positive grid value
    for e in range(16):
        for m in range(8):
            if e == 15 and m == 7:
                continue
            codes.append(m * 2.0 ** -9 if e == 0 else (8 + m) * 2.0 ** (e - 10))
    grid = torch.tensor(codes, dtype=torch.float64)
    mids = (grid[:-1] + grid[1:]) / 2                                   # exact ties: to the even code
    near = torch.cat([mids * (1 - 2.0 ** -20), mids * (1 + 2.0 ** -20)])
    extra = torch.tensor([0.0, 2.0 ** -10, 2.0 ** -10 * 1.0001, 2.0 ** -11, 448.0, 449.0, 463.9, 464.0, 480.0,
                          1e6, 3.0e38], dtype=torch.float64)
    v = torch.cat(vals + [grid, mids, near, extra, -grid, -mids, -extra])
    v = v.to(torch.float32)[:16384]
    return v, e4m3_round(v.to(torch.float64)).to(torch.float32)


def main():
    a, torch = mh.reference_cli(__doc__)
    rec = OrderedDict()
    rec["e4m3.x"], rec["e4m3.y"] = (mh.npf(t) for t in e4m3_cases(torch))

    g = torch.Generator().manual_seed(8002)
    x = torch.randn([37, 48], generator=g) * 3
    w = torch.randn([32, 48], generator=g) / 7
    b = torch.randn([32], generator=g) * 0.1
    _, sx = fp8_quant(x)
    _, sw = fp8_quant(w)
    for k, v in (("x", x), ("w", w), ("b", b), ("y", fp8_linear(x, w, b)), ("sx", sx.reshape(1)), ("sw", sw.reshape(1))):
        rec["lin." + k] = mh.npf(v)

    gold = mh.st_read(os.path.join(a.golden, "expect", "dit_forward.safetensors"))
    with open(os.path.join(a.golden, "model", "config.json")) as f:
        cfg = json.load(f)
    with tempfile.TemporaryDirectory() as tmp:
        ref, commit = mh.find_ref(a, tmp)
        R = mh.import_reference(ref)
        kw = {k: cfg[k] for k in ("dim", "ffn_dim", "freq_dim", "in_dim", "num_heads", "num_layers", "out_dim",
                                  "text_len", "text_dim", "patch_size", "qk_norm", "cross_attn_norm", "eps")}
        kw["patch_size"] = tuple(kw["patch_size"])
        model = R.causal.CausalWanModel(model_type="t2v", **kw).eval()
        sd = {k: torch.from_numpy(v) for k, v in mh.st_read(os.path.join(a.golden, "model",
                                                                          "diffusion_pytorch_model.safetensors")).items()}
        model.load_state_dict(sd, strict=True)
        x0 = torch.from_numpy(gold["in.noisy_latent"])          # [1, F, C, H, W]
        t = torch.from_numpy(gold["in.timestep"])               # [1, F]
        ctx = torch.from_numpy(gold["in.context"])              # [1, 512, text_dim]
        F, H, W = x0.shape[1], x0.shape[3], x0.shape[4]
        fsl = (H // 2) * (W // 2)
        nh, hd = cfg["num_heads"], cfg["dim"] // cfg["num_heads"]

        def run():
            kv = [{"k": torch.zeros([1, 21 * fsl, nh, hd]), "v": torch.zeros([1, 21 * fsl, nh, hd]),
                   "global_end_index": torch.tensor([0]), "local_end_index": torch.tensor([0])}
                  for _ in range(cfg["num_layers"])]
            ca = [{"k": torch.zeros([1, 512, nh, hd]), "v": torch.zeros([1, 512, nh, hd]), "is_init": False}
                  for _ in range(cfg["num_layers"])]
            with torch.no_grad():
                out = model(x0.permute(0, 2, 1, 3, 4), t=t, context=ctx, seq_len=F * fsl, kv_cache=kv,
                            crossattn_cache=ca, current_start=0, cache_start=0)
            return out.permute(0, 2, 1, 3, 4).contiguous()

        plain = run()
        want = torch.from_numpy(gold["out.flow_pred"])
        dplain = (plain - want).abs().max().item() / want.abs().max().item()
        assert dplain < 1e-5, f"harness: plain forward is {dplain:.3g} off dit_forward's flow_pred"
        n = 0
        for blk in model.blocks:
            for mod, nm in [(blk.self_attn, c) for c in "qkvo"] + [(blk.cross_attn, c) for c in "qkvo"] + \
                    [(blk.ffn, "0"), (blk.ffn, "2")]:
                lin = mod._modules[nm]
                if qualifies(lin):
                    mod._modules[nm] = fp8_module(lin)
                    n += 1
        fp8 = run()
        dfp8 = (fp8 - plain).abs().max().item() / plain.abs().max().item()
        mh.log(f"{n} linears in fp8; flow_pred fp8 vs plain: {dfp8:.3g} of max|ref|; plain vs golden {dplain:.2g}")
        for k in ("in.noisy_latent", "in.timestep", "in.context"):
            rec[k] = gold[k]
        rec["out.flow_pred"] = mh.npf(fp8)
        rec["out.flow_pred_plain"] = mh.npf(plain)
    meta = {"what": "sfpipe --fp8 golden (tests/heldout/make_fp8_golden.py)", "reference_commit": commit or "",
            "fp8_linears": str(n)}
    out_path = os.path.join(a.golden, "expect", "dit_fp8.safetensors")
    mh.st_write(out_path, rec, metadata=meta)
    mh.log(f"wrote {out_path} ({os.path.getsize(out_path)} bytes)")


if __name__ == "__main__":
    main()
