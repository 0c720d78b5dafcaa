#!/usr/bin/env bats
# sf-encode: golden token ids and embeddings for all 28 golden prompts, the embedding cache
# (second run hits without loading the encoder, corrupt/truncated entries repaired, --list,
# --no-cache), wire output, prompt sources, the folder's tokenizer.json read first (as the reference), and bad
# input → one-line error, exit 1/2.
bats_require_minimum_version 1.5.0
load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'

setup() {
    G="${SF_GOLDEN:-$BATS_TEST_DIRNAME/../golden}"
    T="$BATS_TEST_TMPDIR"
    M="$G/model"
    export SF_LOG_LEVEL=info
    # the 28 golden prompts as --prompt arguments (texts contain tabs/newlines: NUL-separated)
    python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
sys.stdout.write("".join(p["text"] + "\0" for p in d["prompts"]))
' "$G/expect/tokens.json" >"$T/prompts.nul"
    mapfile -d '' P <"$T/prompts.nul"
    PARGS=()
    for p in "${P[@]}"; do PARGS+=(--prompt "$p"); done
}

assert_one_error_line() {
    assert_equal "$(printf '%s\n' "$stderr" | wc -l)" 1
    assert_regex "$stderr" '^sf-encode: error: '
}

@test "tokens-only: ids of all 28 golden prompts byte-exact" {
    run --separate-stderr sf-encode --model-dir "$M" --no-cache --tokens-only "${PARGS[@]}"
    assert_success
    python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
want = [" ".join(str(i) for i in p["ids"][:p["num_tokens"]]) for p in d["prompts"]]
print("\n".join(want))
' "$G/expect/tokens.json" >"$T/want.txt"
    printf '%s\n' "$output" >"$T/got.txt"
    run diff "$T/want.txt" "$T/got.txt"
    assert_success
}

@test "save-embeds: all 28 prompts match t5.safetensors (emb, ids, mask)" {
    run --separate-stderr sf-encode --model-dir "$M" --no-cache "${PARGS[@]}" --save-embeds "$T/e.safetensors"
    assert_success
    # |d| <= 1e-4 absolute is stricter than the manifest's 1e-4 * max|ref| (max|ref| ~ 4);
    # ids/mask must be exact (atol 1e-4 on integers)
    run --separate-stderr sf-tensor diff "$T/e.safetensors" "$G/expect/t5.safetensors" --atol 1e-4 --rtol 0
    assert_regex "$output" '# 84 compared, 0 mismatched, 0 only in A'
}

@test "cache: second run hits without loading the encoder, identical output" {
    run --separate-stderr sf-encode --model-dir "$M" --cache-dir "$T/c" --prompt "a red fox" --prompt "a dog" \
        --save-embeds "$T/a.safetensors"
    assert_success
    assert_regex "$stderr" 'loading umT5 encoder'
    run --separate-stderr sf-encode --model-dir "$M" --cache-dir "$T/c" --prompt "a red fox" --prompt "a dog" \
        --save-embeds "$T/b.safetensors"
    assert_success
    refute_regex "$stderr" 'loading umT5'
    assert_equal "$(grep -c 'cache hit .* (encoder not loaded)' <<<"$stderr")" 2
    cmp "$T/a.safetensors" "$T/b.safetensors"
    # the cleaned prompt is the key: extra whitespace hits the same entry
    run --separate-stderr sf-encode --model-dir "$M" --cache-dir "$T/c" --prompt "  a   red fox " --save-embeds "$T/c1.safetensors"
    assert_regex "$stderr" 'encoder not loaded'
    run --separate-stderr sf-encode --cache-dir "$T/c" --list
    assert_success
    assert_regex "$output" '# 2 entries'
    assert_regex "$output" '	3 tokens	\[512, 64\]	[0-9]+ bytes	a dog'
    # another text length is another key
    run --separate-stderr sf-encode --model-dir "$M" --cache-dir "$T/c" --prompt "a dog" --text-len 16 --save-embeds "$T/d.safetensors"
    assert_regex "$stderr" 'loading umT5'
}

