#!/usr/bin/env python3
"""tokenizer_diff.py — sf-encode's prompt cleaning and tokenizer against the reference's own.

The reference cleans a prompt with ftfy.fix_text, html.unescape twice and a \\s+ collapse
(wan/modules/tokenizers.py), then tokenizes it with the umT5 SentencePiece model. This script draws
random prompts from pools of hard characters (entities, controls, C1 bytes, terminal escapes, curly
quotes, ligatures, full/half widths, combining marks, CJK, RTL, emoji, whitespace of every kind,
literal special tokens, mojibake of every kind ftfy's fix_encoding repairs: UTF-8 read as Latin-1,
Windows-125x, MacRoman or cp437, once or twice, with lossy U+FFFD, spaces for U+00A0, CESU-8 and
Java nulls), runs `sf-encode --tokens-only` on them and compares the token ids with ftfy 6.3.1 +
sentencepiece on the same spiece.model. ftfy runs as the reference calls it (ftfy.fix_text, default
configuration, fix_encoding included): every prompt must match.

  --write-fixture FILE  hand-picked and random inputs with ftfy's and the whole cleaning's output
                (tests/unit/fixtures/clean_ftfy.json, read by test_tokenizer).

  --fast FILE   compare with Hugging Face `tokenizers` on FILE (a tokenizer.json) instead of
                sentencepiece: what the reference's AutoTokenizer does when the model folder has one
                (sf-encode then reads the same file), eos, truncation and all.

Needs `pip install ftfy==6.3.1 sentencepiece regex tokenizers` (make tokdiff makes a venv for it); not
part of make test. Exit 1 on a mismatch.
"""
import argparse
import html
import json
import random
import subprocess
import sys

import ftfy
import ftfy.bad_codecs  # noqa: F401 (registers the sloppy-windows-125x codecs)
import regex
import sentencepiece as spm


def _moji(text, *encodings):
    """text as UTF-8 read in each of encodings in turn (mojibake, once or more)"""
    for e in encodings:
        text = text.encode("utf-8").decode(e)
    return text


def _cesu(text):
    """text in CESU-8 (supplementary characters as two 3-byte surrogates) read as Latin-1"""
    units = []
    for c in text:
        v = ord(c) - 0x10000
        units += [c] if v < 0 else [chr(0xD800 + (v >> 10)), chr(0xDC00 + (v & 0x3FF))]
    return "".join(units).encode("utf-8", "surrogatepass").decode("latin-1")


POOLS = [
    "abcdefghijklmnopqrstuvwxyz     ", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789",
    ".,;:!?-_()[]{}'\"/\\@#$%^*+=<>|~`",
    "&amp;&lt;&gt;&quot;&#39;&#x41;&nbsp;&eacute;&EACUTE;&SZLIG;&copy;&amp;amp;&#x80;&#150;&#0;&#59;&NTILDE;&LTRI;&",
    "\t\n\r\x0b\x0c\u00a0\u2000\u2003\u3000\u200b\u2028\u2029\u1680\u202f\u205f\ufeff\x85\x1c\x1f",
    "éèêëàâäôöûüçñßøåæœ", "e\u0301a\u0300o\u0308n\u0303\u0327",
    "你好世界猫狗山水火车电影光影", "こんにちはカタカナ", "안녕하세요", "Привет мир", "مرحبا", "שלום", "नमस्ते", "ไทย",
    "😀🎬🌅🐱‍👤👍🏽🇫🇷", "ﬁﬂﬀﬃĳǆ①②Ⅻ㎏ＡＢＣ１２３！？ｶﾞ［］；", "‘’‚‛“”„‟ʼ«»…—–",
    "\u0001\u001b\u007f\u0080\u0081\u008d\u0093\u0094\u009f\u00ad\u200d\u200e\u202e\u206a\ufff9\ufffc",
    "\x1b[31m\x1b[0;1m\x1b[m\x1b[", "<pad></s><unk><extra_id_0>", "▁▁▁",
    # mojibake: whole words (a pool's words are drawn whole 30% of the time), and the characters
    # UTF-8 mojibake is made of, to be drawn in random runs
    " ".join(_moji(w, "sloppy-windows-1252") for w in ["café", "naïve", "“quoted”", "it’s", "—", "…", "✔", "😀", "schön", "Привет"]),
    " ".join(_moji(w, "latin-1") for w in ["café", "à", "Á", "Íñ", "“q”", "ツ", "μ", "😀", "\u0080"]),
    " ".join([_moji("Привет мир", "sloppy-windows-1251"), _moji("γειά σου", "sloppy-windows-1253"),
              _moji("Łódź żółć", "sloppy-windows-1250"), _moji("İstanbul ğ", "sloppy-windows-1254"),
              _moji("Ūdens ā ē", "sloppy-windows-1257"), _moji("Žluťoučký", "iso-8859-2"),
              _moji("café €", "macroman"), _moji("Привет é", "cp437"), _moji("é “x”", "sloppy-windows-1252", "latin-1"),
              _moji("café", "latin-1", "sloppy-windows-1252"), _moji("naïve", "sloppy-windows-1251", "sloppy-windows-1252")]),
    "ÃÂâ€™œ\x9d¢£¤¥¦§¨©ª«¬\xad®¯°±²³´µ¶·¸¹º»¼½¾¿ÐÑØÙ×ðŸ˜\xa0\x81\x8d\ufffd\x1a",
    "Ã Ã  Â voilÃ Ã quele â€\ufffd Ã\ufffd \ufffd\ufffd â€œ\ufffd " + _cesu("😀 🎬") + " Java\xc0\x80null \xc0 \xed\xa0\x80",
    "РВСЃ вЂ™ вЂ ‚Ä√©≈°β€™ ā€ ГўВЂВ™ ╨╤ ├─ ÃƒÂ©",
]

