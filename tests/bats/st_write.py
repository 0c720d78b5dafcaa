"""st_write.py — write(path, {name: (shape, values)}, meta): a small hand-made f32 safetensors file for the bats
suites (plain python3, no numpy): the tensors in the order given, the string metadata, the header padded to 8 bytes.
Imported by sf-taps-compare.bats (sys.path gets this folder)."""
import json, struct


def write(path, tensors, meta):
    hdr, blob = {"__metadata__": meta}, b""
    for name, (shape, vals) in tensors.items():
        b = struct.pack("<%df" % len(vals), *vals)
        hdr[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(blob), len(blob) + len(b)]}
        blob += b
    h = json.dumps(hdr).encode()
    h += b" " * (-len(h) % 8)
    open(path, "wb").write(struct.pack("<Q", len(h)) + h + blob)
