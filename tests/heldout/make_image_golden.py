#!/usr/bin/env python3
"""The fixtures of tests/unit/test_image.c: small PNG and JPEG images of every kind the reference's image-to-video
transform may be given, and what PIL (9.4, Debian's python3-pil) makes of them.

    /usr/bin/python3 tests/heldout/make_image_golden.py [--out tests/golden]

writes OUT/images/<name> (seeded content: smooth gradients, a hard-edged box and noise; PNGs written here byte by byte
so that every colour type, bit depth and Adam7 interlacing is covered, JPEGs by PIL's encoder: 4:2:0, 4:2:2,
progressive 4:4:4, grey, CMYK, one whose data ends early (PIL reads it), and a 960x540 "photo") and OUT/expect/image.safetensors:

    rgb/<name>                          u8 [h, w, 3]  Image.open(p).convert('RGB')
    resize/<name>/<W>x<H>               u8 [H, W, 3]  .resize((W, H), Image.BILINEAR)  (= torchvision Resize((H, W)))
    box/<name>/<W>x<H>/<x0>,<y0>,<x1>,<y1>  u8 [H, W, 3]  .resize((W, H), Image.BILINEAR, box)
    pixels/<name>/<W>x<H>               f32 [3, H, W] ToTensor() + Normalize([0.5], [0.5]) of the resized image
    crc/<name>/<W>x<H>                  i64 [2]       zlib.crc32 of the resized u8 bytes and of the f32 pixels (LE):
                                                      the real 832x480 target, too large to store
    crc/<name>/rgb                      i64 [1]       zlib.crc32 of convert('RGB')'s bytes (the photo, 960x540)

The inference.py --i2v transform is transforms.Compose([Resize((480, 832)), ToTensor(), Normalize([0.5], [0.5])]).
When torchvision is importable (Debian's python3-torchvision) every resize and the pixels are also computed through it
and must agree (the script stops otherwise); without it that check is skipped, visibly. Rerun after changing the cases,
then `make build/tests/test_image && build/tests/test_image`. The tests themselves need neither Python nor PIL.
"""
import argparse
import os
import struct
import sys
import warnings
import zlib

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_heldout import st_write  # noqa: E402  (the repo's safetensors writer)

