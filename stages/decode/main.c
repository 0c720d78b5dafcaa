/* sf-decode — latent blocks → video (Wan VAE decoder, or the TAEHV tiny one; streaming).
 *
 * Inputs: --latents FILE[:NAME] (safetensors/.pt, [1, T, 16, h, w] or [T, 16, h, w]; default
 * name "latents") or --in URL (wire stream of latent blocks, decoded as each block arrives).
 * Outputs: -o FILE (.y4m / .mp4 / DIR/ of PNGs, see video.h), --save-video FILE (safetensors
 * "video" [1, T, 3, H, W] f32 in [-1, 1]), --out URL (a wire URL, or a file ending in .wire): raw
 * frames, one "frames" u8 [n, H, W, 3] message per decoded latent frame (n = 1 for the first, then 4),
 * meta block, start_frame, fps and the block's prompt / t_sent / clock / gen_fps passed through (sf-view plays them).
 * Mirrors inference.py's decode + write_video step.
 * Tested by tests/bats/sf-decode.bats. Declares the flags; the checks and the run are stage.c's. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "stop.h"
#include "stages/decode/bench_vae.h"
#include "stages/decode/stage.h"

#include <signal.h>

static const sf_opt opts[] = {
    {"latents", 0, SF_ARG_VALUE, "FILE[:NAME]\tlatents [1,T,16,h,w] from a safetensors/.pt file (default name latents)"},
    {"in", 0, SF_ARG_VALUE, "URL\twire stream of latent blocks (-, fd:N, file, tcp://, ipc://, shm://)"},
    {"output", 'o', SF_ARG_VALUE, "FILE\tvideo: .y4m (4:4:4, BT.601 full range), .mp4 (via ffmpeg), DIR/ (PNG frames), - (y4m to stdout)"},
    {"out", 0, SF_ARG_VALUE, "URL\twire URL (tcp://, ipc://, shm://, fd:N, FILE.wire): raw u8 frames [n,H,W,3] per block; a video FILE: same as --output"},
    {"save-video", 0, SF_ARG_VALUE, "FILE\twrite safetensors 'video' [1,T,3,H,W] f32 in [-1,1]"},
    SF_OPT_MODEL_DIR,
    {"vae", 0, SF_ARG_VALUE, "PATH\tdecoder checkpoint: the Wan VAE (default <model-dir>/Wan2.1_VAE.pth) or a TAEHV (taew2_1.pth: the reference demo's tiny decoder, faster, lower quality)"},
    {"fps", 0, SF_ARG_VALUE, "N\tframes per second (default 16, like the reference)"},
    {"height", 0, SF_ARG_VALUE, "PX\tthe video's height as sf-denoise's (latent = /8): with --width, load the VAE and make its plans before the first latents arrive (default: when they do)"},
    {"width", 0, SF_ARG_VALUE, "PX\tthe video's width as sf-denoise's (latent = /8), with --height"},
    {"threads", 0, SF_ARG_VALUE, "N\tCPU threads (default: all CPUs)"},
    SF_OPTS_DEVICE("the VAE in bf16; only uint8 frames come back"),
    {"bench", 0, SF_ARG_VALUE, "1.3b|tiny|taehv\tGPU decoder benchmark with random weights (1.3b: 21 latent frames -> 81 at 832x480; taehv: the TAEHV tiny decoder at taew2_1.pth's shapes, the same video; needs --device cuda)"},
    {"bf16-unscale", 0, SF_ARG_FLAG, "un-scale latents in bf16 like the bf16 reference pipeline (SPEC 8.1)"},
    SF_OPT_PROGRESS,
    SF_OPT_TIMEOUT,
    SF_OPTS_CPU_MODE,
    SF_OPTS_STD,
    {NULL, 0, 0, NULL},
};

int main(int argc, char **argv) {
    const char *prog = "sf-decode";
    sf_err err = {{0}};
    sf_args a = {0};
    sf_status s;
    signal(SIGPIPE, SIG_IGN);
    if (sf_args_main(argc, argv, prog, "(--latents FILE[:NAME] | --in URL) [-o VIDEO] [--save-video FILE] [options]",
                     opts, &a))
        return 0;
    if ((s = sf_stop_install(&err))) sf_die(prog, s, &err); /* SIGINT/SIGTERM: stop per conv, exit 130/143 */
    sf_decode_opts o; /* stages/decode/stage.c: the flags, then the run */
    if ((s = sf_decode_opts_get(&a, opts, &o, &err)) ||
        (s = o.bench ? sf_decode_bench(o.bench, o.sh.cuda ? o.sh.ordinal : -1, &err) : sf_decode_stage_run(&o, &err)))
        sf_die(prog, s, &err);
    sf_args_free(&a);
    return 0;
}