@test "cache: truncated and corrupted entries are a miss that repairs itself" {
    sf-encode --model-dir "$M" --cache-dir "$T/c" --prompt "a red fox" --save-embeds "$T/a.safetensors" 2>/dev/null
    f=$(ls "$T"/c/*.safetensors)
    size=$(stat -c %s "$f")
    truncate -s $((size / 2)) "$f"
    run --separate-stderr sf-encode --model-dir "$M" --cache-dir "$T/c" --prompt "a red fox" --save-embeds "$T/b.safetensors"
    assert_success
    assert_regex "$stderr" 'is invalid'
    assert_regex "$stderr" 'loading umT5'
    cmp "$T/a.safetensors" "$T/b.safetensors"
    [ "$(stat -c %s "$f")" -eq "$size" ]
    # flip one byte of the embedding payload: the checksum catches it
    printf '\x55' | dd of="$f" bs=1 seek=$((size - 5000)) conv=notrunc 2>/dev/null
    run --separate-stderr sf-encode --model-dir "$M" --cache-dir "$T/c" --prompt "a red fox" --save-embeds "$T/c.safetensors"
    assert_success
    assert_regex "$stderr" 'checksum mismatch'
    cmp "$T/a.safetensors" "$T/c.safetensors"
    run --separate-stderr sf-encode --model-dir "$M" --cache-dir "$T/c" --prompt "a red fox" --save-embeds "$T/d.safetensors"
    assert_regex "$stderr" 'encoder not loaded'
    # garbage file with a key name is listed as invalid
    echo junk >"$T/c/$(printf '0%.0s' {1..64}).safetensors"
    run --separate-stderr sf-encode --cache-dir "$T/c" --list
    assert_success
    assert_regex "$output" 'INVALID'
}

@test "cache: concurrent writers of the same prompt leave one valid entry" {
    for i in 1 2 3 4; do
        sf-encode --model-dir "$M" --cache-dir "$T/c" --prompt "a cat" --save-embeds "$T/p$i.safetensors" 2>/dev/null 3>&- &
    done
    wait
    for i in 2 3 4; do cmp "$T/p1.safetensors" "$T/p$i.safetensors"; done
    [ "$(ls "$T/c" | wc -l)" -eq 1 ]
    run --separate-stderr sf-encode --model-dir "$M" --cache-dir "$T/c" --prompt "a cat" --save-embeds "$T/q.safetensors"
    assert_regex "$stderr" 'encoder not loaded'
}

@test "no-cache: nothing written; --prompts FILE and stdin; wire output" {
    printf 'a red fox\r\na dog\n' >"$T/p.txt"
    run --separate-stderr env XDG_CACHE_HOME="$T/xdg" sf-encode --model-dir "$M" --no-cache --prompts "$T/p.txt" --save-embeds "$T/f.safetensors"
    assert_success
    [ ! -e "$T/xdg" ]
    printf 'a red fox\na dog\n' | sf-encode --model-dir "$M" --no-cache --save-embeds "$T/s.safetensors" 2>/dev/null
    cmp "$T/f.safetensors" "$T/s.safetensors"
    # default cache folder from XDG_CACHE_HOME
    XDG_CACHE_HOME="$T/xdg" sf-encode --model-dir "$M" --prompt "a dog" --save-embeds "$T/x.safetensors" 2>/dev/null
    [ "$(ls "$T/xdg/sfpipe/embeds" | wc -l)" -eq 1 ]
    # wire stream: two prompt_embeds messages then end
    SF_MODEL_DIR="$M" sf-encode --no-cache --prompts "$T/p.txt" --out "$T/w.sft" 2>/dev/null
    [ "$(head -c 4 "$T/w.sft")" = SFT1 ]
    [ "$(grep -c -a -o prompt_embeds "$T/w.sft")" -eq 2 ]
    grep -q -a 'a red fox' "$T/w.sft"
}

@test "bad input: invalid UTF-8, NUL bytes, missing/corrupt spiece.model, bad flags" {
    run --separate-stderr sf-encode --model-dir "$M" --no-cache --tokens-only --prompt "$(printf 'caf\xe9')"
    assert_failure 1
    assert_one_error_line
    assert_regex "$stderr" 'not valid UTF-8'
    printf 'ok\nab\0cd\n' >"$T/nul.txt"
    run --separate-stderr sf-encode --model-dir "$M" --no-cache --tokens-only --prompts "$T/nul.txt"
    assert_failure 1
    assert_one_error_line
    assert_regex "$stderr" 'prompt 1: prompt contains a NUL byte'
    run --separate-stderr sf-encode --model-dir "$T/nowhere" --no-cache --tokens-only --prompt x
    assert_failure 1
    assert_one_error_line
    assert_regex "$stderr" 'spiece.model'
    head -c 1000 "$M/google/umt5-xxl/spiece.model" >"$T/trunc.model"
    run --separate-stderr sf-encode --tokenizer "$T/trunc.model" --model-dir "$M" --no-cache --tokens-only --prompt x
    assert_failure 1
    assert_one_error_line
    assert_regex "$stderr" 'trunc.model'
    head -c 5000 /dev/urandom >"$T/rand.model"
    run --separate-stderr sf-encode --tokenizer "$T/rand.model" --model-dir "$M" --no-cache --tokens-only --prompt x
    assert_failure 1
    assert_one_error_line
    run --separate-stderr sf-encode --log-level warn --model-dir "$M" --weights "$T/nowhere.pth" --no-cache --prompt x --save-embeds "$T/o.safetensors"
    assert_failure 1
    assert_one_error_line
    [ ! -e "$T/o.safetensors" ]
    run --separate-stderr sf-encode --model-dir "$M" --text-len 0 --prompt x
    assert_failure 2
    run --separate-stderr sf-encode --model-dir "$M" --bogus
    assert_failure 2
}

@test "tokenizer.json: read by default when the model folder has one, as the reference's AutoTokenizer; literal special tokens are one id" {
    mkdir -p "$T/m/google/umt5-xxl"
    for f in "$M"/*; do [ "${f##*/}" = google ] || ln -s "$f" "$T/m/"; done
    ln -s "$M/google/umt5-xxl/spiece.model" "$T/m/google/umt5-xxl/"
    gzip -dc "$SF_ROOT/tests/unit/fixtures/umt5_tiny_tokenizer.json.gz" >"$T/m/google/umt5-xxl/tokenizer.json"
    # an ordinary prompt: the same ids from either file (the same model)
    run --separate-stderr sf-encode --model-dir "$T/m" --no-cache --tokens-only --prompt "A red fox walks across the snow."
    assert_success
    local fast="$output"
    run --separate-stderr sf-encode --model-dir "$M" --no-cache --tokens-only --prompt "A red fox walks across the snow."
    assert_equal "$output" "$fast"
    # </s> and <extra_id_0> in the text: one id each from tokenizer.json (ids 1 and 1299, as tokenizers
    # gives), pieces of text from spiece.model, which --tokenizer still selects
    run --separate-stderr sf-encode --model-dir "$T/m" --no-cache --tokens-only --prompt "hello</s>world <extra_id_0>"
    assert_success
    assert_output "75 191 23 1 337 5 1299 1"
    run --separate-stderr sf-encode --model-dir "$T/m" --tokenizer "$M/google/umt5-xxl/spiece.model" --no-cache --tokens-only \
        --prompt "hello</s>world <extra_id_0>"
    assert_success
    [ "$(wc -w <<<"$output")" -gt 12 ]
    refute_output --regexp ' 1299 '
    # embeddings: the encoder sees the fast tokenizer's ids; the cache keys on the tokenizer file, so an
    # entry made with spiece.model is not reused
    run --separate-stderr sf-encode --model-dir "$M" --cache-dir "$T/c" --prompt "a </s> b" --save-embeds "$T/spm.safetensors"
    assert_success
    run --separate-stderr sf-encode --model-dir "$T/m" --cache-dir "$T/c" --prompt "a </s> b" --save-embeds "$T/fast.safetensors"
    assert_success
    assert_regex "$stderr" 'loading umT5'
    run sf-tensor diff "$T/spm.safetensors" "$T/fast.safetensors" --atol 0 --rtol 0
    assert_regex "$output" '[1-9][0-9]* mismatched'
    run sf-tensor cat "$T/fast.safetensors" ids.0 --limit 5
    assert_success
    assert_equal "$(sed -n '2,6p' <<<"$output" | tr '\n' ' ')" "3 5 1 37 1 " # ▁a ▁ </s> ▁b </s>
    # a tokenizer.json sfpipe does not reproduce exactly is refused, in one line, naming the part
    sed -i 's/"type":"Metaspace"/"type":"ByteLevel"/' "$T/m/google/umt5-xxl/tokenizer.json"
    run --separate-stderr sf-encode --model-dir "$T/m" --no-cache --tokens-only --prompt x
    assert_failure 1
    assert_one_error_line
    assert_regex "$stderr" "tokenizer.json: pre_tokenizer 'ByteLevel' is not supported \(Metaspace only\) \(--tokenizer with the folder's spiece.model uses SentencePiece instead\)$"
    printf '{"model": ' >"$T/m/google/umt5-xxl/tokenizer.json"
    run --separate-stderr sf-encode --model-dir "$T/m" --no-cache --tokens-only --prompt x
    assert_failure 1
    assert_one_error_line
    assert_regex "$stderr" 'not a JSON object'
}

