#!/usr/bin/env python3
"""Held-out shapes: tiny models of sizes, and sampling configs, the goldens never used, and what the reference
computes on them (shapes a-c: model sizes; d-e: configs — an independent first frame, other step lists unwarped,
frame-by-frame blocks, context noise, a rolling cache with frame-wise eviction, another timestep shift; f-g: the
pipeline's initial_latent — two context blocks of 3; 1+3 with an independent first frame and a rolling cache).

    /usr/bin/python3 tests/heldout/make_heldout.py OUTDIR [--ref DIR | --mirror GITDIR] [--shapes a,b,...,g] [--seed N]

For every shape (SHAPES below) it writes, in the real file formats,

    OUTDIR/<shape>/model/config.json                          diffusers-style DiT config
    OUTDIR/<shape>/model/diffusion_pytorch_model.safetensors  DiT weights, float32, the real key names
    OUTDIR/<shape>/model/models_t5_umt5-xxl-enc-bf16.pth      torch.save zip of a bf16 umT5 encoder state dict
    OUTDIR/<shape>/model/Wan2.1_VAE.pth                       torch.save zip of a float32 Wan VAE state dict
    OUTDIR/<shape>/model/google/umt5-xxl/spiece.model         copy of tests/golden/model's tokenizer
    OUTDIR/<shape>/config.yaml                                run config (merged over default_config.yaml)
    OUTDIR/<shape>/prompts.txt                                the prompts, one per line
    OUTDIR/<shape>/shape.json                                 sizes, and the stage arguments the driver uses

and what the reference PyTorch modules compute from those files (float32 on the CPU, attention an exact
float32 softmax, as tests/golden was made):

    OUTDIR/<shape>/expect/t5.safetensors   ids.<i>, mask.<i> (tests/golden/expect/tokens.json), emb.<i> [512, dim]
                                           from WanTextEncoder.forward (pad rows 0); emb_bf16.<i> the same
                                           encoder run in bf16, as the reference deploys it
    OUTDIR/<shape>/expect/dit.safetensors  the causal loop of CausalInferencePipeline.inference: noise.init,
                                           noise.renoise.<k> (k = (steps-1)*block + step), context.prompt_embeds
                                           (the reference umT5 embedding of prompt 0), initial_latent (shapes with
                                           one), in/flow/pred/timestep.<b>.<s> of the generated blocks
                                           (s = steps: the clean refresh pass), output; fwd0.* intermediates of
                                           the first forward (patch embedding, time embedding, every block, head)
    OUTDIR/<shape>/expect/taps.safetensors taps.L<l>.b<b>.s<s>: every layer's self-attention logits q·kᵀ/√d
                                           [1, heads, Lq, Lk] of every generated forward, over the keys the
                                           causal model passed (its KV cache's window, sink included); frames.*
                                           and probs.* their frame aggregates [heads, query frames, key slots]
                                           (mean logit; softmax mass, as sf-denoise's --tap-mode defines them)
    OUTDIR/<shape>/expect/vae.safetensors  z [1,T,16,h,w] -> video [1,1+4(T-1),3,8h,8w] from
                                           WanVAEWrapper.decode_to_pixel(use_cache=False)
    OUTDIR/<shape>/expect/vae_encode.safetensors  pixels [1,3,4T-1,8h,8w] (seeded, in [-1, 1]; the last 2
                                           frames an unfinished chunk the reference drops) -> latent
                                           [1,T,16,h,w] from WanVAEWrapper.encode_to_latent

tests/heldout/run_heldout.sh runs sfpipe's stages on the same files and tests/heldout/compare_heldout.py
compares. Needs python3 with torch (Debian's python3-torch 1.13 is enough), numpy and pyyaml; no network,
seeds fixed, about a minute on 2 cores.

The reference source: --ref DIR (a checkout of winbeau/Self-Forcing-fork), else $SF_REF, else ./.ref
(tests/gpu/prepare_ref.sh), else extracted with `git archive` from --mirror (default
/work/.mirror/winbeau+Self-Forcing-fork/repo) into a temporary folder.

What is shimmed around the reference (none of its arithmetic is changed):
  * attention: wan.modules.attention.attention -> exact float32 softmax(q k^T / sqrt(d)) v (no flash-attn on a CPU;
    the goldens did the same); F.scaled_dot_product_attention (VAE middle attention; absent in torch 1.13) -> the
    same math in the input dtype.
  * diffusers: ConfigMixin / register_to_config / ModelMixin.from_pretrained (config.json keys that are
    __init__ parameters, overridden by the from_pretrained kwargs, then the safetensors loaded strictly).
  * einops.rearrange (only the two VAE patterns), ftfy / regex / transformers (tokenizer only, unused: the token
    ids are tokens.json's), torch.nn.attention.flex_attention names, torch.compile (training path only), a CPU
    demo_utils.memory, path-only packages wan / wan.modules / utils / pipeline / demo_utils.
  * torch 1.13: `with torch.device(...)` in t5.py's _t5 and vae.py's _video_vae -> build on the CPU (the VAE is
    built by the same WanVAE_ call and loaded strictly instead of assign=True).
  * size adaptation in CausalInferencePipeline (it hard-codes the 1.3B model): num_transformer_blocks,
    frame_seq_length and the KV / cross-attention cache tensors get this model's layers, h*w/4 tokens per frame
    and heads x head_dim; the cache length rule (local_attn_size * frame_seq_length, else 32760) is kept.
"""
import argparse
import contextlib
import copy
import functools
import importlib
import inspect
import json
import math
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import types
from collections import OrderedDict

import numpy as np

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DEFAULT_MIRROR = "/work/.mirror/winbeau+Self-Forcing-fork/repo"

