#!/usr/bin/env python3
"""tests/golden/expect/vae_encode.safetensors: the reference's WanVAEWrapper.encode_to_latent (wan/modules/vae.py
WanVAE_.encode: Encoder3d over frame 0, then chunks of 4 frames with its feature cache; conv1; mu; (mu - mean) / std)
on the golden tiny VAE (tests/golden/model/Wan2.1_VAE.pth: width 8, dim_mult [1, 2, 4, 4], 2 res blocks,
temperal_downsample [False, True, True]), for make test without torch (tests/unit/test_vae_encode.c holds
stages/decode/vae_enc.c to it).

    /usr/bin/python3 tests/heldout/make_vae_encode_golden.py [--ref DIR | --mirror GITDIR] [--out FILE]

Two cases, pixels seeded-random uniform in [-1, 1], float32:
  img  an image: 1 frame of 32x48 (H x W) -> 1 latent frame of 4x6;
  vid  a video: 9 frames of 24x40 -> 3 latent frames (1 + 4 + 4) of 3x5.
Tensors: <case>.pixels [1, 3, T, H, W] (the reference's input layout), <case>.latent [1, T', 16, h, w]
(encode_to_latent's output, frames first), <case>.enc_out [1, 32, T', h, w] (Encoder3d's output over all
chunks, before conv1: mu and log_var), and latent_mean / latent_std (WanVAEWrapper's constants). Deterministic
(fixed seeds, float32 CPU, one thread, make_heldout.py's shims); a few seconds. Needs python3 with torch and
numpy, and the reference source (as make_heldout.py finds it).
"""
import os
import sys
import tempfile
from collections import OrderedDict

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_heldout as mh  # noqa: E402

CASES = OrderedDict(
    img=dict(T=1, H=32, W=48, seed=2001),
    vid=dict(T=9, H=24, W=40, seed=2002),
)
VAE_CFG = dict(dim=8, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
               temperal_downsample=[False, True, True], dropout=0.0)


def wrapper_for(R, path, cfg):
    """utils.wan_wrapper.WanVAEWrapper on the VAE file `path` with architecture `cfg`: wan.modules.vae._video_vae
    built on the CPU and loaded strictly (torch 1.13 has no `with torch.device('meta')` + assign=True)."""
    torch = mh.torch

    def video_vae(pretrained_path=None, z_dim=None, device="cpu", **kwargs):
        model = R.vae.WanVAE_(**dict(cfg, z_dim=z_dim, **kwargs))
        model.load_state_dict(torch.load(path, map_location=device), strict=True)
        return model
    orig = R.wrapper._video_vae
    R.wrapper._video_vae = video_vae
    try:
        return R.wrapper.WanVAEWrapper()
    finally:
        R.wrapper._video_vae = orig


def encode(wrap, pixels):
    """encode_to_latent(pixels) and the encoder's concatenated output (conv1's input)."""
    torch = mh.torch
    seen = []
    h = wrap.model.conv1.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].detach().clone()))
    try:
        with torch.no_grad():
            latent = wrap.encode_to_latent(pixels)
    finally:
        h.remove()
    assert len(seen) == 1, len(seen)
    return latent, seen[0]


def main():
    a, torch = mh.reference_cli(__doc__, out="vae_encode.safetensors")
    rec = OrderedDict()
    with tempfile.TemporaryDirectory() as tmp:
        ref, commit = mh.find_ref(a, tmp)
        R = mh.import_reference(ref)
        wrap = wrapper_for(R, os.path.join(a.golden, "model", "Wan2.1_VAE.pth"), VAE_CFG)
        for name, c in CASES.items():
            g = torch.Generator().manual_seed(c["seed"])
            pixels = torch.rand([1, 3, c["T"], c["H"], c["W"]], generator=g, dtype=torch.float32) * 2 - 1
            latent, enc_out = encode(wrap, pixels)
            t_lat = 1 + (c["T"] - 1) // 4
            assert list(latent.shape) == [1, t_lat, 16, c["H"] // 8, c["W"] // 8], latent.shape
            rec[f"{name}.pixels"] = mh.npf(pixels)
            rec[f"{name}.latent"] = mh.npf(latent)
            rec[f"{name}.enc_out"] = mh.npf(enc_out)
            mh.log(f"{name}: {c['T']} frames of {c['H']}x{c['W']} -> latent {list(latent.shape)}")
        rec["latent_mean"] = mh.npf(wrap.mean)
        rec["latent_std"] = mh.npf(wrap.std)
    meta = {"made_by": "tests/heldout/make_vae_encode_golden.py", "reference_commit": commit or "",
            "vae": "tests/golden/model/Wan2.1_VAE.pth", "torch": torch.__version__}
    mh.st_write(a.out, rec, metadata=meta)
    mh.log(f"wrote {a.out} ({os.path.getsize(a.out)} bytes)")


if __name__ == "__main__":
    main()
