#!/usr/bin/env python3
"""png_write.py PATH W H R,G,B [PATH W H R,G,B ...] — solid-colour 8-bit RGB PNGs, with zlib alone: frames and
backdrops for the bats suites (sf-taps.bats, sf-taps-compare.bats). Parent folders are made."""
import os, struct, sys, zlib


def write(path, w, h, rgb):
    chunk = lambda k, b: struct.pack(">I", len(b)) + k + b + struct.pack(">I", zlib.crc32(k + b) & 0xffffffff)
    raw = b"".join(b"\0" + bytes(rgb) * w for _ in range(h))
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


if __name__ == "__main__":
    a = sys.argv[1:]
    assert a and len(a) % 4 == 0, __doc__
    for i in range(0, len(a), 4):
        write(a[i], int(a[i + 1]), int(a[i + 2]), [int(c) for c in a[i + 3].split(",")])
