#!/usr/bin/env bats
# Whole pipelines with --device cuda on the CPU emulation of the CUDA backend: the stage programs of
# build/emu-bin/ (Makefile EMU_BIN: the same mains linked with the emulated kernels and the cuBLASLt,
# cuDNN conv and cuDNN attention stand-ins) run the stages' GPU
# code — device selection, uploads, pinned slots, the sampling loop that runs ahead, the decoder's
# pipelined frames — under the emulation's perturbations (streams deferred until the host waits,
# threads and blocks reversed: kernels/cuda/emu/cuda_emu.h), and their video is held to the CPU run's.
bats_require_minimum_version 1.5.0
load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
load tiny_model

setup_file() {
    tiny_model_make
}

setup() {
    E="$SF_ROOT/${SF_BUILD:-build}/emu-bin"
    [ -x "$E/sf-denoise" ] || skip "no emulated stage programs (a GPU bundle build)"
    T="$BATS_TEST_TMPDIR"
}

# mean and max |Δ| of the bytes of two equally long files (y4m: the same headers, 8-bit frames); cmp -l
# lists the differing bytes' values in octal
bytes_delta() {
    local n
    n=$(stat -c %s "$1")
    [ "$n" = "$(stat -c %s "$2")" ] || { echo "lengths $n $(stat -c %s "$2")"; return 1; }
    cmp -l "$1" "$2" | awk -v n="$n" '
        function oct(s,  v, i) { v = 0; for (i = 1; i <= length(s); i++) v = v * 8 + substr(s, i, 1); return v }
        { d = oct($2) - oct($3); if (d < 0) d = -d; s += d; if (d > m) m = d }
        END { printf "mean %.3f max %d\n", s / n, m }'
}

@test "t2v.yaml with device=cuda:0 on the emulated GPU, streams deferred and threads reversed: the CPU run's video within bf16" {
    cd "$SF_ROOT"
    args=(model_dir="$M" checkpoint="$M/ckpt.pt" num_frames=9 height=64 width=96 prompt="A red fox trotting through fresh snow")
    run -0 sf-run pipelines/t2v.yaml "${args[@]}" output="$T/cpu.y4m" cache_dir="$T/c1"
    # sf-run starts the sf-* programs next to itself: the emulated ones
    SF_EMU_ASYNC=1 SF_EMU_ORDER=reverse run -0 "$E/sf-run" pipelines/t2v.yaml "${args[@]}" device=cuda:0 \
        output="$T/gpu.y4m" cache_dir="$T/c2"
    # each stage ran on the (emulated) device
    assert_output --partial "[encode] sf-encode: info: umT5 on cuda:0 (sf_emu (CPU emulation)"
    assert_output --partial "[denoise] sf-denoise: info: KV cache: 9 frames x 24 tokens x 3 layers, 0.00 GiB (bf16, on the GPU)"
    refute_output --partial "attention uses" # no fallback: the attention is the default path's, cuDNN (emulated)
    assert_output --partial "96x64 frames, on cuda:0"
    run -0 bytes_delta "$T/cpu.y4m" "$T/gpu.y4m"
    echo "$output"
    read -r _ mean _ max <<<"$output"
    # bf16 activations against the CPU's fp32: the H200 measured mean 0.55, max 6 levels on this pipeline
    # (RESULTS.md run 10), the emulation gives the same; a wrong kernel or a raced buffer moves far more
    awk -v m="$mean" -v x="$max" 'BEGIN { exit !(m <= 1.5 && x <= 16) }'
}

@test "live.yaml with device=cuda:0 on the emulated GPU, streams deferred: plays, switches prompt, stops on SIGINT" {
    # tests/gpu/live.sh starts `sf-run` from PATH: the emulated one, whose stages are the emulated programs
    PATH="$E:$PATH" SF_EMU_ASYNC=1 SF_LIVE_PLAY=1 SF_LIVE_WAIT=120 run -0 bash "$SF_ROOT/tests/gpu/live.sh" "$M" cuda:0 \
        height=16 width=16
    assert_output --regexp '^live: fps [0-9.]+ before / [0-9.]+ after the switch .*prompt switch [0-9]+ ms .* stop ok$'
}

