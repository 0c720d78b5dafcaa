#!/usr/bin/env python3
"""tests/hostile/gen.py — writes the hostile-input corpus tests/hostile/<case>/ (committed; rerun
only to change it). Each case folder holds its input files, `cmd` (bash, run in the case folder
with $G = tests/golden, $T = a fresh temp folder, the build's bin/ first on PATH), `expected` (a
substring of the one-line error, or of the warning for a repaired input) and, when the command
must succeed, `rc` (its exit code). tests/hostile/run.sh runs them. Standard library only (no
torch, numpy or msgpack): every file is written byte by byte, so each case shows exactly what
is wrong with it."""
import io
import json
import os
import shutil
import struct
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
GOLD = os.path.join(HERE, "..", "golden")
cases = {}


def case(name, cmd, expected, files=None, rc=None, why=""):
    cases[name] = (cmd, expected, files or {}, rc, why)


# ---------------------------------------------------------------- safetensors
def st(header, data=b"", pad=b" ", raw=False, extra=b""):
    """A safetensors file: header (dict → JSON, or raw bytes) + extra, padded to 8 with `pad`."""
    h = (header if raw else json.dumps(header, separators=(",", ":")).encode()) + extra
    while (len(h) + 8) % 8:
        h += pad
    return struct.pack("<Q", len(h)) + h + data


F4 = struct.pack("<4f", 1, 2, 3, 4)
T4 = {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}
ls = "sf-tensor ls x.safetensors"
case("st_space_padding_ok", ls, "", {"x.safetensors": st({"a": T4}, F4, extra=b" " * 13)}, rc=0,
     why="the spec allows trailing spaces after the JSON header")
case("st_trailing_bytes", ls, "bytes after the safetensors JSON header",
     {"x.safetensors": st(b'{"a":' + json.dumps(T4).encode() + b'}xx', F4, raw=True)})
case("st_newline_padding", ls, "only space padding",
     {"x.safetensors": st(b'{"a":' + json.dumps(T4).encode() + b'}\n\n', F4, raw=True)})
case("st_duplicate_metadata", ls, "duplicate __metadata__",
     {"x.safetensors": st(b'{"__metadata__":{"k":"v"},"a":' + json.dumps(T4).encode() +
                          b',"__metadata__":{"k2":"v2"}}', F4, raw=True)},
     why="the second __metadata__ leaked the first's arrays (LeakSanitizer)")
case("st_duplicate_metadata_key", ls, "__metadata__ key",
     {"x.safetensors": st(b'{"__metadata__":{"k":"v","k":"w"},"a":' + json.dumps(T4).encode() + b'}', F4, raw=True)})
case("st_duplicate_tensor", ls, "duplicate tensor name",
     {"x.safetensors": st(b'{"a":' + json.dumps(T4).encode() + b',"a":' + json.dumps(T4).encode() + b'}', F4,
                          raw=True)})
case("st_duplicate_field", ls, "duplicate field",
     {"x.safetensors": st(b'{"a":{"dtype":"F32","dtype":"I32","shape":[4],"data_offsets":[0,16]}}', F4, raw=True)})
