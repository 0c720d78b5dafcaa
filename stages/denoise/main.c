/* sf-denoise — prompt embeddings → latent blocks: the causal Wan DiT with KV cache, the Self-Forcing
 * 4-step schedule with re-noising and the clean-context refresh pass, attention taps.
 *
 * Inputs: --prompt-embeds FILE[:NAME] ([L, text_dim] or [1, L, text_dim], L <= text_len, default name
 * prompt_embeds) or --in URL (wire stream; the first "prompt_embeds" tensor, and with --follow-prompts
 * / --num_frames 0 the later ones switch the prompt at block boundaries: live.c). Weights: --model-dir
 * (config.json + diffusion_pytorch_model.safetensors), then the checkpoint decision of DESIGN.md §3.
 * Outputs: --out URL (one "latents" wire message per finished block, then end), --save-latents FILE
 * (safetensors "latents" [1, T, C, h, w], + pred.<b>.<s> with --dump-preds), taps to --output_path.
 * Mirrors inference.py / experiments/run_extraction_figure4.py. Tested by tests/bats/sf-denoise.bats.
 * Declares the flags; the run and its checks are stage.c's, the benchmarks bench*.c's. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "stop.h"
#include "stages/denoise/bench.h"
#include "stages/denoise/stage.h"

static const sf_opt opts[] = {
    SF_OPT_MODEL_DIR,
    {"config-path", 0, SF_ARG_VALUE, "FILE\trun config merged over configs/default_config.yaml (default configs/self_forcing_dmd.yaml)"},
    {"checkpoint-path", 0, SF_ARG_VALUE, "FILE\tSelf-Forcing checkpoint (.pt); missing file: loud warning, base weights (like the reference)"},
    {"require-checkpoint", 0, SF_ARG_FLAG, "a missing --checkpoint_path is an error (exit 1) instead of a fallback to the base weights"},
    {"no-checkpoint", 0, SF_ARG_FLAG, "keep the base Wan2.1 weights"},
    {"use-ema", 0, SF_ARG_FLAG, "use generator_ema (default; falls back to generator when absent)"},
    {"no-ema", 0, SF_ARG_FLAG, "use the checkpoint's generator weights"},
    {"prompt-embeds", 0, SF_ARG_VALUE, "FILE[:NAME]\ttext embeddings [L,D] or [1,L,D] (default name prompt_embeds)"},
    {"prompt", 0, SF_ARG_VALUE, "TEXT\tprompt text recorded in the outputs' metadata"},
    {"in", 0, SF_ARG_VALUE, "URL\twire stream with a prompt_embeds tensor (-, fd:N, file, tcp://, ipc://, shm://)"},
    {"out", 0, SF_ARG_VALUE, "URL\twire stream of latent blocks (one 'latents' message per block)"},
    {"noise", 0, SF_ARG_VALUE, "FILE\treplay noise.init and noise.renoise.<k> instead of drawing"},
    {"initial-latents", 0, SF_ARG_VALUE, "FILE[:NAME]\tclean latents [F,16,h,w] or [1,F,16,h,w] the video starts with (default name latents, e.g. a --save-latents file): run through the model as context, output first, then --num_frames more are generated (the reference's initial_latent: 1 frame = image-to-video, more = video extension)"},
    {"num-frames", 0, SF_ARG_VALUE, "N\tlatent frames to generate (default 21; after --initial-latents if given; 0 = endless until SIGINT, needs --local_attn_size)"},
    {"follow-prompts", 0, SF_ARG_FLAG, "keep reading --in: a new prompt_embeds message switches the prompt at the next block (default with --num_frames 0)"},
    {"pace", 0, SF_ARG_VALUE, "FPS\tlive: generate no faster than the video plays at FPS frames per second (a block starts when the frames sent so far are about to run out; default 0: as fast as it can)"},
    {"pace-ahead", 0, SF_ARG_VALUE, "SEC\twith --pace: a block should arrive this long before the viewer needs it (default 0.5)"},
    {"recache", 0, SF_ARG_FLAG, "on a prompt switch, recompute the window's cached K/V under the new prompt (LongLive)"},
    {"rope-frames", 0, SF_ARG_VALUE, "N\tRoPE positions of an endless run (default 65536; the run ends there)"},
    {"height", 0, SF_ARG_VALUE, "PX\tvideo height (default 480; latent = /8)"},
    {"width", 0, SF_ARG_VALUE, "PX\tvideo width (default 832; latent = /8)"},
    {"seed", 0, SF_ARG_VALUE, "N\tseed of the noise generator (default 42)"},
    {"noise-rng", 0, SF_ARG_VALUE, "sfpipe|torch-cuda[:SMS:THREADS]\tthe noise stream: sfpipe's own (default), or the reference's: what torch.manual_seed(seed) then torch.randn draws on a CUDA device, in bf16 (its values follow the card's SM count and threads per SM: the run's GPU with --device cuda, else 132:2048, an H100 or H200)"},
    {"noise-offset", 0, SF_ARG_VALUE, "N\twith --noise-rng torch-cuda: the generator's offset at the first draw (default 0, right after seeding; a multiple of 4)"},
    {"noise-sequence", 0, SF_ARG_VALUE, "I\twith --noise-rng torch-cuda: this is video I (from 0) of a run that seeds once and generates video after video, like the reference's inference.py (the offset moves on by what one video draws)"},
    {"noise-batch", 0, SF_ARG_VALUE, "B:S\twith --noise-rng torch-cuda: the reference drew B videos at once (--num_samples B); this is video S (0..B-1)"},
    {"local-attn-size", 0, SF_ARG_VALUE, "N\tKV window in frames (-1 global; overrides model_kwargs.local_attn_size)"},
    {"sink-size", 0, SF_ARG_VALUE, "N\tframes pinned at the start of a local window (model_kwargs.sink_size)"},
    {"sink-rope", 0, SF_ARG_VALUE, "MODE\tabsolute (default: the reference's RoPE frames) or realign: Deep Sink's re-alignment: once a rolling cache's eviction opens a gap after the sink, the sink's keys are moved in time to just before the oldest recent frame (needs --local_attn_size and --sink_size > 0)"},
    {"sink-rope-gap", 0, SF_ARG_VALUE, "N|block\twith --sink-rope realign: frames left between the moved sink and the oldest recent frame (default 0; block: a block's frames, where Deep Forcing's released Deep Sink-only code puts it)"},
    {"kv-compress", 0, SF_ARG_VALUE, "N\tParticipative Compression (Deep Forcing): at each eviction of a rolling cache every layer keeps, per head, the N frames' worth of tokens after the sink the last forward's queries attended most, instead of dropping the oldest frames (needs --local_attn_size; sink + N + a block <= local_attn_size; default 0: off)"},
    {"pc-budget", 0, SF_ARG_VALUE, "N\tParticipative Compression as Deep Forcing's released code runs it (its --Budget): whenever a block would overflow the rolling cache, every layer compresses it to N frames' worth of tokens: the sink, the newest --pc-recent frames, and between them the tokens whose keys score highest against the sum of the last --pc-recent frames' worth of queries (one score for all heads); the sink's keys move in time as that code moves them (needs --local_attn_size; sink + recent <= N <= local_attn_size; default 0: off)"},
    {"pc-recent", 0, SF_ARG_VALUE, "R\twith --pc-budget: frames of the newest queries summed and of the newest tokens kept whole (its --Recent; at least a block; default 4)"},
    {"pc-max-reuse", 0, SF_ARG_VALUE, "K\twith --pc-budget: a token chosen K times stands back while others can be chosen (the release's topc_max_reuse; 0: no limit; default 7)"},
    {"sink-ablate", 0, SF_ARG_VALUE, "K\tattention-sink ablation: in the layers of --sink-ablate-layers, each block's self-attention skips the first K key frames of its context (global attention: frames 0..K-1; a rolling cache: its sink), never its own frames (default 0: off)"},
    {"sink-ablate-layers", 0, SF_ARG_MULTI, "L...	--sink-ablate's layers: all, N, A-B, A,B,... (default all); a tapped one's taps hold the keys it attended"},
    {"save-latents", 0, SF_ARG_VALUE, "FILE\twrite safetensors 'latents' [1,T,C,h,w]"},
    {"dump-preds", 0, SF_ARG_FLAG, "also write every forward's x0 as pred.<block>.<step> (4 = refresh)"},
    {"layer-indices", 0, SF_ARG_MULTI, "L...\ttap the self-attention of these blocks: all, N, A-B, A,B,... (default 0 4)"},
    {"tap-mode", 0, SF_ARG_VALUE, "logits|frames|probs|tokens\tfull pre-softmax logits, frame-level mean logits, exact frame-level softmax mass + log-sum-exp stats, or that mass per key token of the first key frames (default logits)"},
    {"tap-token-frames", 0, SF_ARG_VALUE, "K\t--tap-mode tokens: the leading key frames (the sinks) whose tokens each get their mass (default 1)"},
    {"tap-cross", 0, SF_ARG_FLAG, "also tap the cross-attention: each query frame's mass over the real text tokens"},
    {"tap-select", 0, SF_ARG_VALUE, "seed|all|b:B,s:S\twhich captures to keep (default seed: logits = figure-4 selection, frames = streaming aggregate)"},
    {"output-path", 0, SF_ARG_VALUE, "FILE\ttap file: .pt (reference figure-4 / streaming dict) or .safetensors"},
    {"pt-layout", 0, SF_ARG_VALUE, "auto|streaming|full_attention|distributed_streaming|distributed_multi_prompt\tthe .pt dict: auto = figure-4 (logits) or streaming (frames + seed); the others, of frames + seed, are the reference's run_extraction_full_attention.py and _streaming_distributed.py dicts; a one-layer dict with several layers needs {layer} in --output_path (one file a layer)"},
    {"pt-rank", 0, SF_ARG_VALUE, "R\t--pt-layout distributed_streaming: the rank recorded (default 0)"},
    {"pt-world-size", 0, SF_ARG_VALUE, "W\t--pt-layout distributed_streaming: the world size recorded (default 1)"},
    {"pt-prompt-index", 0, SF_ARG_VALUE, "I\t--pt-layout distributed_multi_prompt: the prompt index recorded (default 0)"},
    {"round-frames", 0, SF_ARG_FLAG, "round --num_frames down to whole blocks of the config (like run_extraction_streaming_distributed.py)"},
    {"chunk-frames", 0, SF_ARG_VALUE, "N\trecorded as chunk_frames in the streaming tap file (default 3; no effect on values)"},
    SF_OPTS_DEVICE("the DiT in bf16"),
    {"fp8", 0, SF_ARG_FLAG, "the transformer blocks' linears in float8 e4m3 with per-tensor dynamic scales, as the reference demo's FP8 switch (torchao): faster products on a GPU, not the bf16 model's numbers"},
    {"threads", 0, SF_ARG_VALUE, "N\tCPU threads (default: all CPUs)"},
    {"bench", 0, SF_ARG_VALUE, "tiny|1.3b-layer|1.3b|attn|glue|kvc\tprint ms per block-forward and peak memory, then exit (tiny: the --model-dir model, e.g. tests/golden/model; 1.3b-layer: one random-weight layer; 1.3b: a whole random-weight video, GPU only; attn: the attention paths at full size, GPU only; glue: the norm/RoPE kernels' TB/s, GPU only; kvc: one --kv-compress eviction and one --pc-budget compression, GPU only; attn-small, glue-small, kvc-small: the same at small sizes, to try them)"},
    {"bench-tokens", 0, SF_ARG_VALUE, "N\t--bench 1.3b-layer: tokens per 3-frame block (default 4680 = 832x480; 480 = 256x160)"},
    {"list-layers", 0, SF_ARG_FLAG, "--check, then print the layers --layer_indices selects in this model (all, A-B, A,B resolved; ascending) on stdout, one line"},
    {"check", 0, SF_ARG_FLAG, "check the flags against the config and the model (config.json, weights and checkpoint opened, not loaded; tap layers; frame count), then exit 0 without a run; no input or output needed"},
    SF_OPT_PROGRESS,
    SF_OPT_TIMEOUT,
    SF_OPTS_CPU_MODE,
    SF_OPTS_STD,
    {NULL, 0, 0, NULL},
};

#define PROG "sf-denoise"

int main(int argc, char **argv) {
    sf_err err = {{0}};
    sf_args a = {0};
    sf_status s;
    if (sf_args_main(argc, argv, PROG,
                     "[--model-dir DIR] (--prompt-embeds FILE[:NAME] | --in URL) [--out URL] [--save-latents FILE] "
                     "[--layer_indices L... --output_path FILE]",
                     opts, &a))
        return 0;
    if ((s = sf_stop_install(&err))) sf_die(PROG, s, &err); /* SIGINT/SIGTERM: stop per layer, exit 130/143 */
    sf_denoise_opts o; /* stages/denoise/stage.c: the flags, then the run (or bench*.c) */
    if ((s = sf_denoise_opts_get(&a, opts, &o, &err)) ||
        (s = o.bench ? sf_denoise_bench(o.bench, o.sh.model_dir, (int)o.threads, o.sh.cuda ? o.sh.ordinal : -1,
                                        o.bench_tokens, o.fp8, &err)
                     : sf_denoise_stage_run(&o, &err)))
        sf_die(PROG, s, &err);
    sf_args_free(&a);
    return 0;
}