BILINEAR = getattr(Image, "Resampling", Image).BILINEAR
ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def content(rng, w, h, ch, hi=255):
    """Smooth waves per channel, a hard-edged box (resampling at edges) and noise, in [0, hi]."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    out = np.empty((h, w, ch))
    for c in range(ch):
        f = rng.uniform(0.05, 0.4, 2)
        p = rng.uniform(0, 6.3, 2)
        out[..., c] = 0.5 + 0.35 * np.sin(x * f[0] + p[0]) * np.cos(y * f[1] + p[1])
    out[h // 4:h // 2 + 1, w // 3:2 * w // 3 + 1] = rng.uniform(0, 1, ch)
    out += rng.normal(0, 0.06, out.shape)
    return np.clip(np.rint(out * hi), 0, hi).astype(np.int64)


def chunk(tag, data):
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def pack_row(samples, bd):
    """One scanline of samples (ints) at bit depth bd, as PNG stores it."""
    if bd == 16:
        return b"".join(struct.pack(">H", int(v)) for v in samples)
    if bd == 8:
        return bytes(int(v) for v in samples)
    per = 8 // bd
    out = bytearray()
    for i in range(0, len(samples), per):
        b = 0
        for j, v in enumerate(samples[i:i + per]):
            b |= int(v) << (8 - bd * (j + 1))
        out.append(b)
    return bytes(out)


def write_png(path, a, ct, bd, interlace=False, extra=b""):
    """a: [h, w, channels] ints. Filter type 0 rows; Adam7 passes when interlace."""
    h, w, _ = a.shape
    raw = bytearray()
    passes = ADAM7 if interlace else [(0, 0, 1, 1)]
    for x0, y0, dx, dy in passes:
        if x0 >= w or y0 >= h:
            continue  # an empty pass has no rows at all
        for yy in range(y0, h, dy):
            raw += b"\0" + pack_row(a[yy, x0::dx].reshape(-1), bd)
    ihdr = struct.pack(">IIBBBBB", w, h, bd, ct, 0, 0, 1 if interlace else 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra + chunk(b"IDAT", zlib.compress(bytes(raw), 9))
                + chunk(b"IEND", b""))


def make_sources(d, rng):
    """name -> list of (W, H) targets beyond the defaults."""
    os.makedirs(d, exist_ok=True)
    many = lambda w, h: [(2 * w + 3, 3 * h // 2 + 1), (w, 11), (17, h), (1, h), (w, 1), (64, 1), (5, 40), (13, 9)]
    src = {}
    write_png(f"{d}/rgb8.png", content(rng, 37, 23, 3), 2, 8)
    src["rgb8.png"] = many(37, 23)
    write_png(f"{d}/rgba8_adam7.png", content(rng, 33, 21, 4), 6, 8, interlace=True)
    src["rgba8_adam7.png"] = []
    pal = content(rng, 12, 1, 3)[0].astype(np.uint8).tobytes()
    idx = rng.integers(0, 16, (17, 29, 1))  # indices 12..15 lie past the 12-entry palette: PIL's grey ramp
    write_png(f"{d}/palette4.png", idx, 3, 4, extra=chunk(b"PLTE", pal) + chunk(b"tRNS", bytes([0, 128, 255])))
    src["palette4.png"] = []
    pal = content(rng, 200, 1, 3)[0].astype(np.uint8).tobytes()
    write_png(f"{d}/palette8.png", rng.integers(0, 200, (13, 19, 1)), 3, 8, extra=chunk(b"PLTE", pal))
    src["palette8.png"] = []
    write_png(f"{d}/palette1_adam7.png", rng.integers(0, 2, (11, 21, 1)), 3, 1, interlace=True,
              extra=chunk(b"PLTE", bytes([200, 30, 40, 10, 90, 250])))
    src["palette1_adam7.png"] = []
    write_png(f"{d}/grey_alpha8.png", content(rng, 31, 19, 2), 4, 8)
    src["grey_alpha8.png"] = []
    write_png(f"{d}/grey_alpha16.png", content(rng, 15, 9, 2, 65535), 4, 16)
    src["grey_alpha16.png"] = []
    write_png(f"{d}/rgb16.png", content(rng, 27, 15, 3, 65535), 2, 16)
    src["rgb16.png"] = []
    write_png(f"{d}/rgba16_adam7.png", content(rng, 13, 11, 4, 65535), 6, 16, interlace=True)
    src["rgba16_adam7.png"] = []
    write_png(f"{d}/grey16.png", content(rng, 23, 13, 1, 700), 0, 16)  # PIL mode I: values over 255 clip
    src["grey16.png"] = []
    write_png(f"{d}/grey1.png", content(rng, 17, 9, 1, 1), 0, 1)
    src["grey1.png"] = []
    write_png(f"{d}/grey2_adam7.png", content(rng, 11, 7, 1, 3), 0, 2, interlace=True)
    src["grey2_adam7.png"] = []
    write_png(f"{d}/grey4.png", content(rng, 15, 7, 1, 15), 0, 4)
    src["grey4.png"] = []
    write_png(f"{d}/grey8_trns.png", content(rng, 25, 14, 1), 0, 8, extra=chunk(b"tRNS", b"\0\x80"))
    src["grey8_trns.png"] = []
    write_png(f"{d}/line_1x7.png", content(rng, 1, 7, 3), 2, 8)
    src["line_1x7.png"] = [(5, 20), (1, 3), (3, 1)]

    def jpeg(name, a, mode, **kw):
        Image.fromarray(a.astype(np.uint8), "L" if mode == "L" else "RGB").convert(mode).save(f"{d}/{name}", "JPEG", **kw)
    jpeg("jpeg420.jpg", content(rng, 45, 29, 3), "RGB", quality=90, subsampling=2)
    src["jpeg420.jpg"] = many(45, 29) + [(20, 12)]
    # damaged: its SOF declares 40 rows, its data holds 29, then EOI. libjpeg warns ("premature end of data
    # segment") and pads; PIL ignores the warning and reads it, so must we (the same pixels)
    d_ = bytearray(open(f"{d}/jpeg420.jpg", "rb").read())
    i = d_.index(b"\xff\xc0")
    d_[i + 5:i + 7] = struct.pack(">H", 40)
    with open(f"{d}/jpeg_short_data.jpg", "wb") as f:
        f.write(bytes(d_))
    src["jpeg_short_data.jpg"] = []
    jpeg("jpeg422.jpg", content(rng, 30, 20, 3), "RGB", quality=90, subsampling=1)
    src["jpeg422.jpg"] = []
    jpeg("jpeg444_progressive.jpg", content(rng, 35, 21, 3), "RGB", quality=85, subsampling=0, progressive=True)
    src["jpeg444_progressive.jpg"] = []
    jpeg("jpeg_grey.jpg", content(rng, 41, 27, 1)[..., 0], "L", quality=90)
    src["jpeg_grey.jpg"] = []
    jpeg("jpeg_cmyk.jpg", content(rng, 24, 16, 3), "CMYK", quality=90)
    src["jpeg_cmyk.jpg"] = []
    # a photo-sized frame (smooth, few bytes) for the real target 832x480: a non-integer downscale on both axes
    y, x = np.mgrid[0:540, 0:960].astype(np.float64)
    ph = np.stack([128 + 100 * np.sin(x / 37.0 + c) * np.cos(y / 23.0 - c) for c in range(3)], -1)
    ph[200:340, 300:620] = [30, 200, 90]
    jpeg("photo.jpg", np.clip(ph, 0, 255), "RGB", quality=75, subsampling=2)
    src["photo.jpg"] = [(96, 54)]
    return src


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden"))
    args = ap.parse_args()
    try:
        from torchvision import transforms
        import torch
    except ImportError:
        transforms = None
        print("make_image_golden: torchvision not importable: the torchvision equivalence is NOT checked")
    rng = np.random.default_rng(20240611)
    imgdir = os.path.join(args.out, "images")
    src = make_sources(imgdir, rng)
    out = {}
    checked = 0

    def tv_check(img, W, H, got):
        nonlocal checked
        if transforms is None:
            return
        ref = np.asarray(transforms.Resize((H, W))(img))
        assert np.array_equal(ref, got), f"torchvision Resize differs from Image.resize at {W}x{H}"
        checked += 1

    def pixels(img, W, H, a):
        """ToTensor + Normalize in float32, as torchvision computes it (checked against it below)."""
        p = ((a.astype(np.float32) / np.float32(255)) - np.float32(0.5)) / np.float32(0.5)
        p = np.ascontiguousarray(p.transpose(2, 0, 1))
        if transforms is not None:
            t = transforms.Compose([transforms.Resize((H, W)), transforms.ToTensor(),
                                    transforms.Normalize([0.5], [0.5])])(img)
            assert t.dtype == torch.float32 and np.array_equal(t.numpy(), p), f"pixels differ at {W}x{H}"
        return p

    for name, extra in src.items():
        with warnings.catch_warnings():  # "Palette images with Transparency expressed in bytes ...": as the reference
            warnings.simplefilter("ignore")
            img = Image.open(os.path.join(imgdir, name)).convert("RGB")
        w, h = img.size
        if name == "photo.jpg":  # 1.5 MB decoded: its checksum only
            out[f"crc/{name}/rgb"] = np.array([zlib.crc32(np.asarray(img).tobytes())], dtype=np.int64)
            targets = extra
        else:
            out[f"rgb/{name}"] = np.asarray(img)
            targets = [(w, h), (max(1, 2 * w // 5), max(1, 3 * h // 7)), (1, 1)] + extra
        for W, H in dict.fromkeys(targets):
            a = np.asarray(img.resize((W, H), BILINEAR))
            tv_check(img, W, H, a)
            out[f"resize/{name}/{W}x{H}"] = a
        if name == "jpeg420.jpg":
            out[f"pixels/{name}/20x12"] = pixels(img, 20, 12, out[f"resize/{name}/20x12"])
        if name == "photo.jpg":
            a = np.asarray(img.resize((832, 480), BILINEAR))
            tv_check(img, 832, 480, a)
            p = pixels(img, 832, 480, a)
            out[f"crc/{name}/832x480"] = np.array([zlib.crc32(a.tobytes()), zlib.crc32(p.astype("<f4").tobytes())],
                                                  dtype=np.int64)
        if name == "rgb8.png":
            # a fractional box, an integer box of the output's size (PIL's crop shortcut), one that is not, a
            # box offset along x only (the horizontal pass alone) and an empty one (PIL allows it)
            for (W, H), box in [((13, 9), (2.5, 1.25, 30.0, 20.75)), ((10, 8), (3, 2, 13, 10)),
                                ((8, 6), (4, 3, 20, 15)), ((37, 23), (0.5, 0, 37, 23)), ((4, 23), (3, 0, 3, 23))]:
                a = np.asarray(img.resize((W, H), BILINEAR, box))
                out[f"box/{name}/{W}x{H}/" + ",".join(repr(float(v)) for v in box)] = a
    os.makedirs(os.path.join(args.out, "expect"), exist_ok=True)
    path = os.path.join(args.out, "expect", "image.safetensors")
    st_write(path, out, metadata={"made_by": "tests/heldout/make_image_golden.py", "pil": Image.__version__})
    print(f"make_image_golden: {len(src)} images, {len(out)} tensors -> {path} ({os.path.getsize(path)} bytes); "
          f"torchvision agreed on {checked} resizes" + ("" if transforms else " (not checked)"))


if __name__ == "__main__":
    main()
