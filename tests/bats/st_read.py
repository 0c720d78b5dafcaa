"""st_read.py — the bats suites' reader of a safetensors file, plain python3 (no numpy): load(path, name) → (the
file's __metadata__, tensor name's f32 values as a tuple, or None when the file has no such tensor). Imported by
the python snippets of sf-denoise.bats (sys.path gets $BATS_TEST_DIRNAME)."""
import json, struct


def load(path, name="latents"):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
        if name not in h:
            return h["__metadata__"], None
        a, b = h[name]["data_offsets"]
        f.seek(8 + n + a)
        return h["__metadata__"], struct.unpack("<%df" % ((b - a) // 4), f.read(b - a))
