#!/usr/bin/env python3
"""st_frames.py OUT DST=FILE:NAME[@A-B]... — a small f32 safetensors file for the bats suites, plain python3 (no
numpy): each DST is tensor NAME of safetensors FILE, or its frames A..B-1 (dim 1 of a 5-D [1, T, ...] tensor, dim 0
of a 4-D one). sf-denoise.bats cuts a run's first block and the rest of its noise with it."""
import json, struct, sys
def rd(p):
    b = open(p, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    h.pop("__metadata__", None)
    return h, b[8 + n:]
out, ents = sys.argv[1], []
for spec in sys.argv[2:]:  # DST=FILE:NAME[@A-B]  (frames A..B-1 of dim 1 of a 5-D or dim 0 of a 4-D f32 tensor)
    dst, src = spec.split("=", 1)
    src, rng = src.rsplit("@", 1) if "@" in src else (src, None)
    path, name = src.rsplit(":", 1)
    h, data = rd(path)
    e = h[name]
    assert e["dtype"] == "F32", e
    shape, (o0, o1) = list(e["shape"]), e["data_offsets"]
    blob = data[o0:o1]
    if rng:
        a, z = (int(v) for v in rng.split("-"))
        ax = 1 if len(shape) == 5 else 0
        per = (o1 - o0) // (shape[0] if ax == 0 else shape[1])
        blob = blob[a * per:z * per]
        shape[ax] = z - a
    ents.append((dst, shape, blob))
hdr, off = {}, 0
for dst, shape, blob in ents:
    hdr[dst] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + len(blob)]}
    off += len(blob)
hj = json.dumps(hdr).encode()
hj += b" " * (-len(hj) % 8)
with open(out, "wb") as f:
    f.write(struct.pack("<Q", len(hj)) + hj + b"".join(b for _, _, b in ents))