@test "all-layer probs and frames taps of every forward with --device cuda:0 on the emulated GPU: the CPU run's within bf16" {
    G="${SF_GOLDEN:-$SF_ROOT/tests/golden}"
    P="$G/expect/dit_pipeline_base.safetensors"
    common=(--model-dir "$G/model" --num_frames 9 --height 64 --width 96 --progress none
            --prompt-embeds "$P:context.prompt_embeds" --noise "$P" --layer_indices all --tap-select all)
    for m in probs frames; do
        run -0 sf-denoise "${common[@]}" --tap-mode "$m" --output_path "$T/cpu_$m.safetensors"
        # frames mode on a machine without cuDNN (the emulated absence): the untapped attention takes
        # sfpipe's fused kernel, with one warning; probs mode with it (the masses come from the fused kernel)
        no_cudnn=$([ "$m" = frames ] && echo 1 || true)
        SF_EMU_NO_CUDNN=$no_cudnn SF_EMU_ASYNC=1 SF_EMU_ORDER=reverse run -0 "$E/sf-denoise" "${common[@]}" --device cuda:0 \
            --tap-mode "$m" --output_path "$T/gpu_$m.safetensors"
        if [ "$m" = frames ]; then
            assert_output --partial "sf-denoise: cuDNN not found (SF_EMU_NO_CUDNN: emulated absence); attention uses sfpipe's fused kernel"
        else
            refute_output --partial "attention uses"
        fi
        # the same tensors (3 layers × 15 forwards; probs with their lse), each within the bf16 forward's reach
        # (measured: probs 3e-4, lse 1e-2, frames 5e-3 at most)
        run -0 sf-tensor diff "$T/cpu_$m.safetensors" "$T/gpu_$m.safetensors" --rtol 1e-2 --atol 2e-2 -q
        assert_output --regexp "^# $([ "$m" = probs ] && echo 90 || echo 45) compared, 0 mismatched, 0 only in A, 0 only in B"
    done
}

@test "sf-denoise --fp8 --device cuda:0 on the emulated GPU, streams deferred: FP8 products (no fallback), the CPU --fp8 run's preds within fp8's reach" {
    G="${SF_GOLDEN:-$SF_ROOT/tests/golden}"
    P="$G/expect/dit_pipeline_base.safetensors"
    common=(--model-dir "$G/model" --num_frames 9 --height 64 --width 96 --progress none
            --prompt-embeds "$P:context.prompt_embeds" --noise "$P" --fp8 --dump-preds)
    run -0 sf-denoise "${common[@]}" --save-latents "$T/cpu.safetensors"
    SF_EMU_ASYNC=1 run -0 "$E/sf-denoise" "${common[@]}" --device cuda:0 --save-latents "$T/gpu.safetensors"
    assert_output --partial "fp8: 30 of 30 block linears in float8 e4m3"
    refute_output --partial "stay bf16"
    # bf16 activations on top of fp8's chaos (a scale one bf16 step off re-rolls a tensor): measured 0.08 at most
    run -0 sf-tensor diff "$T/cpu.safetensors" "$T/gpu.safetensors" --rtol 0.15 --atol 0.15 -q
    assert_output --regexp "^# 16 compared, 0 mismatched"
    # a cuBLASLt without FP8 (emulated refusal): one warning per shape, the run goes on in bf16
    SF_EMU_NO_FP8_GEMM=1 run -0 "$E/sf-denoise" "${common[@]}" --device cuda:0 --save-latents "$T/gpu16.safetensors"
    assert_output --partial "the 256x256 linears stay bf16"
}