# The held-out shapes. DiT text_dim = umT5 dim (the embedding feeds the DiT). Each differs from the goldens'
# (DiT 256 / 2 heads of 128 / ffn 384 / 3 layers / text 64; umT5 64 / 4 heads / ffn 160 / 3 layers; VAE width 8).
SHAPES = OrderedDict(
    a=dict(what="DiT head_dim 32 (3 heads), 2 layers; umT5 6 heads of 8; VAE width 16; latent 6 frames of 4x6",
           dit=dict(dim=96, num_heads=3, ffn_dim=160, num_layers=2, freq_dim=256),
           t5=dict(vocab=1000, dim=48, dim_attn=48, num_heads=6, dim_ffn=96, num_layers=2),
           run=dict(frames=6, lat_h=4, lat_w=6, num_frame_per_block=3, local_attn_size=-1, sink_size=0),
           vae=dict(dim=16, num_res_blocks=2, T=5, lat_h=4, lat_w=6)),
    b=dict(what="DiT head_dim 64 (2 heads), 4 layers; umT5 d_kv 80 > dim 40 (5 heads of 16), vocab 1100; "
                "VAE width 12, odd 5x7 latent; latent 9 frames of 8x12",
           dit=dict(dim=128, num_heads=2, ffn_dim=256, num_layers=4, freq_dim=256),
           t5=dict(vocab=1100, dim=40, dim_attn=80, num_heads=5, dim_ffn=72, num_layers=2),
           run=dict(frames=9, lat_h=8, lat_w=12, num_frame_per_block=3, local_attn_size=-1, sink_size=0),
           vae=dict(dim=12, num_res_blocks=2, T=4, lat_h=5, lat_w=7)),
    c=dict(what="DiT head_dim 48 (3 heads; RoPE split 16/16/16), 3 layers, freq_dim 128, rolling KV cache "
                "(window 6, sink 1), 6x10 latent (3x5 tokens); umT5 d_kv 32 < dim 64 (4 heads of 8), 3 layers; "
                "VAE width 16 with 1 res block per stage",
           dit=dict(dim=144, num_heads=3, ffn_dim=224, num_layers=3, freq_dim=128),
           t5=dict(vocab=1000, dim=64, dim_attn=32, num_heads=4, dim_ffn=128, num_layers=3),
           run=dict(frames=9, lat_h=6, lat_w=10, num_frame_per_block=3, local_attn_size=6, sink_size=1),
           vae=dict(dim=16, num_res_blocks=1, T=3, lat_h=6, lat_w=10)),
    # the same kind of model under other sampling configs: each run key below overrides the config the others use
    # (independent_first_frame false, denoising_step_list STEPS warped, context_noise 0, timestep_shift 5)
    d=dict(what="config: independent first frame (blocks 1+3+3), step list [1000, 750, 500, 250] not warped, "
                "timestep_shift 3; DiT head_dim 32 (2 heads), 2 layers; latent 7 frames of 4x6",
           dit=dict(dim=64, num_heads=2, ffn_dim=128, num_layers=2, freq_dim=256),
           t5=dict(vocab=1000, dim=48, dim_attn=48, num_heads=6, dim_ffn=96, num_layers=2),
           run=dict(frames=7, lat_h=4, lat_w=6, num_frame_per_block=3, local_attn_size=-1, sink_size=0,
                    independent_first_frame=True, warp=False, timestep_shift=3.0),
           vae=dict(dim=16, num_res_blocks=1, T=2, lat_h=4, lat_w=6)),
    e=dict(what="config: frame by frame (num_frame_per_block 1), 2 steps [1000, 500], context_noise 100, rolling "
                "KV cache (window 3, sink 1); DiT head_dim 32 (2 heads), 2 layers; latent 5 frames of 4x4",
           dit=dict(dim=64, num_heads=2, ffn_dim=128, num_layers=2, freq_dim=256),
           t5=dict(vocab=1000, dim=48, dim_attn=48, num_heads=6, dim_ffn=96, num_layers=2),
           run=dict(frames=5, lat_h=4, lat_w=4, num_frame_per_block=1, local_attn_size=3, sink_size=1,
                    steps=[1000, 500], context_noise=100),
           vae=dict(dim=16, num_res_blocks=1, T=2, lat_h=4, lat_w=4)),
    # the reference's initial_latent (CausalInferencePipeline.inference): context forwards at t = 0, then more frames
    f=dict(what="video extension: 6 initial latent frames (two context blocks of 3), then 6 more in blocks of 3; DiT "
                "head_dim 32 (2 heads), 2 layers; latent 4x6",
           dit=dict(dim=64, num_heads=2, ffn_dim=128, num_layers=2, freq_dim=256),
           t5=dict(vocab=1000, dim=48, dim_attn=48, num_heads=6, dim_ffn=96, num_layers=2),
           run=dict(frames=6, initial=6, lat_h=4, lat_w=6, num_frame_per_block=3, local_attn_size=-1, sink_size=0),
           vae=dict(dim=16, num_res_blocks=1, T=2, lat_h=4, lat_w=6)),
    g=dict(what="independent first frame: 4 initial latent frames (context blocks 1+3), then 6 more in blocks of 3 "
                "(no 1-frame block), rolling KV cache (window 6, sink 1); DiT head_dim 32 (2 heads), 2 layers; latent 4x6",
           dit=dict(dim=64, num_heads=2, ffn_dim=128, num_layers=2, freq_dim=256),
           t5=dict(vocab=1000, dim=48, dim_attn=48, num_heads=6, dim_ffn=96, num_layers=2),
           run=dict(frames=6, initial=4, lat_h=4, lat_w=6, num_frame_per_block=3, local_attn_size=6, sink_size=1,
                    independent_first_frame=True),
           vae=dict(dim=16, num_res_blocks=1, T=2, lat_h=4, lat_w=6)),
)
PROMPTS = [0, 1, 11, 25]   # tests/golden/expect/tokens.json: 19, 65, 123 and 512 (truncated) tokens
TEXT_LEN = 512
STEPS = [1000, 750, 500, 250]

torch = None


