#!/usr/bin/env python3
"""gen_ftfy_tables.py — writes stages/encode/mojibake_tables.c, the data of ftfy's mojibake repair.

stages/encode/mojibake.c ports ftfy.fix_encoding (ftfy 6.3.1); its data comes from ftfy's and
Python's own tables, never typed by hand:

  * the ten 1-byte encodings of ftfy.chardata.CHARMAP_ENCODINGS (latin-1, ftfy's sloppy
    windows-125x codecs, iso-8859-2, macroman, cp437): each byte's character (the codec's decode
    table) and, sorted by code point, the byte each encodable non-ASCII character encodes to. The
    script checks that a character is encodable exactly when ftfy's ENCODING_REGEXES[encoding]
    accepts it, and that the codec encodes it to that byte.
  * ftfy's regular expressions (badness.BADNESS_RE, chardata.UTF8_DETECTOR_RE, ALTERED_UTF8_RE,
    LOSSY_UTF8_RE, fixes.A_GRAVE_WORD_RE), translated for PCRE2 from Python's own parse of each
    pattern (re._parser): every character class becomes the explicit list of the code points
    Python's re puts in it (\\s and \\w as Python's Unicode database defines them), '.' is "not
    \\n", '$' is Python's "end, or before a final \\n", '^' the start of the subject; groups,
    alternatives, repeats and lookarounds keep their meaning (both engines backtrack alike).

Run it with the Python that has ftfy 6.3.1 (make tokdiff's venv), from the repository root:
  build/tokvenv/bin/python tests/heldout/gen_ftfy_tables.py [--out stages/encode/mojibake_tables.c]
"""
import argparse
import re
import sys
import unicodedata

try:
    import re._constants as C
    import re._parser as P
except ImportError:  # Python < 3.11
    import sre_constants as C
    import sre_parse as P

import ftfy
from ftfy import badness, chardata, fixes

MAXCP = 0x10FFFF
NAMES = {  # C names of ftfy's encodings
    "latin-1": "LATIN_1", "sloppy-windows-1252": "SLOPPY_1252", "sloppy-windows-1251": "SLOPPY_1251",
    "sloppy-windows-1250": "SLOPPY_1250", "sloppy-windows-1253": "SLOPPY_1253",
    "sloppy-windows-1254": "SLOPPY_1254", "sloppy-windows-1257": "SLOPPY_1257",
    "iso-8859-2": "ISO_8859_2", "macroman": "MACROMAN", "cp437": "CP437",
}
REGEXES = [  # (C name, compiled pattern, what it is)
    ("BADNESS", badness.BADNESS_RE, "ftfy.badness.BADNESS_RE: is_bad(text) is a search hit"),
    ("UTF8_DETECTOR", chardata.UTF8_DETECTOR_RE, "ftfy.chardata.UTF8_DETECTOR_RE (decode_inconsistent_utf8)"),
    ("ALTERED_UTF8", chardata.ALTERED_UTF8_RE, "ftfy.chardata.ALTERED_UTF8_RE (restore_byte_a0), on bytes"),
    ("LOSSY_UTF8", chardata.LOSSY_UTF8_RE, "ftfy.chardata.LOSSY_UTF8_RE (replace_lossy_sequences), on bytes"),
    ("A_GRAVE_WORD", fixes.A_GRAVE_WORD_RE, "ftfy.fixes.A_GRAVE_WORD_RE (restore_byte_a0), on bytes"),
]


_charmaps = {}


def charmap(encoding):
    if encoding not in _charmaps:
        _charmaps[encoding] = _charmap(encoding)
    return _charmaps[encoding]