@test "sf-denoise --sink-ablate --device cuda:0 on the emulated GPU, streams deferred: the CPU's ablated preds and taps within bf16, not the plain run's" {
    G="${SF_GOLDEN:-$SF_ROOT/tests/golden}"
    P="$G/expect/dit_pipeline_base.safetensors"
    common=(--model-dir "$G/model" --num_frames 9 --height 64 --width 96 --progress none
            --prompt-embeds "$P:context.prompt_embeds" --noise "$P" --dump-preds --sink-ablate 2 --sink-ablate-layers 0-1)
    # every layer tapped in probs mode, the ablated ones too (their views deferred to the forward's end)
    taps=(--layer_indices all --tap-mode probs --tap-select all)
    run -0 sf-denoise "${common[@]}" --save-latents "$T/cpu.safetensors" "${taps[@]}" --output_path "$T/tc.safetensors"
    SF_EMU_ASYNC=1 run -0 "$E/sf-denoise" "${common[@]}" --device cuda:0 --save-latents "$T/gpu.safetensors" \
        "${taps[@]}" --output_path "$T/tg.safetensors"
    # within the bf16 forward's reach (the golden bound of the DiT pipeline's preds: 5e-2)
    run -0 sf-tensor diff "$T/cpu.safetensors" "$T/gpu.safetensors" --rtol 5e-2 --atol 5e-2 -q
    assert_output --regexp "^# 16 compared, 0 mismatched"
    # the taps: the same tensors (3 layers × 15 forwards — the last refresh runs, it is tapped — probs and lse) and
    # shapes, the same key frames of every forward and ablated layer (block 2: layers 0-1 from frame 2), the masses
    # within the same bound
    run -0 sf-tensor diff "$T/tc.safetensors" "$T/tg.safetensors" --rtol 5e-2 --atol 5e-2 -q
    assert_output --regexp "^# 90 compared, 0 mismatched, 0 only in A, 0 only in B"
    run -0 python3 -c 'import json, sys
def fw(p):
    f = open(p, "rb"); n = int.from_bytes(f.read(8), "little"); return json.loads(f.read(n))["__metadata__"]["forwards"]
a, b = fw(sys.argv[1]), fw(sys.argv[2]); assert a == b, (a, b)
print(json.loads(a)[10]["layer_key_frames"])' "$T/tc.safetensors" "$T/tg.safetensors"
    assert_output "{'0': [2, 3, 4, 5, 6, 7, 8], '1': [2, 3, 4, 5, 6, 7, 8]}"
    # and ablation changed the GPU's video from the second block on (block 0 has no context): the plain GPU run is
    # farther from it than the bound in the 10 later preds and the latents
    SF_EMU_ASYNC=1 run -0 "$E/sf-denoise" "${common[@]:0:15}" --device cuda:0 --save-latents "$T/plain.safetensors"
    run sf-tensor diff "$T/plain.safetensors" "$T/gpu.safetensors" --rtol 5e-2 --atol 5e-2 -q
    assert_line --regexp "^# 16 compared, 11 mismatched"
    refute_output --regexp "pred\.0\.[0-9][^"$'\n'"]*MISMATCH"
}

# sf-denoise on the golden tiny model, 9 frames with a 6-frame rolling cache and a 1-frame sink, a cache rule given in
# "$@", probs taps of layer 0 at every forward: on the CPU, then on the emulated GPU with deferred streams, which
# must say $COMPRESS_SAYS; blocks 0 and 1 (pred.0.*, pred.1.*: 2 blocks × 5 forwards) run before any compression,
# within the bf16 forward's reach (block 2 compresses on both; which tokens a near tie keeps may differ between bf16
# and f32: not compared). The tap files: $T/tc.safetensors (CPU), $T/tg.safetensors (GPU).
compressed_cpu_gpu() {
    local G="${SF_GOLDEN:-$SF_ROOT/tests/golden}"
    local P="$G/expect/dit_pipeline_base.safetensors"
    local common=(--model-dir "$G/model" --num_frames 9 --height 64 --width 96 --progress none --local_attn_size 6
                  --sink_size 1 --prompt-embeds "$P:context.prompt_embeds" --noise "$P" --dump-preds "$@"
                  --layer_indices 0 --tap-mode probs --tap-select all)
    run -0 sf-denoise "${common[@]}" --save-latents "$T/cpu.safetensors" --output_path "$T/tc.safetensors"
    SF_EMU_ASYNC=1 run -0 --separate-stderr "$E/sf-denoise" "${common[@]}" --device cuda:0 --save-latents "$T/gpu.safetensors" \
        --output_path "$T/tg.safetensors"
    [[ "$stderr" == *"$COMPRESS_SAYS"* ]] || false
    run -0 sf-tensor diff "$T/cpu.safetensors" "$T/gpu.safetensors" --rtol 5e-2 --atol 5e-2 -q
    refute_output --regexp "pred\.[01]\.[^"$'\n'"]*MISMATCH"
}