def reference_cli(doc, out=None, golden=True, add=None):
    """The command line the golden and held-out scripts share: add(ap) first (their own arguments), then --ref and
    --mirror (find_ref), --golden (tests/golden) unless golden is False, --out (default tests/golden/expect/OUT) when
    out is given; then torch, imported here as this module's, on one thread (one summation order).
    Returns (args, torch)."""
    global torch
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    if add:
        add(ap)
    ap.add_argument("--ref")
    ap.add_argument("--mirror", default=DEFAULT_MIRROR)
    if golden:
        ap.add_argument("--golden", default=os.path.join(ROOT, "tests", "golden"))
    if out:
        ap.add_argument("--out", default=os.path.join(ROOT, "tests", "golden", "expect", out))
    a = ap.parse_args()
    import torch as _t
    torch = _t
    torch.set_num_threads(1)
    return a, torch


def log(msg):
    print(f"make_heldout: {msg}", flush=True)


# ----------------------------------------------------------------------------------------------------------
# safetensors (no safetensors package on Debian's python3)
# ----------------------------------------------------------------------------------------------------------
_ST_DT = {np.dtype("float32"): "F32", np.dtype("int64"): "I64", np.dtype("uint8"): "U8"}


def st_write(path, tensors, metadata=None):
    header, blobs, off = OrderedDict(), [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, a in tensors.items():
        a = np.ascontiguousarray(a)
        b = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = dict(dtype=_ST_DT[a.dtype], shape=list(a.shape), data_offsets=[off, off + len(b)])
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def st_read(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    base = 8 + n
    dt = {"F32": "<f4", "F64": "<f8", "I64": "<i8", "BF16": None, "F16": "<f2", "I32": "<i4", "U8": "u1"}
    out = OrderedDict()
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        if v["dtype"] == "BF16":
            u = np.frombuffer(data[base + a:base + b], dtype="<u2").astype(np.uint32) << 16
            arr = u.view(np.float32)
        else:
            arr = np.frombuffer(data[base + a:base + b], dtype=dt[v["dtype"]])
        out[k] = arr.reshape(v["shape"]).copy()
    return out


def npf(t):
    return t.detach().to(torch.float32).contiguous().numpy().copy()


# ----------------------------------------------------------------------------------------------------------
# the reference, imported with shims
# ----------------------------------------------------------------------------------------------------------
def find_ref(args, tmp):
    for cand in (args.ref, os.environ.get("SF_REF"), os.path.join(ROOT, ".ref")):
        if cand and os.path.isfile(os.path.join(cand, "wan/modules/causal_model.py")):
            commit = None
            if os.path.isfile(os.path.join(cand, "COMMIT")):   # tests/gpu/prepare_ref.sh writes it
                with open(os.path.join(cand, "COMMIT")) as f:
                    commit = f.read().strip()
            return os.path.abspath(cand), commit
        if cand and cand == args.ref:
            sys.exit(f"make_heldout: --ref {cand} has no wan/modules/causal_model.py")
    m = args.mirror
    ok = subprocess.run(["git", "--git-dir", m, "rev-parse", "-q", "--verify", "HEAD"], capture_output=True).returncode == 0
    if not ok:
        sys.exit(f"make_heldout: no reference (--ref DIR, $SF_REF, ./.ref) and {m} is not its git directory")
    files = subprocess.run(["git", "--git-dir", m, "ls-tree", "-r", "--name-only", "HEAD"], capture_output=True,
                           text=True, check=True).stdout.split("\n")
    files = [f for f in files if re.search(r"\.(py|yaml)$", f) and f.split("/")[0] in
             ("wan", "utils", "pipeline", "configs", "demo_utils")]
    dst = os.path.join(tmp, "ref")
    os.makedirs(dst)
    tar = subprocess.run(["git", "--git-dir", m, "archive", "--format=tar", "HEAD", "--"] + files,
                         capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", dst], input=tar, check=True)
    commit = subprocess.run(["git", "--git-dir", m, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    return dst, commit


def _mod(name, **attrs):
    m = types.ModuleType(name)
    m.__dict__.update(attrs)
    return m


def _unused(what):
    def f(*a, **k):
        raise NotImplementedError(f"{what}: stub (not on the inference path)")
    return f


def _rearrange(x, pattern, **sizes):
    """einops.rearrange for the two patterns wan/modules/vae.py uses."""
    p = pattern.replace(" ", "")
    if p == "bcthw->(bt)chw":
        b, c, t, h, w = x.shape
        return x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
    if p == "(bt)chw->bcthw":
        bt, c, h, w = x.shape
        t = sizes["t"]
        return x.reshape(bt // t, t, c, h, w).permute(0, 2, 1, 3, 4)
    raise NotImplementedError(f"rearrange shim: {pattern}")


def exact_attention(q, k, v, q_lens=None, k_lens=None, dropout_p=0., softmax_scale=None, q_scale=None, causal=False,
                    window_size=(-1, -1), deterministic=False, dtype=None, fa_version=None):
    """wan.modules.attention.attention in exact float32: q/k/v [B, L, N, D] -> [B, Lq, N, D]. The inference
    path passes no lengths, no causal flag and no window (checked)."""
    assert q_lens is None and k_lens is None and not causal and tuple(window_size) == (-1, -1) and not dropout_p
    qf, kf, vf = (t.transpose(1, 2).to(torch.float32) for t in (q, k, v))
    if q_scale is not None:
        qf = qf * q_scale
    s = softmax_scale if softmax_scale is not None else qf.shape[-1] ** -0.5
    a = torch.softmax(torch.matmul(qf, kf.transpose(-2, -1)) * s, dim=-1)
    return torch.matmul(a, vf).transpose(1, 2).contiguous().to(q.dtype)


def sdpa_math(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    assert attn_mask is None and not is_causal and not dropout_p
    s = query.shape[-1] ** -0.5 if scale is None else scale
    a = torch.softmax((torch.matmul(query, key.transpose(-2, -1)) * s).float(), dim=-1).to(query.dtype)
    return torch.matmul(a, value)


STATE = {}


class _ConfigMixin:
    config_name = "config.json"
    ignore_for_config = []

    def register_to_config(self, **kw):
        d = dict(self.__dict__.get("_internal_dict") or {})
        d.update(kw)
        self._internal_dict = d

    @property
    def config(self):
        return self.__dict__.get("_internal_dict", {})


def _register_to_config(init):
    sig = inspect.signature(init)

    @functools.wraps(init)
    def inner(self, *args, **kwargs):
        params = list(sig.parameters.values())[1:]
        cfg = {p.name: a for p, a in zip(params, args)}
        for p in params:
            cfg.setdefault(p.name, kwargs.get(p.name, p.default))
        init(self, *args, **kwargs)
        ign = set(getattr(self, "ignore_for_config", []))
        self.register_to_config(**{k: v for k, v in cfg.items() if k not in ign})
    return inner


def _model_mixin():
    class ModelMixin(torch.nn.Module):
        @classmethod
        def from_pretrained(cls, name, **kwargs):
            """Local config.json + diffusion_pytorch_model.safetensors of STATE['model_dir'] (the reference asks
            for wan_models/Wan2.1-T2V-1.3B/). Config keys that are __init__ parameters are passed (the tiny
            config's text_dim / patch_size / qk_norm / cross_attn_norm too, like tests/golden's generator), the
            kwargs (local_attn_size, sink_size) override them; strict load; eval()."""
            d = STATE["model_dir"]
            with open(os.path.join(d, "config.json")) as f:
                cfg = json.load(f)
            params = list(inspect.signature(cls.__init__).parameters)[1:]
            kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in cfg.items() if k in params}
            kw.update({k: kwargs.pop(k) for k in list(kwargs) if k in params})
            model = cls(**kw)
            sd = {k: torch.from_numpy(v) for k, v in st_read(os.path.join(d, "diffusion_pytorch_model.safetensors")).items()}
            model.load_state_dict(sd, strict=True)
            model.eval()
            STATE["from_pretrained"] = dict(requested=name, init_kwargs={k: str(v) for k, v in kw.items()})
            return model
    return ModelMixin


class _TorchForT5(types.ModuleType):
    """The `torch` name inside wan/modules/t5.py on torch < 2.0: `with torch.device(device)` (the CPU) is a no-op."""

    def __init__(self):
        super().__init__("torch")

    def __getattr__(self, n):
        return getattr(torch, n)

    def device(self, *a, **k):
        if hasattr(torch.device, "__enter__"):
            return torch.device(*a, **k)
        return contextlib.nullcontext()


def import_reference(ref):
    if ref not in sys.path:
        sys.path.insert(0, ref)
    F = torch.nn.functional
    if not hasattr(F, "scaled_dot_product_attention"):
        F.scaled_dot_product_attention = sdpa_math
    try:
        importlib.import_module("torch.nn.attention.flex_attention")
    except ImportError:
        fa = _mod("torch.nn.attention.flex_attention", BlockMask=type("BlockMask", (), {}),
                  create_block_mask=_unused("create_block_mask"), flex_attention=_unused("flex_attention"))
        try:
            importlib.import_module("torch.nn.attention")
        except ImportError:
            sys.modules["torch.nn.attention"] = _mod("torch.nn.attention")
        sys.modules["torch.nn.attention"].flex_attention = fa
        sys.modules["torch.nn.attention.flex_attention"] = fa
    MM = _model_mixin()
    cu = _mod("diffusers.configuration_utils", ConfigMixin=_ConfigMixin, register_to_config=_register_to_config)
    mu = _mod("diffusers.models.modeling_utils", ModelMixin=MM)
    models = _mod("diffusers.models", modeling_utils=mu, ModelMixin=MM, __path__=[])
    sys.modules.update({"diffusers": _mod("diffusers", configuration_utils=cu, models=models, __path__=[]),
                        "diffusers.configuration_utils": cu, "diffusers.models": models,
                        "diffusers.models.modeling_utils": mu})
    sys.modules["einops"] = _mod("einops", rearrange=_rearrange, repeat=_unused("einops.repeat"))
    sys.modules["ftfy"] = _mod("ftfy", fix_text=lambda s, *a, **k: s)
    sys.modules["regex"] = re

    class AutoTokenizer:
        from_pretrained = staticmethod(_unused("transformers.AutoTokenizer"))
    sys.modules["transformers"] = _mod("transformers", AutoTokenizer=AutoTokenizer)
    for pkg, sub in [("wan", "wan"), ("wan.modules", "wan/modules"), ("utils", "utils"), ("pipeline", "pipeline"),
                     ("demo_utils", "demo_utils")]:
        m = _mod(pkg, __path__=[os.path.join(ref, sub)], __package__=pkg)
        sys.modules[pkg] = m
        parent, _, leaf = pkg.rpartition(".")
        if parent:
            setattr(sys.modules[parent], leaf, m)

    class DynamicSwapInstaller:
        install_model = staticmethod(lambda model, **kw: None)
        uninstall_model = staticmethod(lambda model: None)
    cpu = torch.device("cpu")
    sys.modules["demo_utils.memory"] = _mod(
        "demo_utils.memory", cpu=cpu, gpu=cpu, gpu_complete_modules=[], get_cuda_free_memory_gb=lambda d=None: 0.0,
        DynamicSwapInstaller=DynamicSwapInstaller,
        move_model_to_device_with_memory_preservation=lambda m, target_device, preserved_memory_gb=0: m.to(target_device))

    R = types.SimpleNamespace(ref=ref)
    R.attn = importlib.import_module("wan.modules.attention")
    R.model = importlib.import_module("wan.modules.model")
    had = hasattr(torch, "compile")
    orig = getattr(torch, "compile", None)
    torch.compile = lambda fn=None, *a, **k: fn if fn is not None else (lambda f: f)
    try:
        R.causal = importlib.import_module("wan.modules.causal_model")
    finally:
        if had:
            torch.compile = orig
        else:
            del torch.compile
    cur = torch.cuda.current_device
    torch.cuda.current_device = lambda: 0     # t5.py evaluates it as a default argument
    try:
        R.t5 = importlib.import_module("wan.modules.t5")
        R.vae = importlib.import_module("wan.modules.vae")
        R.wrapper = importlib.import_module("utils.wan_wrapper")
    finally:
        torch.cuda.current_device = cur
    R.pipe = importlib.import_module("pipeline.causal_inference")
    R.t5.torch = _TorchForT5()
    # exact attention wherever the DiT modules call it (Deep Forcing's release: its model.py calls flash_attention,
    # make_deepforcing.py; its Deep Sink-only causal_model_DS.py, which its wrapper imports, attention)
    for m in (R.model, R.causal, sys.modules.get("wan.modules.causal_model_DS")):
        for name in ("attention", "flash_attention"):
            if m is not None and hasattr(m, name):
                assert getattr(m, name) is getattr(R.attn, name), (m.__name__, name)
                setattr(m, name, exact_attention)
    assert R.causal.attention is exact_attention
    for name in ("attn", "model", "causal", "t5", "vae", "wrapper", "pipe"):
        f = os.path.abspath(getattr(R, name).__file__)
        assert f.startswith(ref + os.sep), f"{name} imported from {f}, not from {ref}"
    return R


# ----------------------------------------------------------------------------------------------------------
# weights
# ----------------------------------------------------------------------------------------------------------
def dit_weights(model, gen):
    """tests/golden's recipe (dit_manifest.json 'init'), in state-dict order."""
    sd = OrderedDict()
    for k, v in model.state_dict().items():
        r = torch.randn(v.shape, generator=gen, dtype=torch.float32)
        if k.endswith("modulation"):
            w = 0.2 * r
        elif re.search(r"(norm_q|norm_k|norm3)\.weight$", k):
            w = 1 + 0.2 * r
        elif k.endswith("norm3.bias"):
            w = 0.1 * r
        elif k.endswith(".bias"):
            w = 0.05 * r
        elif k.endswith(".weight") and v.dim() >= 2:
            fan_in = math.prod(v.shape[1:])
            w = (0.5 if k == "time_projection.1.weight" else 1.0) * r / math.sqrt(fan_in)
        else:
            raise KeyError(f"no init rule for {k} {tuple(v.shape)}")
        sd[k] = w.contiguous()
    return sd


def t5_weights(model, gen):
    """bf16 values; attention logits are unscaled in T5, so q/k ~ 1/sqrt(dim) gives logits of a few units."""
    sd = OrderedDict()
    for k, v in model.state_dict().items():
        r = torch.randn(v.shape, generator=gen, dtype=torch.float32)
        if k == "token_embedding.weight":
            w = r
        elif re.search(r"norm\d?\.weight$", k):
            w = 1 + 0.1 * r
        elif k.endswith("pos_embedding.embedding.weight"):
            w = 0.5 * r
        elif k.endswith(".weight") and v.dim() == 2:
            w = r / math.sqrt(v.shape[1])
        else:
            raise KeyError(f"no init rule for {k} {tuple(v.shape)}")
        sd[k] = w.to(torch.bfloat16).contiguous()
    return sd


def vae_weights(model, gen):
    """tests/golden's recipe (vae_manifest.json weights.init), in state-dict order."""
    sd = OrderedDict()
    for k, v in model.state_dict().items():
        r = torch.randn(v.shape, generator=gen, dtype=torch.float32)
        if k.endswith(".gamma"):
            w = 1 + 0.2 * r
        elif k.endswith(".bias"):
            w = 0.02 * r
        elif k.endswith(".weight"):
            w = (0.8 if k == "decoder.head.2.weight" else 1.0) * r / math.sqrt(math.prod(v.shape[1:]))
        else:
            raise KeyError(f"no init rule for {k} {tuple(v.shape)}")
        sd[k] = w.contiguous()
    return sd


# ----------------------------------------------------------------------------------------------------------
# config
# ----------------------------------------------------------------------------------------------------------
class Cfg(dict):
    def __getattr__(self, k):
        try:
            return self[k]
        except KeyError:
            raise AttributeError(k)


def merge(a, b):
    out = dict(a)
    for k, v in b.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def block_sizes(run, frames=None):
    """The reference pipeline's all_num_frames: [1] first with independent_first_frame (and no initial latents),
    then num_frame_per_block. With frames: the chunks the initial latents run in (their context forwards), the
    blocks a video of that many frames starts with."""
    f, n = frames if frames is not None else run["frames"], run["num_frame_per_block"]
    first = [1] if run.get("independent_first_frame") and (frames is not None or not run.get("initial")) else []
    assert (f - len(first)) % n == 0, (f, n)
    return first + [n] * ((f - len(first)) // n)


def write_run_config(path, run):
    mk = {"timestep_shift": float(run.get("timestep_shift", 5.0))}
    if run["local_attn_size"] != -1:
        mk.update(local_attn_size=run["local_attn_size"], sink_size=run["sink_size"])
    lines = ["# held-out shape run config (tests/heldout/make_heldout.py), merged over configs/default_config.yaml",
             f"denoising_step_list: [{', '.join(str(s) for s in run.get('steps', STEPS))}]",
             f"warp_denoising_step: {'true' if run.get('warp', True) else 'false'}",
             f"num_frame_per_block: {run['num_frame_per_block']}",
             f"independent_first_frame: {'true' if run.get('independent_first_frame') else 'false'}",
             f"context_noise: {run.get('context_noise', 0)}",
             "model_kwargs:"] + [f"  {k}: {v}" for k, v in mk.items()]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def load_run_config(ref, path):
    import yaml
    with open(os.path.join(ref, "configs", "default_config.yaml")) as f:
        d = yaml.safe_load(f)
    with open(path) as f:
        c = yaml.safe_load(f)
    return Cfg(merge(d, c))


# ----------------------------------------------------------------------------------------------------------
# the three components
# ----------------------------------------------------------------------------------------------------------
def make_t5(R, S, sdir, mdir, tokens, gen):
    c = S["t5"]
    kw = dict(vocab_size=c["vocab"], dim=c["dim"], dim_attn=c["dim_attn"], dim_ffn=c["dim_ffn"],
              num_heads=c["num_heads"], encoder_layers=c["num_layers"], decoder_layers=c["num_layers"])
    # WanTextEncoder.__init__ with umt5_xxl(encoder_only=True, dtype=float32, device=cpu) at the tiny sizes
    m = R.t5.umt5_xxl(encoder_only=True, return_tokenizer=False, dtype=torch.float32, device=torch.device("cpu"), **kw)
    sd = t5_weights(m, gen)
    path = os.path.join(mdir, "models_t5_umt5-xxl-enc-bf16.pth")
    torch.save(sd, path)

    class Enc(R.wrapper.WanTextEncoder):
        device = property(lambda self: torch.device("cpu"))   # the reference's property is the current CUDA device

    class Tok:
        """The ids / mask the golden tokenizer recorded (tests/golden/expect/tokens.json)."""

        def __call__(self, texts, return_mask=True, add_special_tokens=True):
            rows = [by_text[t] for t in texts]
            return (torch.tensor([r["ids"] for r in rows], dtype=torch.long),
                    torch.tensor([r["mask"] for r in rows], dtype=torch.long))

    enc = Enc.__new__(Enc)
    torch.nn.Module.__init__(enc)
    enc.text_encoder = m.eval().requires_grad_(False)
    enc.text_encoder.load_state_dict(torch.load(path, map_location="cpu"))
    enc.tokenizer = Tok()
    texts = [tokens[i]["text"] for i in PROMPTS]
    by_text = {tokens[i]["text"]: tokens[i] for i in PROMPTS}
    with torch.no_grad():
        emb = enc(text_prompts=texts)["prompt_embeds"]
        # the same encoder in bf16, as the reference deploys it (inference.py moves the pipeline to bf16): how far
        # its own bf16 run lies from float32 — compare_heldout --bf16 holds a GPU run to no more than that
        enc.text_encoder = copy.deepcopy(m).to(torch.bfloat16)
        emb16 = enc(text_prompts=texts)["prompt_embeds"].float()
    out = OrderedDict()
    for j, i in enumerate(PROMPTS):
        t = tokens[i]
        out[f"ids.{j}"] = np.array(t["ids"], dtype=np.int64)
        out[f"mask.{j}"] = np.array(t["mask"], dtype=np.int64)
        out[f"emb.{j}"] = npf(emb[j])
        out[f"emb_bf16.{j}"] = npf(emb16[j])
    st_write(os.path.join(sdir, "expect", "t5.safetensors"), out)
    with open(os.path.join(sdir, "prompts.txt"), "w") as f:
        for t in texts:
            assert "\n" not in t and "\r" not in t
            f.write(t + "\n")
    return emb[0:1].clone()


def reference_loop(R, run, sdir, mdir, context, seed, L, nh, hd, noise=None, renoise=None, initial=None, taps=None):
    """CausalInferencePipeline.inference of the DiT in mdir under run's config (written to sdir/config.yaml) with the
    optional initial_latent [1, F_in, 16, H, W]. The noise [1, F, 16, H, W]: drawn after torch.manual_seed(seed), or
    given; the re-noising draws: torch.randn_like's, or the given list's in order. Returns the noise, every generator
    call (input, timestep, flow, x0, current_start), every re-noising draw, the output and fwd0.* (the first call's
    intermediates). taps: a list that receives, for every self-attention call of the causal model (a forward's layers
    in order, forward after forward), its pre-softmax logits q·kᵀ/√d [1, heads, Lq, Lk] in float32 over the keys the
    model passed — the window of its KV cache, as the fork's ATTENTION_WEIGHT_CAPTURE records them."""
    F, H, W = run["frames"], run["lat_h"], run["lat_w"]
    fsl = (H // 2) * (W // 2)
    cpath = os.path.join(sdir, "config.yaml")
    write_run_config(cpath, run)
    args = load_run_config(R.ref, cpath)
    STATE["model_dir"] = mdir

    class DummyText(torch.nn.Module):
        def forward(self, text_prompts):
            return {"prompt_embeds": context}

    class DummyVAE(torch.nn.Module):
        def decode_to_pixel(self, latent, use_cache=False):
            return latent

    class Pipe(R.pipe.CausalInferencePipeline):
        """Size adaptation only: the reference's caches are [B, len, 12, 128] for 30 blocks."""

        def _initialize_kv_cache(self, batch_size, dtype, device):
            n = self.local_attn_size * self.frame_seq_length if self.local_attn_size != -1 else 32760
            self.kv_cache1 = [{"k": torch.zeros([batch_size, n, nh, hd], dtype=dtype, device=device),
                               "v": torch.zeros([batch_size, n, nh, hd], dtype=dtype, device=device),
                               "global_end_index": torch.tensor([0], dtype=torch.long, device=device),
                               "local_end_index": torch.tensor([0], dtype=torch.long, device=device)}
                              for _ in range(self.num_transformer_blocks)]

        def _initialize_crossattn_cache(self, batch_size, dtype, device):
            self.crossattn_cache = [{"k": torch.zeros([batch_size, TEXT_LEN, nh, hd], dtype=dtype, device=device),
                                     "v": torch.zeros([batch_size, TEXT_LEN, nh, hd], dtype=dtype, device=device),
                                     "is_init": False} for _ in range(self.num_transformer_blocks)]

    with contextlib.redirect_stdout(open(os.devnull, "w")):
        pipe = Pipe(args, device=torch.device("cpu"), text_encoder=DummyText(), vae=DummyVAE())
    pipe.eval()
    pipe.num_transformer_blocks = L
    pipe.frame_seq_length = fsl
    model = pipe.generator.model
    assert model.local_attn_size == run["local_attn_size"]
    assert all(b.self_attn.sink_size == run["sink_size"] for b in model.blocks)

    calls = []
    gen_fwd = pipe.generator.forward

    def forward(**kw):
        flow, x0 = gen_fwd(**kw)
        calls.append((kw["noisy_image_or_video"].clone(), kw["timestep"].clone(), flow.clone(), x0.clone(),
                      kw["current_start"]))
        return flow, x0
    pipe.generator.forward = forward

    fwd0 = OrderedDict()

    def hook(name):
        def f(mod, inp, out):
            if not calls and name not in fwd0:
                fwd0[name] = out.detach().clone()
        return f
    hooks = [model.patch_embedding.register_forward_hook(hook("fwd0.patch_embedding")),
             model.time_embedding.register_forward_hook(hook("fwd0.time_embedding")),
             model.time_projection.register_forward_hook(hook("fwd0.time_projection")),
             model.text_embedding.register_forward_hook(hook("fwd0.text_embedding")),
             model.head.register_forward_hook(hook("fwd0.head"))]
    hooks += [b.register_forward_hook(hook(f"fwd0.block{i}.out")) for i, b in enumerate(model.blocks)]

    draws = []
    randn_like = torch.randn_like

    def recording_randn_like(*a, **k):
        t = randn_like(*a, **k) if renoise is None else renoise[len(draws)].reshape(a[0].shape).clone()
        draws.append(t.clone())
        return t
    torch.manual_seed(seed)
    if noise is None:
        noise = torch.randn([1, F, 16, H, W], dtype=torch.float32)
    torch.randn_like = recording_randn_like
    self_attention = R.causal.attention

    def capturing(q, k, v, **kw):  # the causal model's self-attention only (its cross-attention is model.py's)
        qf, kf = (t.transpose(1, 2).to(torch.float32) for t in (q, k))
        taps.append(torch.matmul(qf, kf.transpose(-2, -1)) * qf.shape[-1] ** -0.5)
        return self_attention(q, k, v, **kw)
    if taps is not None:
        R.causal.attention = capturing
    try:
        with torch.no_grad(), contextlib.redirect_stdout(open(os.devnull, "w")):
            _, output = pipe.inference(noise=noise, text_prompts=["heldout"], initial_latent=initial,
                                       return_latents=True)
    finally:
        torch.randn_like = randn_like
        R.causal.attention = self_attention
    for h in hooks:
        h.remove()

    return noise, calls, draws, output, fwd0


def make_dit(R, S, sdir, mdir, context, gen, seed):
    d, run = S["dit"], S["run"]
    cfg = OrderedDict(_class_name="WanModel", _diffusers_version="0.30.0", dim=d["dim"], eps=1e-06,
                      ffn_dim=d["ffn_dim"], freq_dim=d["freq_dim"], in_dim=16, model_type="t2v",
                      num_heads=d["num_heads"], num_layers=d["num_layers"], out_dim=16, text_len=TEXT_LEN,
                      text_dim=S["t5"]["dim"], patch_size=[1, 2, 2], qk_norm=True, cross_attn_norm=True,
                      window_size=[-1, -1])
    with open(os.path.join(mdir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    shell = R.causal.CausalWanModel(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in cfg.items()
                                       if k in inspect.signature(R.causal.CausalWanModel.__init__).parameters})
    sd = dit_weights(shell, gen)
    st_write(os.path.join(mdir, "diffusion_pytorch_model.safetensors"), OrderedDict((k, npf(v)) for k, v in sd.items()),
             metadata={"format": "pt"})
    del shell

    F, H, W, nfpb = run["frames"], run["lat_h"], run["lat_w"], run["num_frame_per_block"]
    L, nh = d["num_layers"], d["num_heads"]
    hd = d["dim"] // nh
    fsl = (H // 2) * (W // 2)
    initial, n_in = None, run.get("initial", 0)
    if n_in:  # the reference's initial_latent: clean latents of their own seed (any values will do)
        initial = torch.randn([1, n_in, 16, H, W], generator=torch.Generator().manual_seed(seed + 7), dtype=torch.float32)
    taps = []
    noise, calls, draws, output, fwd0 = reference_loop(R, run, sdir, mdir, context, seed, L, nh, hd, initial=initial,
                                                       taps=taps)
    rec = OrderedDict()

    n_steps = len(run.get("steps", STEPS))
    sizes = block_sizes(run)
    nb = len(sizes)
    ctx = block_sizes(run, n_in) if n_in else []
    assert len(calls) == len(ctx) + nb * (n_steps + 1), len(calls)
    assert len(draws) == nb * (n_steps - 1), len(draws)
    for i, (x, t, flow, x0, cs) in enumerate(calls[:len(ctx)]):  # the initial latents' context forwards, at t = 0
        assert cs == sum(ctx[:i]) * fsl and not t.any() and x.shape[1] == ctx[i]
    calls = calls[len(ctx):]
    if n_in:
        rec["initial_latent"] = npf(initial)
    rec["noise.init"] = npf(noise)
    for k, t in enumerate(draws):
        rec[f"noise.renoise.{k}"] = npf(t)
    rec["context.prompt_embeds"] = npf(context)
    for j, (x, t, flow, x0, cs) in enumerate(calls):
        b, s = divmod(j, n_steps + 1)
        assert cs == (n_in + sum(sizes[:b])) * fsl
        rec[f"in.{b}.{s}"] = npf(x[0])
        rec[f"timestep.{b}.{s}"] = npf(t[0])
        rec[f"flow.{b}.{s}"] = npf(flow[0])
        rec[f"pred.{b}.{s}"] = npf(x0[0])
    rec["output"] = npf(output)
    for k, v in fwd0.items():
        rec[k] = npf(v)
    st_write(os.path.join(sdir, "expect", "dit.safetensors"), rec)
    # every layer's self-attention logits of every generated forward (the context forwards' are not tapped), named as
    # sf-denoise --layer_indices all --tap-select all names them
    assert len(taps) == (len(ctx) + len(calls)) * L, (len(taps), len(calls), L)
    taps = taps[len(ctx) * L:]
    # and their frame aggregates as --tap-mode frames / probs define them (stages/denoise/taps.h), in float64: per
    # query frame and key frame-slot the mean logit, and the mean over the query frame's tokens of the softmax
    # probability summed over the slot's tokens (the softmax over every key the forward saw)
    tr = OrderedDict()
    for i, t in enumerate(taps):
        name = f"L{i % L}.b{i // L // (n_steps + 1)}.s{i // L % (n_steps + 1)}"
        lg = t[0].to(torch.float64)  # [heads, Lq, Lk]
        h, lq, lk = lg.shape
        blocks = lambda x: x.reshape(h, lq // fsl, fsl, lk // fsl, fsl)  # noqa: E731
        tr["taps." + name] = npf(t)
        tr["frames." + name] = blocks(lg).mean(dim=(2, 4)).numpy().astype("float32")
        tr["probs." + name] = blocks(torch.softmax(lg, dim=-1)).sum(dim=4).mean(dim=2).numpy().astype("float32")
    st_write(os.path.join(sdir, "expect", "taps.safetensors"), tr)
    return dict(frames=F, height=8 * H, width=8 * W, num_frame_per_block=nfpb, blocks=nb, steps=n_steps,
                frame_seq_length=fsl, head_dim=hd, local_attn_size=run["local_attn_size"], sink_size=run["sink_size"],
                initial=n_in, from_pretrained=STATE.get("from_pretrained"))


def make_vae(R, S, sdir, mdir, gen, seed):
    v = S["vae"]
    cfg = dict(dim=v["dim"], z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=v["num_res_blocks"], attn_scales=[],
               temperal_downsample=[False, True, True], dropout=0.0)
    sd = vae_weights(R.vae.WanVAE_(**cfg), gen)
    path = os.path.join(mdir, "Wan2.1_VAE.pth")
    torch.save(sd, path)

    def video_vae(pretrained_path=None, z_dim=None, device="cpu", **kwargs):
        """wan.modules.vae._video_vae with our file and sizes; built on the CPU and loaded strictly instead of
        `with torch.device('meta')` + assign=True (torch 1.13)."""
        c = dict(cfg, z_dim=z_dim, **kwargs)
        model = R.vae.WanVAE_(**c)
        model.load_state_dict(torch.load(path, map_location=device), strict=True)
        return model
    orig = R.wrapper._video_vae
    R.wrapper._video_vae = video_vae
    try:
        wrap = R.wrapper.WanVAEWrapper()
    finally:
        R.wrapper._video_vae = orig
    g = torch.Generator().manual_seed(seed + 1000003)
    z = torch.randn([1, v["T"], 16, v["lat_h"], v["lat_w"]], generator=g, dtype=torch.float32)
    with torch.no_grad():
        video = wrap.decode_to_pixel(z, use_cache=False)
    st_write(os.path.join(sdir, "expect", "vae.safetensors"), OrderedDict(z=npf(z), video=npf(video)))
    # the encoder: 1 + 4(T-1) frames and 2 more, which the reference drops (an unfinished chunk of 4)
    pixels = torch.rand([1, 3, 4 * v["T"] - 1, 8 * v["lat_h"], 8 * v["lat_w"]], generator=g, dtype=torch.float32) * 2 - 1
    with torch.no_grad():
        latent = wrap.encode_to_latent(pixels)
    assert latent.shape[1] == v["T"], latent.shape
    st_write(os.path.join(sdir, "expect", "vae_encode.safetensors"), OrderedDict(pixels=npf(pixels), latent=npf(latent)))
    return dict(T=v["T"], lat_h=v["lat_h"], lat_w=v["lat_w"], video=list(video.shape),
                clamped_fraction=float((video.abs() >= 1).float().mean()), encode_pixels=list(pixels.shape))


def main():
    global torch
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--ref", help="the reference checkout (default $SF_REF, ./.ref, else from --mirror)")
    ap.add_argument("--mirror", default=DEFAULT_MIRROR, help="the fork's git directory (default %(default)s)")
    ap.add_argument("--shapes", default=",".join(SHAPES), help="comma list of %s" % ",".join(SHAPES))
    ap.add_argument("--seed", type=int, default=20240611)
    ap.add_argument("--golden", default=os.path.join(ROOT, "tests", "golden"),
                    help="tests/golden (tokens.json and spiece.model)")
    a = ap.parse_args()
    t0 = time.time()
    import torch as _t
    torch = _t
    torch.set_num_threads(max(1, min(os.cpu_count() or 1, 4)))
    shapes = [s for s in a.shapes.split(",") if s]
    for s in shapes:
        if s not in SHAPES:
            sys.exit(f"make_heldout: unknown shape {s} (have {','.join(SHAPES)})")
    with open(os.path.join(a.golden, "expect", "tokens.json")) as f:
        tj = json.load(f)
    tokens = {p["index"]: p for p in tj["prompts"]}
    spm = os.path.join(a.golden, "model", "google", "umt5-xxl", "spiece.model")
    with tempfile.TemporaryDirectory() as tmp:
        ref, commit = find_ref(a, tmp)
        R = import_reference(ref)
        log(f"reference {ref}" + (f" ({commit[:12]})" if commit else ""))
        for i, name in enumerate(shapes):
            S = SHAPES[name]
            ts = time.time()
            sdir = os.path.join(a.out, name)
            mdir = os.path.join(sdir, "model")
            os.makedirs(os.path.join(mdir, "google", "umt5-xxl"), exist_ok=True)
            os.makedirs(os.path.join(sdir, "expect"), exist_ok=True)
            shutil.copyfile(spm, os.path.join(mdir, "google", "umt5-xxl", "spiece.model"))
            seed = a.seed + 1000 * i
            gen = torch.Generator().manual_seed(seed)
            ctx = make_t5(R, S, sdir, mdir, tokens, gen)
            dinfo = make_dit(R, S, sdir, mdir, ctx, gen, seed)
            vinfo = make_vae(R, S, sdir, mdir, gen, seed)
            info = OrderedDict(shape=name, what=S["what"], seed=seed, dit=S["dit"], t5=S["t5"], run=S["run"],
                               vae=S["vae"], dit_run=dinfo, vae_run=vinfo, prompts=PROMPTS, reference=ref,
                               reference_commit=commit, torch=torch.__version__,
                               seconds=round(time.time() - ts, 1))
            with open(os.path.join(sdir, "shape.json"), "w") as f:
                json.dump(info, f, indent=1)
            log(f"{name}: {S['what']} ({info['seconds']} s)")
    log(f"wrote {len(shapes)} shapes under {a.out} in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
