#!/usr/bin/env python3
"""png_pixels.py FILE [N] [--class C] — the token-map PNGs that sf-taps embeds (<image class="tokmap"
href="data:image/png;base64,...">; --class frame: the video frames behind them, --class thumb: a report's
video thumbnails, <img class="thumb" src=...>) in an SVG or HTML FILE, decoded with zlib
alone (8-bit RGB or RGBA, the five PNG filters): one line per image, or only image N (0-based): "W H r,g,b r,g,b ..."
(RGBA: r,g,b,a) row by row. For the bats suites (sf-taps.bats, sf-taps-compare.bats, sink_study.bats)."""
import base64, re, struct, sys, zlib


def decode(png):
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, w = 8, b"", None
    while pos < len(png):
        n, kind = struct.unpack(">I4s", png[pos:pos + 8])
        body = png[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color in (2, 6), (depth, color)  # 8-bit RGB or RGBA
            bpp = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw, stride, rows, i = zlib.decompress(idat), bpp * w, [], 0
    prev = bytearray(stride)
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
    return w, h, [tuple(r[bpp * x:bpp * x + bpp]) for r in rows for x in range(w)]


if __name__ == "__main__":
    args, cls = sys.argv[1:], "tokmap"
    if "--class" in args:
        k = args.index("--class")
        cls = args[k + 1]
        del args[k:k + 2]
    text = open(args[0]).read()
    imgs = re.findall(r'<(?:image|img)[^>]* class="%s"[^>]*(?:href|src)="data:image/png;base64,([A-Za-z0-9+/=]+)"'
                      % re.escape(cls), text)
    for k, b in enumerate(imgs):
        if len(args) > 1 and k != int(args[1]):
            continue
        w, h, px = decode(base64.b64decode(b))
        print(w, h, " ".join(",".join("%d" % c for c in p) for p in px))
