#!/usr/bin/env python3
"""torch_noise.py OUTDIR — what torch.randn draws on this GPU, for test_rng_torch device_compare.

tests/gpu/check.sh runs it with the reference's torch on the device: torch.manual_seed(42), then the
reference's first two draws of a video (the initial noise [1, 21, 16, 60, 104] and a re-noising draw
[3, 16, 60, 104], bf16 as the reference draws them) and a float32 draw of an odd size past several
waves of the grid. Each is written as raw little-endian float32 (OUTDIR/<name>.f32) with meta.json:
shapes, dtypes, the generator's offset after each draw (torch.cuda.get_rng_state: seed, offset) and
the card's SM count and threads per SM, which shape the stream (common/rng_torch.h)."""
import json
import os
import struct
import sys

import torch


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    p = torch.cuda.get_device_properties(0)
    torch.manual_seed(42)
    draws = [("init", [1, 21, 16, 60, 104], torch.bfloat16), ("renoise0", [3, 16, 60, 104], torch.bfloat16),
             ("odd_f32", [2000003], torch.float32)]
    meta = {"seed": 42, "sms": p.multi_processor_count, "threads_per_sm": p.max_threads_per_multi_processor,
            "device": p.name, "torch": torch.__version__, "draws": []}
    for name, shape, dt in draws:
        x = torch.randn(shape, device="cuda", dtype=dt)
        st = torch.cuda.get_rng_state().tolist()
        seed, offset = struct.unpack("<QQ", bytes(st[:16]))
        x.float().cpu().numpy().astype("<f4").tofile(os.path.join(out, name + ".f32"))
        meta["draws"].append({"name": name, "shape": shape, "bf16": dt == torch.bfloat16, "offset_after": offset,
                              "seed_state": seed})
    with open(os.path.join(out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