@test "sf-denoise --kv-compress --device cuda:0 on the emulated GPU, streams deferred: runs, the CPU's preds within bf16 up to the first compression, the same slots kept" {
    COMPRESS_SAYS="KV compress: at each eviction" compressed_cpu_gpu --kv-compress 2
    run -0 python3 -c 'import json, sys
def fw(p):
    f = open(p, "rb"); n = int.from_bytes(f.read(8), "little"); return json.loads(f.read(n))["__metadata__"]
a, b = fw(sys.argv[1]), fw(sys.argv[2]); assert a["forwards"] == b["forwards"] and a["kv_compress"] == b["kv_compress"] == "2"
print(json.loads(a["forwards"])[10]["key_frames"])' "$T/tc.safetensors" "$T/tg.safetensors"
    assert_output "[0, -1, -1, 6, 7, 8]"
    # its bench (what the device check runs at full size) on the emulated device: every part, then the block's figure
    run -0 "$E/sf-denoise" --bench kvc-small --device cuda:0
    assert_equal "$(grep -c '^kvc gpu 192 queries x 1344 keys, 576 candidates -> 384 kept a head, .*: [0-9.]* ms' <<<"$output")" 4
    assert_line --regexp '^kvc gpu per eviction \(one layer [0-9.]+ ms x 30 layers, the block.s first forward\): [0-9.]+ ms$'
    # and --pc-budget's compression at Deep Forcing's settings (a 10-frame sink, budget 16, recent 4 of 64-token frames)
    assert_equal "$(grep -c '^pc gpu a window of 256 queries, 512 candidates -> 128 kept, .*: [0-9.]* ms' <<<"$output")" 5
    assert_line --regexp '^pc gpu per compression \(one layer [0-9.]+ ms x 30 layers, .*\): [0-9.]+ ms$'
    # both selections on the device, the host's way beside them (not counted: the A/B the device's must win)
    assert_equal "$(grep -c '^\(kvc\|pc\) gpu .*, selection\( + reuse counts\)\? on the device: [0-9.]* ms$' <<<"$output")" 2
    assert_equal "$(grep -c '^\(kvc\|pc\) gpu .*, before, not counted: scores to the host, selection there, its upload: [0-9.]* ms$' <<<"$output")" 2
}

@test "sf-vae-encode --device cuda:0 on the emulated GPU, streams deferred and threads reversed: the CPU's latents within bf16" {
    [ -x "$E/sf-vae-encode" ] || skip "no emulated sf-vae-encode"
    G="${SF_GOLDEN:-$SF_ROOT/tests/golden}"
    VAE="$G/model/Wan2.1_VAE.pth"
    # 9 frames of 96x64 (the golden latents decoded): 3 latent frames, both downsample3d pairs exercised
    run -0 sf-decode --latents "$G/expect/vae.safetensors:z" --vae "$VAE" -o "$T/frames/" --progress none \
        --log-level error --threads 2
    mkdir "$T/nine"
    for i in 0 1 2 3 4 5 6 7 8; do cp "$T/frames/frame_0000$i.png" "$T/nine/"; done
    enc=(--vae "$VAE" --frames "$T/nine" --height 64 --width 96)
    run -0 sf-vae-encode "${enc[@]}" --threads 2 --out "$T/cpu.safetensors"
    SF_EMU_ASYNC=1 SF_EMU_ORDER=reverse run -0 "$E/sf-vae-encode" "${enc[@]}" --device cuda:0 --out "$T/gpu.safetensors"
    assert_output --partial "on cuda:0"
    run -0 sf-tensor ls "$T/gpu.safetensors"
    assert_output $'latents\tf32\t[1, 3, 16, 8, 12]'
    # the GPU VAE's bf16 bound (SF_TOL_VAE_BF16: 0.05 + 0.05·max|ref|; the latents' max is ~2): the emulation
    # measures max |Δ| 0.03; a wrong layer or a raced buffer moves them by the latents' own size
    run -0 sf-tensor diff "$T/cpu.safetensors" "$T/gpu.safetensors" --rtol 0 --atol 0.1
}

