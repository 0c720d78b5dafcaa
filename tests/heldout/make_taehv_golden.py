#!/usr/bin/env python3
"""tests/golden/expect/taehv.safetensors and two tiny TAEHV decoders (tests/golden/model/taehv_tiny.pth,
taehv_t2.pth): the reference demo's tiny video decoder (demo_utils/taehv.py, TAEHV.decode_video, the
"TAEHV-VAE" option of demo.py; madebyollin/taehv's taew2_1.pth for Wan 2.1 latents), for make test
without torch (tests/unit/test_taehv.c holds stages/decode/taehv.c to it).

    /usr/bin/python3 tests/heldout/make_taehv_golden.py [--ref DIR | --mirror GITDIR]

The real decoder's widths are 256/128/64/64 (about 9 M parameters); the fixtures keep its layer sequence
(Clamp, conv, ReLU, then three stages of 3 MemBlocks, Upsample, TGrow, conv; ReLU, conv) built from the
reference's own modules (MemBlock, TGrow, Clamp, conv) with small widths, in the state-dict layout
TAEHV.load_state_dict reads:
  tiny  widths 16/16/8/8, temporal upscale (True, True): 4 frames a latent frame, the first 3 trimmed;
  t2    widths 8/8/8/8, temporal upscale (False, True): 2 frames a latent frame, the first trimmed
        (the TGrow strides are in the weights' shapes: 1, 1, 2).
Each gets seeded-random latents [1, T, 16, h, w] (T = 5, h x w = 4 x 6) and the reference's outputs:
  <case>.latents      the input (NTCHW, as the DiT writes it)
  <case>.video        the frames sf-decode writes: decode_video(latents, parallel=True) [1, T*s, 3, 8h, 8w]
                      (~[0, 1]) without its first s-1 frames, * 2 - 1 clamped to [-1, 1] (demo.py:
                      decode().mul_(2).sub_(1), the first block's first s-1 frames skipped)
  <case>.layer.<i>    decoder layer i's output over all frames [T_i, C, H, W] (parallel mode), for the
                      layers in TAPS
decode_video(parallel=False) (the demo's frame-by-frame path) is checked to agree within 1e-5 of the
largest value (the convs batched or not sum in other orders).
Deterministic (fixed seeds, float32 CPU, one thread); a few seconds. Needs python3 with torch, numpy and
tqdm (taehv.py imports it), and the reference source (as make_heldout.py finds it).
"""
import importlib.util
import os
import sys
import tempfile
from collections import OrderedDict

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_heldout as mh  # noqa: E402

CASES = OrderedDict(
    tiny=dict(n_f=[16, 16, 8, 8], time_up=(True, True), T=5, h=4, w=6, seed=3001, file="taehv_tiny.pth"),
    t2=dict(n_f=[8, 8, 8, 8], time_up=(False, True), T=5, h=4, w=6, seed=3002, file="taehv_t2.pth"),
)

GAIN = 0.8
TAPS = (1, 3, 6, 7, 13)  # the first conv, a MemBlock, an Upsample, two TGrows


def load_taehv(ref):
    path = os.path.join(ref, "demo_utils", "taehv.py")
    spec = importlib.util.spec_from_file_location("ref_taehv", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def tiny_decoder(T, n_f, time_up, latent=16, n_mem=3):
    """TAEHV.__init__'s decoder Sequential with widths n_f (the reference's modules, its layer order; n_mem
    MemBlocks a stage, 3 in TAEHV)."""
    nn = mh.torch.nn
    seq = [T.Clamp(), T.conv(latent, n_f[0]), nn.ReLU(inplace=True)]
    strides = [1, 2 if time_up[0] else 1, 2 if time_up[1] else 1]
    for s in range(3):
        seq += [T.MemBlock(n_f[s], n_f[s]) for _ in range(n_mem)]
        seq += [nn.Upsample(scale_factor=2), T.TGrow(n_f[s], strides[s]), T.conv(n_f[s], n_f[s + 1], bias=False)]
    seq += [nn.ReLU(inplace=True), T.conv(n_f[3], 3)]
    return nn.Sequential(*seq), 2 ** sum(time_up) - 1


def main():
    a, torch = mh.reference_cli(__doc__)
    rec = OrderedDict()
    with tempfile.TemporaryDirectory() as tmp:
        ref, commit = mh.find_ref(a, tmp)
        T = load_taehv(ref)
        for name, c in CASES.items():
            torch.manual_seed(c["seed"])
            dec, trim = tiny_decoder(T, c["n_f"], c["time_up"])
            with torch.no_grad():  # ~N(0, g/fan_in): activations of order 1, the output mostly in [0, 1]
                for p in dec.parameters():
                    p.normal_(0, (GAIN / max(1, p[0].numel())) ** 0.5)
                dec[-1].bias.add_(0.5)  # centred on mid-grey
            model = T.TAEHV(checkpoint_path=None, decoder_time_upscale=c["time_up"])
            model.decoder = dec
            assert model.frames_to_trim == trim
            sd = OrderedDict((k, v.detach().clone().contiguous()) for k, v in model.state_dict().items()
                             if k.startswith("decoder."))
            torch.save(sd, os.path.join(a.golden, "model", c["file"]))
            g = torch.Generator().manual_seed(c["seed"] + 1)
            lat = torch.randn([1, c["T"], 16, c["h"], c["w"]], generator=g) * 1.5
            seen = OrderedDict()
            hooks = [m.register_forward_hook(lambda mod, i, o, k=k: seen.__setitem__(k, o.detach().clone()))
                     for k, m in enumerate(dec)]
            with torch.no_grad():
                out = model.decode_video(lat, parallel=True)
                for hk in hooks:
                    hk.remove()
                seq = model.decode_video(lat, parallel=False)
            d = ((out - seq).abs().max() / out.abs().max()).item()  # convs batched or not: other sum orders
            assert d < 1e-5, f"{name}: parallel vs sequential differ by {d} of the largest value"
            rec[f"{name}.latents"] = mh.npf(lat)
            rec[f"{name}.video"] = mh.npf(out[:, trim:].mul(2).sub(1).clamp(-1, 1))
            for k, v in seen.items():
                if k in TAPS:
                    rec[f"{name}.layer.{k}"] = mh.npf(v)
            mh.log(f"{name}: latents {list(lat.shape)} -> {list(out.shape)} (trim {trim}), |out| <= {out.abs().max().item():.3g}, "
                   f"seq vs parallel {d:.2e} of it")
    out_path = os.path.join(a.golden, "expect", "taehv.safetensors")
    meta = {"made_by": "tests/heldout/make_taehv_golden.py", "reference_commit": commit or "",
            "torch": torch.__version__}
    mh.st_write(out_path, rec, metadata=meta)
    mh.log(f"wrote {out_path} ({os.path.getsize(out_path)} bytes)")


if __name__ == "__main__":
    main()
