#!/usr/bin/env python3
"""png_pixels.py FILE [N] — the token-map PNGs that sf-taps embeds (<image class="tokmap" href="data:image/png;base64,...">)
in an SVG or HTML FILE, decoded with zlib alone (8-bit RGB, the five PNG filters): one line per image, or only image N
(0-based): "W H r,g,b r,g,b ..." row by row. For the bats suites (sf-taps.bats, sf-taps-compare.bats, sink_study.bats)."""
import base64, re, struct, sys, zlib


def decode(png):
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, w = 8, b"", None
    while pos < len(png):
        n, kind = struct.unpack(">I4s", png[pos:pos + 8])
        body = png[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, color = struct.unpack(">IIBB", body[:10])
            assert (depth, color) == (8, 2), (depth, color)  # 8-bit RGB
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw, bpp, stride, rows, prev, i = zlib.decompress(idat), 3, 3 * w, [], bytearray(3 * w), 0
    for _ in range(h):
        f, line = raw[i], bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b, c = prev[x], prev[x - bpp] if x >= bpp else 0
            if f == 1: line[x] = (line[x] + a) & 255
            elif f == 2: line[x] = (line[x] + b) & 255
            elif f == 3: line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line)
        prev = line
    return w, h, [tuple(r[3 * x:3 * x + 3]) for r in rows for x in range(w)]


text = open(sys.argv[1]).read()
imgs = re.findall(r'<image class="tokmap"[^>]*href="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
for k, b in enumerate(imgs):
    if len(sys.argv) > 2 and k != int(sys.argv[2]):
        continue
    w, h, px = decode(base64.b64decode(b))
    print(w, h, " ".join("%d,%d,%d" % p for p in px))