@test "sf-decode --device cuda:0 with a TAEHV on the emulated GPU, streams deferred and threads reversed: the CPU's video within bf16" {
    G="${SF_GOLDEN:-$SF_ROOT/tests/golden}"
    TG="$G/expect/taehv.safetensors"
    common=(--latents "$TG:tiny.latents" --vae "$G/model/taehv_tiny.pth" --progress none)
    run -0 sf-decode "${common[@]}" --threads 2 --save-video "$T/cpu.safetensors" -o "$T/cpu.y4m"
    SF_EMU_ASYNC=1 SF_EMU_ORDER=reverse SF_LOG_LEVEL=info run -0 --separate-stderr "$E/sf-decode" "${common[@]}" \
        --device cuda:0 --save-video "$T/gpu.safetensors" -o "$T/gpu.y4m"
    [[ "$stderr" == *"TAEHV $G/model/taehv_tiny.pth: 23 layers"*"48x32 frames, on cuda:0"* ]]
    [[ "$stderr" == *"wrote $T/gpu.y4m: 17 frames"* ]]
    # the GPU decoder's bf16 bound (SF_TOL_VAE_BF16: 0.05 + 0.05·max|ref|, max|ref| ≤ 1; test_taehv_cuda.c): the
    # emulation measures max |Δ| 0.042, the uint8 frames 5 levels; a wrong layer or memory moves them by ~1
    run -0 sf-tensor diff "$T/cpu.safetensors" "$T/gpu.safetensors" --rtol 0 --atol 0.1
    run -0 bytes_delta "$T/cpu.y4m" "$T/gpu.y4m"
    echo "$output"
    read -r _ mean _ max <<<"$output"
    awk -v m="$mean" -v x="$max" 'BEGIN { exit !(m <= 1 && x <= 13) }'
}

@test "sf-batch --i2v --device cuda:0 with the emulated programs: every stage on the GPU, the image's latent encoded there too" {
    [ -x "$E/sf-vae-encode" ] || skip "no emulated sf-vae-encode"
    G="${SF_GOLDEN:-$SF_ROOT/tests/golden}"
    # sf-batch runs the sf-* programs beside it: a folder with the emulated stages and the real tools
    mkdir "$T/bin"
    for p in "$SF_ROOT/${SF_BUILD:-build}"/bin/sf-*; do ln -s "$p" "$T/bin/"; done
    for p in sf-encode sf-denoise sf-decode sf-vae-encode; do ln -sf "$E/$p" "$T/bin/$p"; done
    rm "$T/bin/sf-batch" && cp "$SF_ROOT/${SF_BUILD:-build}/bin/sf-batch" "$T/bin/"
    mkdir -p "$T/ds/16-9"
    sf-decode --latents "$G/expect/vae.safetensors:z" --vae "$G/model/Wan2.1_VAE.pth" -o "$T/frames/" --progress none \
        --log-level error --threads 1
    cp "$T/frames/frame_00000.png" "$T/ds/16-9/boat.png"
    printf '%s' '[{"file_name": "boat.png", "caption": "a paper boat"}]' >"$T/ds/target_crop_info_16-9.json"
    printf '%s\n' "denoising_step_list: [1000, 750, 500, 250]" "warp_denoising_step: true" "num_frame_per_block: 3" \
        "independent_first_frame: true" >"$T/i2v.yaml"
    run -0 "$T/bin/sf-batch" --i2v --data_path "$T/ds" --config_path "$T/i2v.yaml" --seed 3 --output_folder "$T/out" \
        --model-dir "$M" --checkpoint_path "$M/ckpt.pt" --use_ema --save_with_index --num_output_frames 4 --height 32 \
        --width 48 --cache-dir "$T/cache" --device cuda:0 --log-level info
    [ -s "$T/out/0-0_ema.mp4" ]
    # the image's latent frame was encoded on the (emulated) GPU: its log says so
    run -0 cat "$T/out/.sf-batch/logs/0-0_ema.log"
    assert_output --partial "VAE encoder $M/Wan2.1_VAE.pth on cuda:0"
}

