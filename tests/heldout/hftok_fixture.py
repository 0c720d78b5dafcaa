#!/usr/bin/env python3
"""hftok_fixture.py — the fixture that holds sfpipe's tokenizer.json reader to Hugging Face `tokenizers`.

The reference (wan/modules/tokenizers.py) loads google/umt5-xxl with AutoTokenizer, which builds the
*fast* tokenizer from tokenizer.json (SPEC.md §2.1, §2.6). This script makes a tokenizer.json for the
golden tiny spiece.model in the form of umT5's (Precompiled charsmap + a run-of-spaces Replace,
Metaspace with add_prefix_space, TemplateProcessing "$A </s>", 300 <extra_id_N> added tokens above the
pieces, converted by transformers' T5 converter), then tokenizes hand-picked and random texts with
`tokenizers` under that file and under variants of it (each a patch the C test applies the same way:
prepend schemes, split off, the converter's newer Strip/Replace normalizers, added tokens that strip
spaces, match single words only or match normalized text, a Prepend and an NFKC normalizer, byte
fallback with the 256 byte pieces).

  --convert SPIECE   (needs transformers<5, sentencepiece, protobuf) build the base file from SPIECE
  --json FILE        the base tokenizer.json (written when --convert; read otherwise)
  --out FILE         the cases (gzip'd JSON): {"tokenizers": version, "variants": [{name, patch}], "texts": [...],
                     "ids": {variant: [[id...] per text]}, "prompts": [{text, limit, ids, n}] (base file,
                     with the post-processor, truncation and padding of the reference's call)}

Not part of make test (tests/unit/test_hftok.c reads what it writes). tests/heldout/tokenizer_diff.py
--fast runs sf-encode itself against `tokenizers` on thousands of random prompts.
"""
import argparse
import copy
import gzip
import json
import random

CHARS = [
    "abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789", ".,;:!?-_()[]'\"/@#%*+=<>|",
    "   ", "\t\n\r\u00a0\u3000\u200b\ufeff\u2028", "éèêëàâäôöûüçñßøåæœ", "e\u0301a\u0300o\u0308n\u0303\u0327\u20dd",
    "你好世界猫狗山水", "こんにちはカタカナｶﾞ", "안녕하세요\u1100\u1161\u11a8", "Привет", "مرحبا", "नमस्ते\u094d", "ไทย",
    "😀🎬🌅👍🏽🇫🇷\u200d🐱👤", "ﬁﬂﬀﬃĳǆ①②Ⅻ㎏ＡＢＣ１２３！？［］", "‘’“”…—–", "▁▁", "<>/_", "\x01\x1f\x7f\u0085\u00ad",
]
WORDS = ["<pad>", "</s>", "<unk>", "<extra_id_0>", "<extra_id_1>", "<extra_id_299>", "<extra_id_7>", "</s", "<extra_id_>",
         "</s></s>", "<<pad>>", "the", "a", "cat", "walks", "snow", "Ａ\u0301", "e\u0301\u0301", "\u1100\u1161\u11a8",
         "👩\u200d👩\u200d👧", "🇫🇷🇩🇪", "ｶﾞ", "ﬁ\u0301", "x\u20dd", " ", "  ", "   ", "\t", "\n"]
HAND = ["", " ", "  hello  world ", "A red fox walks across the snow.", "hello</s>world", "a </s> b", "a  </s>  b",
        "<pad>", "<pad><pad>", "x <extra_id_0> y", "<extra_id_0>snow<extra_id_299>", "a<unk>b", "</s>", " </s>",
        "</s> ", "a</s", "<extra_id_300>", "<extra_id_12>x", "▁", "▁a", "a▁▁b", "一只红狐狸走过雪地。", "日本語と한국어のテスト",
        "é e\u0301 café", "a\tb\nc\rd\u00a0e", "🫠🫥🤖", "x\ufeffy", "ＡＢＣ ﬁne ①", "Ａ\u0301 e\u0301\u0301", "q\u20dd\u20dd",
        "👩\u200d👩\u200d👧 family", "🇫🇷🇩🇪🇯", "ｶﾞｷﾞ", "\u1100\u1161\u11a8\u1100", "hello " * 40]