case("st_overlap", ls, "overlaps",
     {"x.safetensors": st({"a": T4, "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}, F4)})
case("st_hole", ls, "leaves a hole",
     {"x.safetensors": st({"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}, F4)})
case("st_tail", ls, "data bytes after the last tensor",
     {"x.safetensors": st({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, F4)})
case("st_size_mismatch", ls, "do not match dtype",
     {"x.safetensors": st({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}}, F4)})
case("st_offset_past_end", ls, "outside the",
     {"x.safetensors": st({"a": {"dtype": "F32", "shape": [8], "data_offsets": [0, 32]}}, F4)})
case("st_non_utf8_name", ls, "not UTF-8",
     {"x.safetensors": st(b'{"a\xff\xfe":' + json.dumps(T4).encode() + b'}', F4, raw=True)})
case("st_overlong_utf8_name", ls, "not UTF-8",
     {"x.safetensors": st(b'{"\xc0\xaf":' + json.dumps(T4).encode() + b'}', F4, raw=True)})
case("st_escape_in_name", ls, "control characters",
     {"x.safetensors": st({"\x1b]0;owned\x07\x1b[2J": T4}, F4)},
     why="a name printed by sf-tensor ls would drive the terminal")
case("st_header_length_huge", ls, "not a safetensors file",
     {"x.safetensors": struct.pack("<Q", 1 << 62) + b"{}"})
case("st_unknown_dtype", ls, "unknown dtype",
     {"x.safetensors": st({"a": {"dtype": "F31", "shape": [4], "data_offsets": [0, 16]}}, F4)})

# ---------------------------------------------------------------- torch zips and pickles
def torch_zip(members, prefix="archive/"):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name, data in members:
            z.writestr(zipfile.ZipInfo(prefix + name, (1980, 1, 1, 0, 0, 0)), data)
    return bytearray(buf.getvalue())


def views_members():
    z = zipfile.ZipFile(os.path.join(GOLD, "torch", "views.pt"))
    return [(i.filename.split("/", 1)[1], z.read(i)) for i in z.infolist()]


def local_header(b, name):
    at = 0
    while b[at:at + 4] == b"PK\x03\x04":
        nl, xl = struct.unpack_from("<HH", b, at + 26)
        if bytes(b[at + 30:at + 30 + nl]) == name:
            return at
        cs = struct.unpack_from("<I", b, at + 18)[0]
        at += 30 + nl + xl + cs
    raise KeyError(name)


pt = "sf-tensor ls x.pt"
case("pt_valid_views", pt, "", {"x.pt": bytes(torch_zip(views_members()))}, rc=0,
     why="the rebuilt archive the zip cases below corrupt is itself valid")
case("pt_frame_2_62", pt, "frame of",
     {"x.pt": bytes(torch_zip([("data.pkl", b"\x80\x04\x95" + struct.pack("<Q", 1 << 62) + b"}."),
                               ("version", b"3\n")]))})
case("pt_frame_past_end", pt, "frame of",
     {"x.pt": bytes(torch_zip([("data.pkl", b"\x80\x04\x95" + struct.pack("<Q", 100) + b"}."),
                               ("version", b"3\n")]))})
case("pt_unicode8_2_62", pt, "beyond the end",
     {"x.pt": bytes(torch_zip([("data.pkl", b"\x80\x04\x8d" + struct.pack("<Q", 1 << 62) + b"x."),
                               ("version", b"3\n")]))})
case("pt_non_utf8_key", pt, "not UTF-8",
     {"x.pt": bytes(torch_zip([("data.pkl", b"\x80\x02}X\x02\x00\x00\x00\xff\xfeK\x01s."), ("version", b"3\n")]))})
case("pt_surrogate_key", pt, "not UTF-8",
     {"x.pt": bytes(torch_zip([("data.pkl", b"\x80\x02}X\x03\x00\x00\x00\xed\xa0\x80K\x01s."),
                               ("version", b"3\n")]))})
case("pt_tree_escapes", "sf-tensor tree x.pt", "", rc=0,
     files={"x.pt": bytes(torch_zip([("data.pkl", b"\x80\x02}X\x01\x00\x00\x00kX\x08\x00\x00\x00\x1b]0;pwn\x07s."),
                                     ("version", b"3\n")]))},
     why="a pickled string with ESC/BEL is printed escaped by sf-tensor tree")
case("pt_global_os_system", "sf-tensor ls $G/torch/hostile_os_system.pt", "not allowed", rc=None,
     why="guard: a pickle naming os.system is refused, never executed")
b = torch_zip(views_members())
o = local_header(b, b"archive/data/0")
struct.pack_into("<II", b, o + 18, 40, 40)  # local sizes 40, the directory says 24
case("pt_local_sizes_disagree", pt, "local header sizes", {"x.pt": bytes(b)})
b = torch_zip(views_members())
o = local_header(b, b"archive/data/1")
b[o + 30 + len("archive/data/")] = ord("7")  # the local header names another member
case("pt_local_name_disagrees", pt, "local header disagrees", {"x.pt": bytes(b)})
b = torch_zip(views_members())
o = local_header(b, b"archive/data/2")
nl, xl = struct.unpack_from("<HH", b, o + 26)
struct.pack_into("<H", b, o + 28, xl + 16)  # data "starts" 16 bytes later: reads the next header
struct.pack_into("<I", b, o + 14, 0)
case("pt_local_extra_shifts_data", pt, "overlaps the next member", {"x.pt": bytes(b)},
     why="the data offset comes from the local header; shifted, the tensor would be the next header's bytes")

# ---------------------------------------------------------------- wire streams
def mp_str(s):
    s = s if isinstance(s, bytes) else s.encode()
    if len(s) < 32:
        return bytes([0xa0 | len(s)]) + s
    if len(s) < 256:
        return b"\xd9" + bytes([len(s)]) + s
    return b"\xda" + struct.pack(">H", len(s)) + s


def mp_map(d):
    out = bytes([0x80 | len(d)])
    for k, v in d:
        out += mp_str(k)
        if isinstance(v, int):
            out += bytes([v]) if v < 128 else b"\xcd" + struct.pack(">H", v)
        elif isinstance(v, list):
            out += bytes([0x90 | len(v)]) + b"".join(bytes([x]) if x < 128 else b"\xcd" + struct.pack(">H", x)
                                                        for x in v)
        elif isinstance(v, tuple):  # a map
            out += mp_map(list(v))
        else:
            out += mp_str(v)
    return out


def frame(header, payload=b""):
    return b"SFT1" + struct.pack("<I", len(header)) + header + struct.pack("<Q", len(payload)) + payload


ESC = "\x1b]0;owned\x07\x1b[2J\x1b[31m"
err_stream = frame(mp_map([("v", 1), ("type", "error"), ("text", "boom " + ESC + " done")]))
case("wire_error_text_escapes", "sf-decode --in e.sft --vae $G/model/Wan2.1_VAE.pth -o $T/o.y4m",
     "upstream error: boom \\x1b]0;owned\\x07", {"e.sft": err_stream},
     why="a peer's error text with ESC/BEL is printed escaped (no terminal escape injection)")
case("wire_cat_escapes", "sf-wire cat e.sft", "boom \\x1b]0;owned", {"e.sft": err_stream},
     why="sf-wire cat prints a hostile error text escaped")
c1_stream = frame(mp_map([("v", 1), ("type", "error"), ("text", "boom \u009b31m \u202egnp.exe \u2066x\u0085")]))
case("wire_cat_escapes_c1_bidi", "sf-wire cat e.sft", "boom \\xc2\\x9b31m \\xe2\\x80\\xaegnp.exe \\xe2\\x81\\xa6x\\xc2\\x85",
     {"e.sft": c1_stream},
     why="C1 controls (U+009B is an 8-bit CSI) and bidi overrides / isolates in a peer's text are escaped too")
big = "x" * 20000
case("wire_meta_strings_overflow", "sf-decode --in m.sft --vae $G/model/Wan2.1_VAE.pth -o $T/o.y4m",
     "meta strings exceed",
     {"m.sft": frame(mp_map([("v", 1), ("type", "tensor"), ("name", "latents"), ("dtype", "f32"), ("shape", [1]),
                             ("meta", (("a", big), ("b", big)))]), b"\0" * 4)},
     why="the cause survives (wire.c formatted the message into itself)")
lat_i64 = frame(mp_map([("v", 1), ("type", "tensor"), ("name", "latents"), ("dtype", "i64"),
                        ("shape", [1, 16, 2, 2])]), b"\1" + b"\0" * (8 * 64 - 1)) + frame(mp_map([("v", 1), ("type", "end")]))
case("wire_latents_i64", "sf-decode --in l.sft --vae $G/model/Wan2.1_VAE.pth -o $T/o.y4m", "dtype i64",
     {"l.sft": lat_i64})
emb_i64 = frame(mp_map([("v", 1), ("type", "tensor"), ("name", "prompt_embeds"), ("dtype", "i64"),
                        ("shape", [4, 64])]), b"\0" * (8 * 256)) + frame(mp_map([("v", 1), ("type", "end")]))
DEN = "sf-denoise --model-dir $G/model --num_frames 9 --height 64 --width 96 --progress none --threads 2"
case("wire_prompt_embeds_i64", DEN + " --in e.sft --save-latents $T/l.safetensors", "dtype i64", {"e.sft": emb_i64},
     why="i64 prompt embeddings were silently converted to floats")
case("file_prompt_embeds_i64", DEN + " --prompt-embeds e.safetensors --save-latents $T/l.safetensors", "dtype i64",
     {"e.safetensors": st({"prompt_embeds": {"dtype": "I64", "shape": [4, 64], "data_offsets": [0, 2048]}},
                          b"\0" * 2048)})
case("file_prompt_embeds_rank1", DEN + " --prompt-embeds e.safetensors --save-latents $T/l.safetensors",
     "prompt embeddings", {"e.safetensors": st({"prompt_embeds": {"dtype": "F32", "shape": [64],
                                                                    "data_offsets": [0, 256]}}, b"\0" * 256)})
case("noise_i64", DEN + " --prompt-embeds $G/expect/dit_pipeline_base.safetensors:context.prompt_embeds"
     " --noise n.safetensors --save-latents $T/l.safetensors", "dtype i64",
     {"n.safetensors": st({"noise.init": {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]}}, b"\0" * 8)})

# ---------------------------------------------------------------- prompts
ENC = "sf-encode --model-dir $G/model --no-cache --progress none"
case("prompt_40k", ENC + ' --prompt "$(head -c 40000 /dev/zero | tr "\\0" a)" --save-embeds $T/e.safetensors',
     "40000 bytes of prompt text", why="refused before the encoder loads, not after the encoding")
case("prompt_40k_file", ENC + " --prompts p.txt --save-embeds $T/e.safetensors", "prompt 1: 40000 bytes",
     {"p.txt": b"a short one\n" + b"b" * 40000 + b"\n"})

# ---------------------------------------------------------------- non-blocking opens
case("tokenizer_dev_zero", ENC + " --tokenizer /dev/zero --prompt x --tokens-only", "/dev/zero: not a regular file",
     why="refused at once, never 2 GiB read")
case("tokenizer_fifo_no_writer", "mkfifo $T/f && " + ENC + " --tokenizer $T/f --prompt x --tokens-only", "spiece",
     why="a FIFO without a writer reads as empty instead of blocking in open()")
case("weights_fifo", "mkfifo $T/w.pth && " + ENC + " --weights $T/w.pth --prompt x --save-embeds $T/e.st",
     "w.pth: not a regular file")
case("latents_fifo", "mkfifo $T/l && sf-decode --latents $T/l --vae $G/model/Wan2.1_VAE.pth -o $T/o.y4m",
     "not a regular file")
case("vae_fifo", "mkfifo $T/v && sf-decode --latents $G/expect/vae.safetensors:z --vae $T/v -o $T/o.y4m",
     "not a regular file")
case("embeds_fifo", "mkfifo $T/e && " + DEN + " --prompt-embeds $T/e --save-latents $T/l.st", "not a regular file")
case("config_fifo", "mkdir $T/m && mkfifo $T/m/config.json && sf-denoise --model-dir $T/m --prompt-embeds "
     "$G/expect/dit_pipeline_base.safetensors:context.prompt_embeds --save-latents $T/l.st", "config.json")
case("prompts_fifo_no_writer", "mkfifo $T/p && " + ENC + " --prompts $T/p --tokens-only", "no prompts")
case("tensor_dir", "sf-tensor ls $T", "is a directory")
case("tensor_dev_zero", "sf-tensor ls /dev/zero", "not a regular file")
case("wire_in_device", "sf-decode --in /dev/zero --vae $G/model/Wan2.1_VAE.pth -o $T/o.y4m", "not a regular file")

# ---------------------------------------------------------------- embedding cache
FILL = ENC.replace("--no-cache ", "") + " --cache-dir $T/c --prompt 'a cat' --cache-only"
case("cache_entry_folder", f"""{FILL} 2>/dev/null && k=$(ls $T/c/*.safetensors) && rm "$k" && mkdir -p "$k/sub" && touch "$k/sub/x" &&
{FILL} && [ -f "$k" ] && SF_LOG_LEVEL=info {FILL} 2>$T/e3 && grep -q 'cache hit' $T/e3""",
     "was a folder; removed it", rc=0, why="repaired once (removed, recomputed, written), then a hit")
case("cache_entry_fifo", f"""{FILL} 2>/dev/null && k=$(ls $T/c/*.safetensors) && rm "$k" && mkfifo "$k" &&
sf-encode --cache-dir $T/c --list | grep -q 'INVALID: not a regular file' && {FILL} && [ -f "$k" ]""",
     "was a FIFO; removed it", rc=0, why="--list and sf-encode never open it (they hung)")

# ---------------------------------------------------------------- tap files
def taps(meta, names):
    hdr, off, data = {"__metadata__": meta}, 0, b""
    for n in names:
        hdr[n] = {"dtype": "F32", "shape": [2, 4, 8], "data_offsets": [off, off + 256]}
        off += 256
        data += b"\0" * 256
    return st(hdr, data)


for nm, v in [("zero", "0"), ("negative", "-5"), ("text", "abc"), ("huge", "99999999999999999999")]:
    case("taps_fsl_" + nm, "sf-taps summary t.safetensors", "metadata frame_seq_length = ",
         {"t.safetensors": taps({"frame_seq_length": v, "num_frame_per_block": "2"}, ["fig4.L0.attn_logits"])},
         why="refused, not replaced by a fallback")
case("taps_layer_overflow", "sf-taps summary t.safetensors", "integers in [0, 2147483647]",
     {"t.safetensors": taps({"frame_seq_length": "4"}, ["fig4.L99999999999999999999.attn_logits"])},
     why="was read as -1")
case("taps_block_wraps", "sf-taps summary t.safetensors", "integers in [0, 2147483647]",
     {"t.safetensors": taps({"frame_seq_length": "4"}, ["taps.L0.b4294967296.s0"])}, why="wrapped to block 0")
case("taps_negative_layer", "sf-taps summary t.safetensors", "integers in [0, 2147483647]",
     {"t.safetensors": taps({"frame_seq_length": "4"}, ["frames.L-1.b0.s0"])})
case("tap_select_wraps", DEN + " --prompt-embeds $G/expect/dit_pipeline_base.safetensors:context.prompt_embeds"
     " --layer_indices 0 --output_path $T/t.safetensors --tap-select b:4294967296,s:0", "--tap-select")

# ---------------------------------------------------------------- umT5 weights
def t5(buckets, heads=2, D=8, F=16, V=16):
    t, off, data = {}, 0, b""

    def add(n, shape):
        nonlocal off, data
        k = 1
        for s in shape:
            k *= s
        t[n] = {"dtype": "BF16", "shape": shape, "data_offsets": [off, off + 2 * k]}
        off += 2 * k
        data += b"\x80\x3f" * k  # bf16 1.0
    add("token_embedding.weight", [V, D])
    for n, s in [("norm1", [D]), ("norm2", [D]), ("attn.q", [D, D]), ("attn.k", [D, D]), ("attn.v", [D, D]),
                 ("attn.o", [D, D]), ("ffn.gate.0", [F, D]), ("ffn.fc1", [F, D]), ("ffn.fc2", [D, F]),
                 ("pos_embedding.embedding", [buckets, heads])]:
        add(f"blocks.0.{n}.weight", s)
    add("norm.weight", [D])
    return st(t, data)


for nb in (2, 3, 1000):
    case(f"t5_pos_table_{nb}", ENC + " --weights t5.safetensors --prompt 'a cat' --save-embeds $T/e.safetensors",
         "relative-position table", {"t5.safetensors": t5(nb)},
         why="2 buckets made t5.c convert NaN to an integer (UBSan float-cast-overflow)")

# ---------------------------------------------------------------- tokenizer.json (the reference's tokenizer file)
def tokjson(**parts):
    """A small Unigram tokenizer.json (<unk>, ▁, a, b) with the given top-level parts replaced."""
    j = {"model": {"type": "Unigram", "unk_id": 0, "vocab": [["<unk>", 0.0], ["\u2581", -1.0], ["a", -2.0], ["b", -2.0]]},
         "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "add_prefix_space": True}}
    j.update(parts)
    return json.dumps(j).encode()


TOK = ENC + " --tokenizer tokenizer.json --tokens-only"
case("tokenizer_json_deep", TOK + " --prompt x", "tokenizer.json: not a JSON object",
     {"tokenizer.json": b'{"normalizer":' + b"[" * 5000 + b"]" * 5000 + b"}"},
     why="5000 nested arrays: refused by the JSON reader's depth limit (1000), no deep recursion")
case("tokenizer_json_70mb", "{ printf '{'; head -c 70000000 /dev/zero | tr '\\0' ' '; } >$T/t.json && " + ENC +
     " --tokenizer $T/t.json --tokens-only --prompt x", "more than the 64 MiB a tokenizer file may have",
     why="refused by its size before cJSON builds a tree of it (~25 bytes of memory per byte of a dense vocab)")
case("tokenizer_json_control_chars", TOK + " --prompt x", "normalizer '",
     {"tokenizer.json": tokjson(normalizer={"type": "X\u001b[2J\u009b31m\u202eY"})},
     why="the unsupported type is named, its control characters escaped (a file cannot write to the terminal)")
case("tokenizer_json_regex_backtracking", TOK + ' --prompt "$(head -c 5000 /dev/zero | tr "\\0" a)b"',
     "Replace regex failed",
     {"tokenizer.json": tokjson(normalizer={"type": "Replace", "pattern": {"Regex": "(a+)+$"}, "content": "c"})},
     why="a catastrophic regex stops at PCRE2's match limit, one error line, instead of running for hours")

# ---------------------------------------------------------------- write
if __name__ == "__main__":
    for d in os.listdir(HERE):
        if os.path.isdir(os.path.join(HERE, d)):
            shutil.rmtree(os.path.join(HERE, d))
    for name, (cmd, expected, files, rc, why) in sorted(cases.items()):
        d = os.path.join(HERE, name)
        os.makedirs(d)
        with open(os.path.join(d, "cmd"), "w") as f:
            f.write(cmd + "\n")
        with open(os.path.join(d, "expected"), "w") as f:
            f.write(expected + "\n")
        if rc is not None:
            with open(os.path.join(d, "rc"), "w") as f:
                f.write(f"{rc}\n")
        if why:
            with open(os.path.join(d, "why"), "w") as f:
                f.write(why + "\n")
        for fn, data in files.items():
            with open(os.path.join(d, fn), "wb") as f:
                f.write(data)
    print(f"{len(cases)} cases")
