/* sf-vae-encode — images or video frames → Wan VAE latents, for sf-denoise --initial-latents.
 *
 * The reference's image-to-video (inference.py --i2v) turns the image into the video's first latent
 * frame: Image.open(p).convert('RGB'), Resize((480, 832)) (PIL bilinear), ToTensor, Normalize(0.5, 0.5),
 * then WanVAEWrapper.encode_to_latent. This program does the same (stages/decode/image.h: PIL-exact
 * loading and resizing; stages/decode/vae_enc.h: the encoder), and for more frames it makes the
 * latents of a video to extend:
 *   --image FILE …     PNG / JPEG files, one frame each, resized to --height × --width
 *   --frames DIR       every .png / .jpg / .jpeg in DIR in name order (sf-decode -o DIR/ writes them)
 *   --video FILE[:N]   a pixel video [T,3,H,W] or [1,T,3,H,W] in [-1, 1] (sf-decode --save-video), as is
 * The VAE encodes 1 + 4k frames (1 frame → 1 latent frame, then 4 → 1); another count is refused
 * (the reference drops the extra frames silently). Output: --out FILE, safetensors "latents"
 * [1, F, 16, H/8, W/8] f32 — sf-denoise --initial-latents FILE reads it as is. --device cuda[:N] (or
 * --gpu-id N) encodes on the GPU (stages/decode/vae_enc_cuda.h: bf16 activations, within the GPU VAE's bf16
 * bound of the CPU's latents); the default is the CPU.
 * --list-dataset DIR prints the reference's i2v data folder as IMAGE<tab>CAPTION lines (sf-batch --i2v).
 * Tested by tests/bats/sf-vae-encode.bats. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "stop.h"
#include "tools/vae-encode/encode.h"

#include <signal.h>

static const sf_opt opts[] = {
    {"image", 0, SF_ARG_MULTI, "FILE...\tPNG or JPEG images, one frame each (1: image-to-video), resized as the reference's i2v transform"},
    {"frames", 0, SF_ARG_VALUE, "DIR\tthe .png/.jpg/.jpeg files of DIR in name order, one frame each (e.g. sf-decode -o DIR/)"},
    {"video", 0, SF_ARG_VALUE, "FILE[:NAME]\tpixels [T,3,H,W] or [1,T,3,H,W] in [-1,1] (default name video: sf-decode --save-video), not resized"},
    {"out", 'o', SF_ARG_VALUE, "FILE\tsafetensors file of the latents [1,F,16,H/8,W/8] (sf-denoise --initial-latents FILE)"},
    {"name", 0, SF_ARG_VALUE, "NAME\tthe output tensor's name (default latents)"},
    {"height", 0, SF_ARG_VALUE, "PX\tframe height images are resized to (default 480, or the --video's)"},
    {"width", 0, SF_ARG_VALUE, "PX\tframe width images are resized to (default 832, or the --video's)"},
    SF_OPT_MODEL_DIR,
    {"vae", 0, SF_ARG_VALUE, "PATH\tVAE checkpoint (default <model-dir>/Wan2.1_VAE.pth)"},
    {"threads", 0, SF_ARG_VALUE, "N\tCPU threads (default: all CPUs)"},
    SF_OPTS_DEVICE("the VAE encoder; default cpu"),
    {"list-dataset", 0, SF_ARG_VALUE, "DIR\tprint the reference's i2v data folder (target_crop_info_<ratio>.json + <ratio>/ images) as IMAGE<tab>CAPTION lines, and exit (sf-batch --i2v)"},
    SF_OPTS_CPU_MODE,
    SF_OPTS_STD,
    {NULL, 0, 0, NULL},
};

int main(int argc, char **argv) {
    const char *prog = "sf-vae-encode";
    sf_err err = {{0}};
    sf_args a = {0};
    sf_status s;
    signal(SIGPIPE, SIG_IGN);
    if (sf_args_main(argc, argv, prog, "(--image FILE... | --frames DIR | --video FILE[:NAME]) --out FILE [options]",
                     opts, &a))
        return 0;
    if ((s = sf_stop_install(&err))) sf_die(prog, s, &err); /* SIGINT/SIGTERM: stop between frames */
    const char *list = sf_args_get(&a, opts, "list-dataset");
    if (list) {
        if ((s = sf_vae_encode_list_dataset(list, stdout, &err))) sf_die(prog, s, &err);
        sf_args_free(&a);
        return 0;
    }
    sf_vae_encode_opts o; /* tools/vae-encode/encode.c: the flags, then the run */
    if ((s = sf_vae_encode_opts_get(&a, opts, &o, &err)) || (s = sf_vae_encode_run(&o, &err))) {
        sf_vae_encode_opts_free(&o);
        sf_die(prog, s, &err);
    }
    sf_vae_encode_opts_free(&o);
    sf_args_free(&a);
    return 0;
}