SPECIALS = [{"content": c} for c in ("<pad>", "</s>", "<unk>")]
VARIANTS = [
    {"name": "base", "patch": {}},
    {"name": "prepend_first", "patch": {"pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581",
                                                          "prepend_scheme": "first", "split": True}}},
    {"name": "prepend_never", "patch": {"pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581",
                                                          "prepend_scheme": "never", "split": True}}},
    {"name": "no_split", "patch": {"pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581",
                                                     "prepend_scheme": "always", "split": False}}},
    {"name": "strip_replace", "patch": {"normalizer_tail": [
        {"type": "Strip", "strip_left": False, "strip_right": True},
        {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": "\u2581"}]}},
    {"name": "string_replace_prepend", "patch": {"normalizer_tail": [
        {"type": "Replace", "pattern": {"String": "a"}, "content": "ä"},
        {"type": "Strip", "strip_left": True, "strip_right": True},
        {"type": "Prepend", "prepend": "\u2581"}],
        "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "never", "split": True}}},
    {"name": "nfkc_only", "patch": {"normalizer": {"type": "NFKC"}}},
    {"name": "no_normalizer", "patch": {"normalizer": None}},
    {"name": "added_strip", "patch": {"added": [
        {"content": "</s>", "lstrip": True, "rstrip": True},
        {"content": "<extra_id_0>", "single_word": True},
        {"content": "<pad>", "normalized": True},
        {"content": "<extra_id_1>", "lstrip": True}]}},
    {"name": "byte_fallback", "patch": {"byte_fallback": True,
                                        "vocab_append": [[f"<0x{b:02X}>", -20.0] for b in range(256)]}},
]


def patched(base, patch):
    j = copy.deepcopy(base)
    for k, v in patch.items():
        if k == "normalizer_tail":
            pre = [n for n in j["normalizer"]["normalizers"] if n["type"] == "Precompiled"]
            j["normalizer"] = {"type": "Sequence", "normalizers": pre + v}
        elif k == "byte_fallback":
            j["model"]["byte_fallback"] = v
        elif k == "vocab_append":
            j["model"]["vocab"] += v
        elif k == "added":
            for change in v:
                for t in j["added_tokens"]:
                    if t["content"] == change["content"]:
                        t.update(change)
        else:
            j[k] = v
    return j


def umt5_form(j):
    """the layout of umT5's own tokenizer.json (2023): Precompiled + Replace(' {2,}', ' '), legacy Metaspace"""
    pre = [n for n in j["normalizer"]["normalizers"] if n["type"] == "Precompiled"]
    j["normalizer"] = {"type": "Sequence", "normalizers": pre + [
        {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}]}
    j["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581", "add_prefix_space": True}
    j["decoder"] = {"type": "Metaspace", "replacement": "\u2581", "add_prefix_space": True}
    return j


def random_text(rng):
    s = []
    for _ in range(rng.choice([1, 2, 3, 5, 8, 13])):
        if rng.random() < 0.4:
            s.append(rng.choice(WORDS))
        else:
            p = rng.choice(CHARS)
            s.append("".join(rng.choice(p) for _ in range(rng.randint(1, 5))))
        if rng.random() < 0.4:
            s.append(" ")
    return "".join(s).replace("\x00", "")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--convert", metavar="SPIECE")
    ap.add_argument("--json", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    import tokenizers
    if a.convert:
        import tempfile
        from transformers import T5TokenizerFast
        with tempfile.TemporaryDirectory() as d:
            T5TokenizerFast(vocab_file=a.convert, extra_ids=300, from_slow=True, legacy=True).save_pretrained(d)
            base = umt5_form(json.load(open(f"{d}/tokenizer.json", encoding="utf-8")))
        with gzip.open(a.json, "wt", encoding="utf-8") as f:
            json.dump(base, f, ensure_ascii=False, separators=(",", ":"))
    else:
        with gzip.open(a.json, "rt", encoding="utf-8") as f:
            base = json.load(f)
    rng = random.Random(a.seed)
    texts = HAND + [random_text(rng) for _ in range(a.n)]
    out = {"tokenizers": tokenizers.__version__, "variants": VARIANTS, "texts": texts, "ids": {}, "prompts": []}
    for v in VARIANTS:
        tok = tokenizers.Tokenizer.from_str(json.dumps(patched(base, v["patch"])))
        out["ids"][v["name"]] = [tok.encode(t, add_special_tokens=False).ids for t in texts]
    tok = tokenizers.Tokenizer.from_str(json.dumps(base))
    clean = ["hello</s>world", "a </s> b", "<pad>", "x <extra_id_0> y", "A red fox walks across the snow.",
             "一只红狐狸走过雪地。", "<extra_id_0>snow<extra_id_299>", "</s>", ("hello " * 40).strip()]
    ascii_words = [w for w in WORDS if w.strip() and w.isascii()] + ["fox", "x", "<", ">", "/s"]
    clean += [" ".join(rng.choice(ascii_words) for _ in range(rng.randint(1, 12))) for _ in range(20)]
    for t in clean:  # texts the reference's cleaning leaves as they are
        assert t == " ".join(t.split()) and "&" not in t
        for limit in (1, 2, 5, 16, 64):
            tok.enable_truncation(max_length=limit)
            tok.enable_padding(length=limit, pad_id=0, pad_token="<pad>")
            e = tok.encode(t)
            out["prompts"].append({"text": t, "limit": limit, "ids": e.ids, "n": sum(e.attention_mask)})
    with gzip.open(a.out, "wt", encoding="utf-8") as f:  # gzip'd: the device check carries the tree
        json.dump(out, f, ensure_ascii=True, separators=(",", ":"))
        f.write("\n")
    print(f"{len(texts)} texts x {len(VARIANTS)} variants, {len(out['prompts'])} prompts -> {a.out} "
          f"(tokenizers {tokenizers.__version__})")


if __name__ == "__main__":
    main()