def _charmap(encoding):
    """(decode table of 256 code points, sorted [(code point, byte)] of the non-ASCII encodable)."""
    dec = [ord(bytes([b]).decode(encoding)) for b in range(256)]
    rx = chardata.ENCODING_REGEXES[encoding]
    accepted = [c for c in range(MAXCP + 1) if not 0xD800 <= c <= 0xDFFF and rx.match(chr(c))]
    if sorted(accepted) != sorted(set(dec)):
        sys.exit(f"{encoding}: ENCODING_REGEXES accepts other characters than the codec decodes to")
    sloppy = encoding.startswith("sloppy")
    if [c for c in accepted if c < 0x80] != [c for c in range(0x80) if not (sloppy and c == 0x1A)]:
        sys.exit(f"{encoding}: mojibake.c assumes every ASCII character but (sloppy) 1A is encodable")
    enc = []
    for c in accepted:
        b = chr(c).encode(encoding)
        if len(b) != 1 or dec[b[0]] != c:
            sys.exit(f"{encoding}: U+{c:04X} does not encode back to its byte")
        if c >= 0x80:
            enc.append((c, b[0]))
        elif b[0] != c:
            sys.exit(f"{encoding}: ASCII U+{c:04X} encodes to 0x{b[0]:02x}")
    return dec, sorted(enc)


_category_sets = {}


def category_set(cat, text):
    """The code points Python's re puts in a class escape (\\s, \\w, \\d and their negations)."""
    key = (cat, text)
    if key not in _category_sets:
        esc = {C.CATEGORY_SPACE: r"\s", C.CATEGORY_NOT_SPACE: r"\S", C.CATEGORY_WORD: r"\w",
               C.CATEGORY_NOT_WORD: r"\W", C.CATEGORY_DIGIT: r"\d", C.CATEGORY_NOT_DIGIT: r"\D"}[cat]
        if text:
            rx = re.compile(esc)
            _category_sets[key] = {c for c in range(MAXCP + 1) if rx.match(chr(c))}
        else:
            rx = re.compile(esc.encode())
            _category_sets[key] = {c for c in range(256) if rx.match(bytes([c]))}
    return _category_sets[key]


def class_set(items, text):
    top = MAXCP if text else 0xFF
    s, negate = set(), False
    for op, av in items:
        if op is C.NEGATE:
            negate = True
        elif op is C.LITERAL:
            s.add(av)
        elif op is C.RANGE:
            s.update(range(av[0], av[1] + 1))
        elif op is C.CATEGORY:
            s |= category_set(av, text)
        else:
            sys.exit(f"unsupported class item {op}")
    if negate:
        s = set(range(top + 1)) - s
    if text:
        s -= set(range(0xD800, 0xE000))  # not in valid UTF-8: PCRE2 cannot be asked about them
    return s


def esc(c):
    return f"\\x{{{c:x}}}"


def emit_class(s):
    if not s:
        sys.exit("empty character class")
    cps, out, i = sorted(s), [], 0
    while i < len(cps):
        j = i
        while j + 1 < len(cps) and cps[j + 1] == cps[j] + 1:
            j += 1
        out.append(esc(cps[i]) if i == j else esc(cps[i]) + ("" if j == i + 1 else "-") + esc(cps[j]))
        i = j + 1
    return "[" + "".join(out) + "]"


def emit(sub, text):
    out = []
    for op, av in sub:
        if op is C.LITERAL:
            out.append(esc(av))
        elif op is C.NOT_LITERAL:
            out.append(emit_class(class_set([(C.NEGATE, None), (C.LITERAL, av)], text)))
        elif op is C.IN:
            out.append(emit_class(class_set(av, text)))
        elif op is C.CATEGORY:
            out.append(emit_class(class_set([(C.CATEGORY, av)], text)))
        elif op is C.ANY:  # no DOTALL in ftfy's patterns: anything but '\n'
            out.append(emit_class(class_set([(C.NEGATE, None), (C.LITERAL, 10)], text)))
        elif op is C.BRANCH:
            out.append("(?:" + "|".join(emit(b, text) for b in av[1]) + ")")
        elif op is C.SUBPATTERN:
            group, add_flags, del_flags, p = av
            if add_flags or del_flags:
                sys.exit("inline flags are not supported")
            out.append("(?:" + emit(p, text) + ")")
        elif op in (C.MAX_REPEAT, C.MIN_REPEAT):
            lo, hi, p = av
            q = "{%d,}" % lo if hi == C.MAXREPEAT else "{%d,%d}" % (lo, hi)
            out.append("(?:" + emit(p, text) + ")" + q + ("?" if op is C.MIN_REPEAT else ""))
        elif op is C.AT:
            if av is C.AT_BEGINNING:  # '^' without MULTILINE: the start of the string
                out.append("\\A")
            elif av is C.AT_END:  # '$' without MULTILINE: the end, or before a '\n' that ends it
                out.append("(?=\\n?\\z)")
            else:
                sys.exit(f"unsupported anchor {av}")
        elif op in (C.ASSERT, C.ASSERT_NOT):
            direction, p = av
            kind = ("(?<" if direction < 0 else "(?") + ("=" if op is C.ASSERT else "!")
            out.append(kind + emit(p, text) + ")")
        else:
            sys.exit(f"unsupported regex op {op}")
    return "".join(out)


