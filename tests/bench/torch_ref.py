#!/usr/bin/env python3
"""torch_ref.py — the PyTorch side of `make bench`'s CPU table (tests/bench/run.sh): the same shapes,
threads and weight layout as sfpipe's figures, in fp32 and bf16, printed as
    torch <figure> <fp32|bf16> <ms>
Not a test and not a test dependency: run.sh calls it only when `import torch` works.

Figures (one warm-up, then the best of up to 5 runs within ~3 s; torch.inference_mode, random weights):
  dit480 / dit4680  one Wan2.1-1.3B block forward (dim 1536, 12 heads, ffn 8960, 512 text keys) as
                    wan/modules/model.py WanAttentionBlock: LayerNorm + modulation, q/k/v/o with RMSNorm
                    on q and k, RoPE, softmax attention, cross-attention, GELU-tanh FFN — on 480 or 4680
                    tokens (sf-denoise --bench 1.3b-layer --bench-tokens N, whose figure also holds the
                    patch/time/text embeddings and head: a few percent)
  t5                one umT5-XXL encoder layer (dim 4096, 64 heads, ffn 10240 gated GELU, relative
                    position bias) on 64 tokens (bench_encode's quick figure)
  vae               two causal 3x3x3 Conv3d, 192 channels at 120x208, one output frame
                    (bench_kernels --vae-block)
Usage: torch_ref.py THREADS [figure ...]
"""
import math
import sys
import time

import torch
import torch.nn.functional as F


def best_ms(fn, reps=5, budget=3.0):
    """One warm-up, then the best of up to `reps` runs, stopping after 2 once `budget` seconds are spent
    (sf-denoise --bench 1.3b-layer and bench_encode time sfpipe the same way)."""
    fn()
    best, spent, r = float("inf"), 0.0, 0
    while r < reps and (r < 2 or spent < budget):
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best, spent, r = min(best, dt), spent + dt, r + 1
    return best * 1e3


def lin(i, o, dt, bias=True):
    m = torch.nn.Linear(i, o, bias=bias)
    torch.nn.init.normal_(m.weight, std=1.0 / math.sqrt(i))
    return m.to(dt)


def rms(x, w, eps=1e-6):
    return x * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + eps).to(x.dtype) * w


def attention(q, k, v, heads):  # (L, D) each -> (L, D), plain softmax attention
    L, D = q.shape
    d = D // heads
    q, k, v = (t.view(-1, heads, d).transpose(0, 1) for t in (q, k, v))
    s = torch.matmul(q, k.transpose(1, 2)) * (1.0 / math.sqrt(d))
    return torch.matmul(s.softmax(-1), v).transpose(0, 1).reshape(L, D)


def dit_block(tokens, dt):
    D, H, FF, T = 1536, 12, 8960, 512
    p = {n: lin(D, D, dt) for n in ("q", "k", "v", "o", "cq", "ck", "cv", "co")}
    f1, f2 = lin(D, FF, dt), lin(FF, D, dt)
    g = {n: torch.ones(D, dtype=dt) for n in ("nq", "nk", "cnq", "cnk")}
    n3 = torch.nn.LayerNorm(D, eps=1e-6).to(dt)
    e = torch.randn(6, D, dtype=dt) * 0.1
    x = torch.randn(tokens, D, dtype=dt)
    ctx = torch.randn(T, D, dtype=dt)
    d = D // H
    ang = torch.randn(tokens, H, d // 2)  # RoPE angles (the real ones come from the 3-D grid)
    cos, sin = ang.cos().to(dt), ang.sin().to(dt)

    def rope(t):
        t = t.view(tokens, H, d // 2, 2)
        a, b = t[..., 0], t[..., 1]
        return torch.stack((a * cos - b * sin, a * sin + b * cos), -1).view(tokens, D)

    def fwd():
        y = F.layer_norm(x, (D,), eps=1e-6) * (1 + e[1]) + e[0]
        q = rope(rms(p["q"](y), g["nq"]))
        k = rope(rms(p["k"](y), g["nk"]))
        h = x + p["o"](attention(q, k, p["v"](y), H)) * e[2]
        y = n3(h)
        h = h + p["co"](attention(rms(p["cq"](y), g["cnq"]), rms(p["ck"](ctx), g["cnk"]), p["cv"](ctx), H))
        y = F.layer_norm(h, (D,), eps=1e-6) * (1 + e[4]) + e[3]
        return h + f2(F.gelu(f1(y), approximate="tanh")) * e[5]

    return fwd


def t5_layer(tokens, dt):
    D, H, FF = 4096, 64, 10240
    q, k, v, o = (lin(D, D, dt, bias=False) for _ in range(4))
    w0, w1, wo = lin(D, FF, dt, False), lin(D, FF, dt, False), lin(FF, D, dt, False)
    g1, g2 = torch.ones(D, dtype=dt), torch.ones(D, dtype=dt)
    bias = torch.randn(H, tokens, tokens, dtype=dt)
    x = torch.randn(tokens, D, dtype=dt)
    d = D // H

    def fwd():
        y = rms(x, g1)
        qh, kh, vh = (t(y).view(tokens, H, d).transpose(0, 1) for t in (q, k, v))
        s = torch.matmul(qh, kh.transpose(1, 2)) + bias
        a = torch.matmul(s.float().softmax(-1).to(dt), vh).transpose(0, 1).reshape(tokens, D)
        h = x + o(a)
        y = rms(h, g2)
        return h + wo(F.gelu(w0(y), approximate="tanh") * w1(y))

    return fwd


def vae_block(dt):
    C, Hh, W = 192, 120, 208
    x = torch.randn(1, C, 3, Hh, W, dtype=dt)
    z = torch.zeros(1, C, 2, Hh, W, dtype=dt)
    w = (torch.randn(C, C, 3, 3, 3) * 0.02).to(dt)
    b = torch.zeros(C, dtype=dt)

    def fwd():
        y = F.conv3d(x, w, b, padding=(0, 1, 1))  # causal: the 2 history frames are in x
        return F.conv3d(torch.cat((z, y), 2), w, b, padding=(0, 1, 1))

    return fwd


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else torch.get_num_threads()
    figs = sys.argv[2:] or ["dit480", "dit4680", "t5", "vae"]
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    make = {"dit480": lambda dt: dit_block(480, dt), "dit4680": lambda dt: dit_block(4680, dt),
            "t5": lambda dt: t5_layer(64, dt), "vae": vae_block}
    with torch.inference_mode():
        for f in figs:
            for name, dt in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
                print(f"torch {f} {name} {best_ms(make[f](dt)):.1f}", flush=True)


if __name__ == "__main__":
    main()