HAND = [
    "&EACUTE;t&eacute; &SZLIG; &FFLIG; &NTILDE; &LTRI; &AMP; &Eacute", "&amp;amp;amp;amp;", "<b>&amp;amp;amp;</b>",
    "x &amp;amp;\n<i>\n&amp;amp;amp;", "&#59; &#x41; &#65a; &#0; &#128; &#x110000; &#1;", "&ampx; &#x3b; &#X3B;",
    "\x1b[31mred\x1b[0m \x1b[1;4mbold\x1b[m", "\x1b\uff3b31m", "\x93quoted\x94 \x85 \x81", "\ufb01ne \u0133 \u01c6 \ufb05",
    "\uff21\uff22\uff23\uff01 \uff76\uff9e \u3000x", "e\u0301 a\u0308\u0301", "\ufeffbom\u206a\ufffc\x7f\x01", "&am\x01p;",
    "a\r\nb\rc\u2028d", "\u2018single\u2019 \u201cdouble\u201d \u02bc", "A majestic eagle soaring through a cloudy sky",
    "", "   ", "&", "&;", "&#;", "&#x;", "&" + "a" * 30 + ";", "&#" + "9" * 30 + ";", "&#x" + "f" * 24 + ";",
    # mojibake (ftfy's fix_encoding): Latin-1, sloppy Windows-1252 (twice), lossy U+FFFD, embedded
    # in good text (decode_inconsistent_utf8), restore_byte_a0, Windows-1251/1250, MacRoman, cp437,
    # CESU-8 and Java nulls (utf-8-variants, its end-of-text '\n' quirk), C1 controls
    "cafÃ©", "Ã¢â‚¬Å“quotedÃ¢â‚¬\x9d", "â€™", "ÃƒÂ©", "â€œ like this â€\ufffd", "l’Ã©tÃ© 你好",
    "Ã\xa0 la", "Ã  la", "voilÃ le travail", "Ã quele", _moji("Привет мир", "sloppy-windows-1251"),
    _moji("Łódź", "sloppy-windows-1250"), _moji("café", "macroman"), _moji("При", "cp437"), _cesu("x😀 é"),
    "Java\xc0\x80null", "Ã©À\nabc", "Ã¡\x85 \x80\x81", "¯\\_(ã\x83\x84)_/¯", "ðŸ\x98\x80", "Ã\x1a",
]


def reference_ftfy(text):
    return ftfy.fix_text(text)