@test "reference scripts with --gpu_id 0 (emulated programs): umT5 runs on the GPU beside the DiT, as in the reference; --encode-device cpu keeps it on the CPU" {
    # the scripts run the sf-* programs of $SF_BUILD/bin: a folder with the emulated stages and the real tools
    mkdir -p "$T/emu/bin"
    for p in "$SF_ROOT/${SF_BUILD:-build}"/bin/sf-*; do ln -s "$p" "$T/emu/bin/"; done
    for p in sf-encode sf-denoise; do ln -sf "$E/$p" "$T/emu/bin/$p"; done
    cd "$T"
    F=(--model-dir "$M" --no_checkpoint --num_frames 3 --layer_indices 0 --height 32 --width 48 --progress none
        --log-level info --gpu_id 0)
    SF_BUILD="$T/emu" run -0 --separate-stderr "$SF_ROOT/pipelines/figure4.sh" "${F[@]}" --output_path "$T/gpu.pt"
    [[ "$stderr" == *"sf-encode: info: umT5 on cuda:0"* ]]
    SF_BUILD="$T/emu" run -0 --separate-stderr "$SF_ROOT/pipelines/figure4.sh" "${F[@]}" --output_path "$T/cpu.pt" \
        --encode-device cpu
    [[ "$stderr" != *"umT5 on cuda"* ]]
    [[ "$stderr" == *"sf-encode: info: loading umT5 encoder"* ]]
    # the same prompt's embedding within bf16 either way: the DiT's taps agree
    run -0 sf-tensor diff "$T/gpu.pt" "$T/cpu.pt" --rtol 0.05 --atol 0.05 -q
}

