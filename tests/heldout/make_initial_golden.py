#!/usr/bin/env python3
"""tests/golden/expect/dit_pipeline_initial.safetensors: the reference's CausalInferencePipeline.inference with an
initial_latent, on the golden tiny model (tests/golden/model, base weights), for make test without torch
(tests/unit/test_dit_pipeline.c `initial_latents` and its emulated twin hold sf-denoise's pipeline to it).

    /usr/bin/python3 tests/heldout/make_initial_golden.py [--ref DIR | --mirror GITDIR] [--out FILE]

Two cases, each 6 generated latent frames of 8x12 in blocks of 3, the golden schedule (shift 5, warped
1000/750/500/250, context_noise 0), global attention, the golden text context (dit_pipeline_base's
context.prompt_embeds):
  ext  video extension: 3 initial frames (one context block of 3), num_frame_per_block 3;
  i2v  image-to-video: independent_first_frame, 1 initial frame, then blocks of 3 (no 1-frame block).
The noise is dit_pipeline_base's, so the file stays small and the test slices it from there: noise.init frames
0..5 as the noise [1, 6, 16, 8, 12], noise.renoise.0..5 as the re-noising draws in order. The initial latents
are torch.randn with their own seeded generator (not frames of any golden run: the context is new to the model).
Tensors: <case>.initial_latent [1, F_in, 16, 8, 12], <case>.output [1, F_in + 6, 16, 8, 12] (the reference's
output: the initial latents first). Deterministic (fixed seeds, float32 CPU, exact softmax: make_heldout.py's
shims); about ten seconds. Needs python3 with torch, numpy and pyyaml, and the reference source (as
make_heldout.py finds it).
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
    ext=dict(initial=3, independent_first_frame=False, seed=1001),
    i2v=dict(initial=1, independent_first_frame=True, seed=1002),
)


def main():
    a, torch = mh.reference_cli(__doc__, out="dit_pipeline_initial.safetensors")
    mdir = os.path.join(a.golden, "model")
    base = mh.st_read(os.path.join(a.golden, "expect", "dit_pipeline_base.safetensors"))
    context = torch.from_numpy(base["context.prompt_embeds"])
    noise = torch.from_numpy(base["noise.init"][:, :6].copy())
    renoise = [torch.from_numpy(base[f"noise.renoise.{k}"]) for k in range(6)]
    rec = OrderedDict()
    with tempfile.TemporaryDirectory() as tmp:
        ref, commit = mh.find_ref(a, tmp)
        R = mh.import_reference(ref)
        for name, c in CASES.items():
            run = dict(frames=6, initial=c["initial"], lat_h=8, lat_w=12, num_frame_per_block=3, local_attn_size=-1,
                       sink_size=0, independent_first_frame=c["independent_first_frame"])
            initial = torch.randn([1, c["initial"], 16, 8, 12], generator=torch.Generator().manual_seed(c["seed"]),
                                  dtype=torch.float32)
            _, calls, draws, output, _ = mh.reference_loop(R, run, tmp, mdir, context, 0, 3, 2, 128, noise=noise,
                                                           renoise=renoise, initial=initial)
            n_ctx = len(mh.block_sizes(run, c["initial"]))
            assert len(calls) == n_ctx + 2 * 5 and len(draws) == 6, (len(calls), len(draws))
            assert torch.equal(output[:, :c["initial"]], initial)
            rec[f"{name}.initial_latent"] = mh.npf(initial)
            rec[f"{name}.output"] = mh.npf(output)
            mh.log(f"{name}: {c['initial']} initial frames + 6: {n_ctx} context forwards, output {list(output.shape)}")
    meta = {"made_by": "tests/heldout/make_initial_golden.py", "reference_commit": commit or "",
            "noise": "dit_pipeline_base.safetensors noise.init[:, :6], noise.renoise.0..5", "torch": torch.__version__}
    mh.st_write(a.out, rec, metadata=meta)
    mh.log(f"wrote {a.out} ({os.path.getsize(a.out)} bytes)")


if __name__ == "__main__":
    main()