# A safetensors file holding one u8 tensor "prompt" with the UTF-8 text (no python needed).
mk_prompt_file() { # $1 text, $2 out
    local n json hl
    n=$(printf '%s' "$1" | wc -c)
    json="{\"prompt\":{\"dtype\":\"U8\",\"shape\":[$n],\"data_offsets\":[0,$n]}}"
    hl=${#json}
    printf "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x\\x00\\x00\\x00\\x00' $((hl & 255)) $((hl >> 8 & 255)) $((hl >> 16 & 255)) $((hl >> 24 & 255)))" >"$2"
    printf '%s%s' "$json" "$1" >>"$2"
}

@test "--in: prompts from a wire stream equal --prompt; --progress is validated" {
    T="$BATS_TEST_TMPDIR"
    mk_prompt_file "A red fox & a hare" "$T/p.safetensors"
    sf-wire send - --from "$T/p.safetensors" | sf-encode --model-dir "$SF_GOLDEN/model" --in - --no-cache \
        --save-embeds "$T/a.safetensors" --progress none
    sf-encode --model-dir "$SF_GOLDEN/model" --prompt "A red fox & a hare" --no-cache --save-embeds "$T/b.safetensors"
    run -0 sf-tensor diff "$T/a.safetensors" "$T/b.safetensors"
    run -2 sf-encode --model-dir "$SF_GOLDEN/model" --prompt x --progress loud --save-embeds "$T/c.safetensors"
    assert_output --partial "--progress"
    [ ! -e "$T/c.safetensors" ]
}

@test "--progress lines: a plain line per prompt, no carriage return, no log line glued to one; bar: ended before the log goes on" {
    run --separate-stderr sf-encode --model-dir "$M" --no-cache --prompt a --prompt b --save-embeds "$T/l.safetensors" \
        --progress lines
    assert_success
    [[ "$stderr" != *$'\r'* ]] || false
    assert_equal "$(printf '%s\n' "$stderr" | grep -c '^sf-encode: prompt [12]/2  [0-9.]*s  [0-9.]* prompts/s$')" 2
    # bar: '\r' updates, the last ended by a newline before the log goes on
    run --separate-stderr sf-encode --model-dir "$M" --no-cache --prompt a --prompt b --progress bar \
        --save-embeds "$T/b.safetensors"
    assert_success
    [[ "$stderr" == *$'\r'* ]] || false
    [[ "$stderr" == *$'prompts/s\nsf-encode: info: 2 prompt(s) done'* ]] || false
}

@test "an output folder that does not exist is refused before the encoder loads, in one line" {
    for flag in --save-embeds --out; do
        run --separate-stderr sf-encode --model-dir "$M" --no-cache --prompt a $flag "$T/nodir/x.safetensors"
        assert_failure
        assert_one_error_line
        assert_regex "$stderr" "$flag .*nodir.* does not exist"
        [[ "$stderr" != *"loading umT5"* ]] || false
    done
}

@test "--device cuda / --gpu_id / --serve / --bench xxl without a usable GPU: one line naming what is missing, exit 1, no output" {
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then skip "this machine has a GPU"; fi
    O="$BATS_TEST_TMPDIR/e.safetensors"
    for dev in "--device cuda" "--device cuda:1" "--gpu_id 0" "--device cuda --low-memory"; do
        run --separate-stderr sf-encode --model-dir "$M" --cache-dir "$T/c" --prompt "a red fox" $dev --save-embeds "$O"
        assert_failure 1
        assert_one_error_line
        [[ "$stderr" == *"no usable CUDA GPU"*"--device cpu"* || "$stderr" == *"no CUDA support"* ]]
        [ ! -e "$O" ]
        [ ! -e "$T/c" ] # nothing cached either
    done
    # the resident server: refused before it binds (no socket file)
    run --separate-stderr sf-encode --model-dir "$M" --serve "ipc://$T/enc.sock" --device cuda
    assert_failure 1
    assert_one_error_line
    [ ! -e "$T/enc.sock" ]
    run --separate-stderr sf-encode --bench xxl --device cuda
    assert_failure 1
    assert_one_error_line
    run --separate-stderr sf-encode --bench xxl
    assert_failure 2
    assert_regex "$stderr" 'needs? --device cuda|add --device cuda'
    # --low-memory on the CPU only warns; the result is the CPU's
    run --separate-stderr sf-encode --model-dir "$M" --no-cache --prompt "a red fox" --low-memory --save-embeds "$O"
    assert_success
    assert_regex "$stderr" 'low-memory applies to --device cuda'
}