@test "two emulated GPUs (SF_EMU_DEVICES=2): every stage on cuda:1 makes cuda:0's video bit for bit; sf-batch --device cuda puts worker 1 on cuda:1" {
    # the emulation makes a thread that uses another device's stream or memory without cudaSetDevice an error
    # (test_emu_self emu_devices): a stage whose work strays from its --device fails here
    cd "$SF_ROOT"
    args=(model_dir="$M" checkpoint="$M/ckpt.pt" num_frames=3 height=32 width=48 prompt="A red fox trotting through fresh snow")
    SF_EMU_DEVICES=2 run -0 "$E/sf-run" pipelines/t2v.yaml "${args[@]}" device=cuda:0 output="$T/g0.y4m" cache_dir="$T/c0"
    SF_EMU_DEVICES=2 run -0 "$E/sf-run" pipelines/t2v.yaml "${args[@]}" device=cuda:1 output="$T/g1.y4m" cache_dir="$T/c1"
    assert_output --partial "[encode] sf-encode: info: umT5 on cuda:1"
    assert_output --partial "48x32 frames, on cuda:1"
    refute_output --partial "sf_emu:"
    cmp "$T/g0.y4m" "$T/g1.y4m"
    # the decoder on the other GPU than the rest (the pipeline's own overlap across devices)
    SF_EMU_DEVICES=2 run -0 "$E/sf-run" pipelines/t2v.yaml "${args[@]}" device=cuda:0 decode.device=cuda:1 \
        output="$T/g01.y4m" cache_dir="$T/c0"
    assert_output --partial "48x32 frames, on cuda:1"
    cmp "$T/g0.y4m" "$T/g01.y4m"
    # one device: cuda:1 is refused before any work
    run -1 "$E/sf-run" pipelines/t2v.yaml "${args[@]}" device=cuda:1 output="$T/none.y4m" cache_dir="$T/c0"
    assert_output --partial "cuda:1"
    [ ! -e "$T/none.y4m" ]
    # sf-batch's local workers: worker w on cuda:w, the same videos as one worker on cuda:0
    mkdir "$T/bin"
    for p in "$SF_ROOT/${SF_BUILD:-build}"/bin/sf-*; do ln -s "$p" "$T/bin/"; done
    for p in sf-encode sf-denoise sf-decode; do ln -sf "$E/$p" "$T/bin/$p"; done
    rm "$T/bin/sf-batch" && cp "$SF_ROOT/${SF_BUILD:-build}/bin/sf-batch" "$T/bin/"
    printf '%s\n' "a red fox" "a paper boat" >"$T/p2.txt"
    B=(--data_path "$T/p2.txt" --model-dir "$M" --checkpoint_path "$M/ckpt.pt" --use_ema --save_with_index
        --num_output_frames 3 --height 32 --width 48 --cache-dir "$T/cache" --log-level info)
    SF_EMU_DEVICES=2 run -0 "$T/bin/sf-batch" "${B[@]}" --output_folder "$T/w2" --workers 2 --device cuda
    SF_EMU_DEVICES=2 run -0 "$T/bin/sf-batch" "${B[@]}" --output_folder "$T/w1" --workers 1 --device cuda:0
    for v in 0-0_ema.mp4 1-0_ema.mp4; do cmp "$T/w1/$v" "$T/w2/$v"; done
    grep -q "umT5 on cuda:1" "$T/w2/.sf-batch/logs/prefill-local_1.log"
    grep -q "on cuda:1" "$T/w2/.sf-batch/logs/1-0_ema.log"
    grep -q "on cuda:0" "$T/w2/.sf-batch/logs/0-0_ema.log"
    # more workers than GPUs: refused before any video, naming the missing device
    printf '%s\n' "a" "b" "c" >"$T/p3.txt"
    SF_EMU_DEVICES=2 run -1 --separate-stderr "$T/bin/sf-batch" "${B[@]}" --data_path "$T/p3.txt" --output_folder "$T/w3" \
        --workers 3 --device cuda
    [[ "$stderr" == "sf-batch: error: --workers 3 --device cuda runs worker 2 on cuda:2: "*"(one worker per GPU: --workers at most the GPU count, or --device cuda:N for one GPU)" ]]
    [ -z "$(ls "$T/w3" 2>/dev/null | grep mp4)" ]
}

@test "sf-denoise --pc-budget --device cuda:0 on the emulated GPU, streams deferred: runs, the CPU's preds within bf16 up to the first compression, the same windows and sink shifts" {
    COMPRESS_SAYS="KV compress (Deep Forcing's release)" compressed_cpu_gpu --pc-budget 5 --pc-recent 3
    run -0 python3 -c 'import json, sys
def fw(p):
    f = open(p, "rb"); n = int.from_bytes(f.read(8), "little"); return json.loads(f.read(n))["__metadata__"]
a, b = fw(sys.argv[1]), fw(sys.argv[2]); assert a["forwards"] == b["forwards"] and a["pc_budget"] == b["pc_budget"] == "5"
f = {(x["block"], x["step"]): x for x in json.loads(a["forwards"])}
print(f[(2, 0)]["key_frames"], f[(2, 0)].get("sink_shift", 0), f[(1, 0)].get("sink_shift", 0))' "$T/tc.safetensors" "$T/tg.safetensors"
    # block 2's window: the sink, one frame's worth of kept tokens, its own frames; the sink moved to frame 1 on both
    assert_output "[0, -1, 6, 7, 8] 1 0"
}