def reference_clean(text):
    t = html.unescape(html.unescape(reference_ftfy(text))).strip()
    return regex.sub(r"\s+", " ", t).strip()


def random_prompt(rng, sizes):
    s = []
    for _ in range(rng.choice(sizes)):
        p = rng.choice(POOLS)
        s.append(rng.choice(p.split() or [p]) if rng.random() < 0.3 else
                 "".join(rng.choice(p) for _ in range(rng.randint(1, 6))))
        if rng.random() < 0.5:
            s.append(" ")
    return "".join(s).replace("\x00", "")


def sf_tokens(binary, spiece, prompts):
    out = []
    for i in range(0, len(prompts), 200):
        chunk = prompts[i:i + 200]
        args = [binary, "--tokenizer", spiece, "--tokens-only", "--model-dir", "/nonexistent"]
        for p in chunk:
            args += ["--prompt", p]
        r = subprocess.run(args, capture_output=True)
        if r.returncode != 0:
            sys.exit("sf-encode failed: " + r.stderr.decode(errors="replace")[:400])
        lines = r.stdout.decode().splitlines()
        if len(lines) != len(chunk):
            sys.exit(f"sf-encode printed {len(lines)} lines for {len(chunk)} prompts")
        out += [[int(x) for x in line.split()] for line in lines]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default="build/bin/sf-encode")
    ap.add_argument("--spiece", default="tests/golden/model/google/umt5-xxl/spiece.model")
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--mode", choices=["ftfy"], default="ftfy", help="ftfy as the reference calls it (the only mode)")
    ap.add_argument("--write-fixture", metavar="FILE")
    ap.add_argument("--show", action="store_true", help="print the hand-picked cases as the reference cleans them")
    ap.add_argument("--fast", metavar="TOKENIZER_JSON", help="compare with tokenizers on this tokenizer.json (.gz too)")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    if a.show:
        for h in HAND:
            print(ascii(h), "->", ascii(reference_ftfy(h)), "->", ascii(reference_clean(h)))
        return 0
    if a.write_fixture:
        cases = HAND + [random_prompt(rng, [1, 2, 3, 5, 8]) for _ in range(400)]
        rows = [{"in": c, "ftfy": reference_ftfy(c), "clean": reference_clean(c)} for c in cases]
        with open(a.write_fixture, "w") as f:
            json.dump(rows, f, ensure_ascii=True, indent=0)
            f.write("\n")
        print(f"{len(rows)} cases -> {a.write_fixture} (ftfy {ftfy.__version__})")
        return 0
    prompts = [random_prompt(rng, [1, 2, 3, 5, 10, 30, 80, 300]) for _ in range(a.n)]
    if a.fast:
        import gzip
        import tempfile
        import tokenizers
        text = (gzip.open if a.fast.endswith(".gz") else open)(a.fast, "rt", encoding="utf-8").read()
        fast = tokenizers.Tokenizer.from_str(text)
        fast.enable_truncation(max_length=512)
        with tempfile.NamedTemporaryFile("w", suffix=".json", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            got = sf_tokens(a.bin, f.name, prompts)
        encode = lambda t: fast.encode(t).ids  # noqa: E731
        version = f"tokenizers {tokenizers.__version__} on {a.fast}"
    else:
        sp = spm.SentencePieceProcessor(model_file=a.spiece)
        got = sf_tokens(a.bin, a.spiece, prompts)
        encode = lambda t: sp.encode(t)[:511] + [1]  # noqa: E731
        version = f"sentencepiece {spm.__version__}"
    bad = 0
    for p, g in zip(prompts, got):
        want = encode(reference_clean(p))
        if g == want:
            continue
        bad += 1
        if bad <= 10:
            j = next((k for k in range(min(len(g), len(want))) if g[k] != want[k]), min(len(g), len(want)))
            print("MISMATCH", ascii(p)[:240])
            print("  reference clean", ascii(reference_clean(p))[:240])
            print(f"  first difference at token {j}: reference", want[max(0, j - 3):j + 5], "sfpipe", g[max(0, j - 3):j + 5])
    print(f"{a.n - bad}/{a.n} prompts tokenized as the reference (ftfy {ftfy.__version__}, {version})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