def translate(rx):
    text = isinstance(rx.pattern, str)
    if rx.flags & ~(re.VERBOSE | re.UNICODE):
        sys.exit(f"unsupported flags {rx.flags:#x}")
    return emit(P.parse(rx.pattern, rx.flags), text), text


def c_string(s, width=100):
    lines = [s[i:i + width] for i in range(0, len(s), width)] or [""]
    return "\n".join('    "' + ln.replace("\\", "\\\\").replace('"', '\\"').replace("??", "?\\?") + '"'
                     for ln in lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="stages/encode/mojibake_tables.c")
    a = ap.parse_args()
    if ftfy.__version__ != "6.3.1":
        sys.exit(f"ftfy {ftfy.__version__}: the port follows 6.3.1")
    if list(NAMES) != chardata.CHARMAP_ENCODINGS:
        sys.exit("ftfy's CHARMAP_ENCODINGS changed")
    o = [f"""/* mojibake_tables.c — GENERATED, do not edit: tests/heldout/gen_ftfy_tables.py writes it from ftfy
 * {ftfy.__version__} and Python {sys.version.split()[0]} (Unicode {unicodedata.unidata_version}).
 *
 * The 1-byte encodings ftfy's fix_encoding tries (chardata.CHARMAP_ENCODINGS, in its order) and its
 * regular expressions, translated for PCRE2 (each class spelled out as Python's re reads it).
 * Used by stages/encode/mojibake.c and clean.c; tested by tests/unit/test_tokenizer.c. */
#include "stages/encode/mojibake.h"
"""]
    for name in NAMES:
        dec, enc = charmap(name)
        cn = NAMES[name].lower()
        o.append(f"\n/* {name}: the character of each byte */\nstatic const uint16_t dec_{cn}[256] = {{")
        o += ["    " + ", ".join(f"0x{c:04x}" for c in dec[i:i + 12]) + "," for i in range(0, 256, 12)]
        o.append(f"}};\n/* {name}: the byte of each encodable non-ASCII character, by code point */")
        o.append(f"static const sf_ftfy_enc enc_{cn}[{len(enc)}] = {{")
        o += ["    " + " ".join(f"{{0x{c:04x}, 0x{b:02x}}}," for c, b in enc[i:i + 7]) for i in range(0, len(enc), 7)]
        o.append("};")
    o.append("\nconst sf_ftfy_charmap sf_ftfy_charmaps[SF_FTFY_N_CHARMAPS] = {")
    for name in NAMES:
        cn = NAMES[name].lower()
        o.append(f'    {{"{name}", {int(name.startswith("sloppy"))}, dec_{cn}, enc_{cn}, {len(charmap(name)[1])}}},')
    o.append("};")
    o.append("\nconst sf_ftfy_regex sf_ftfy_regexes[SF_FTFY_N_REGEXES] = {")
    for cname, rx, what in REGEXES:
        pat, text = translate(rx)
        o.append(f"    /* SF_FTFY_RE_{cname}: {what} */")
        o.append(f'    {{"{cname}", {int(text)},\n{c_string(pat)}}},')
    o.append("};")
    with open(a.out, "w") as f:
        f.write("\n".join(o) + "\n")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
