/* encode.c — sf-vae-encode's flags and its run (encode.h). */
#define _POSIX_C_SOURCE 200809L
#include "tools/vae-encode/encode.h"

#include "parallel.h"
#include "stop.h"
#include "tfile.h"
#include "stages/decode/image.h"
#include "stages/decode/vae_enc.h"
#include "stages/decode/vae_enc_cuda.h"
#include "device.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_FRAMES (1 << 16)

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int is_image_name(const char *n) {
    const char *dot = strrchr(n, '.');
    return n[0] != '.' && dot && (!strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg"));
}

static sf_status add_file(sf_vae_encode_opts *o, const char *path, sf_err *err) {
    if (o->n_files >= MAX_FRAMES) return sf_fail(err, SF_E_ARG, "more than %d frames", MAX_FRAMES);
    char **v = realloc(o->files, (size_t)(o->n_files + 1) * sizeof *v);
    if (!v) return sf_fail(err, SF_E_NOMEM, "out of memory");
    o->files = v;
    if (!(v[o->n_files] = strdup(path))) return sf_fail(err, SF_E_NOMEM, "out of memory");
    o->n_files++;
    return SF_OK;
}

/* --frames DIR: its image files, sorted by name (byte order: zero-padded frame numbers sort right). */
static sf_status list_frames(sf_vae_encode_opts *o, const char *dir, sf_err *err) {
    DIR *d = opendir(dir);
    if (!d) return sf_fail(err, errno == ENOTDIR ? SF_E_ARG : SF_E_IO, "--frames %s: %s", dir, strerror(errno));
    sf_status s = SF_OK;
    struct dirent *e;
    char p[8192];
    while (!s && (e = readdir(d))) {
        if (!is_image_name(e->d_name)) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        s = add_file(o, p, err);
    }
    closedir(d);
    if (s) return s;
    if (!o->n_files) return sf_fail(err, SF_E_ARG, "--frames %s: no .png, .jpg or .jpeg files in it", dir);
    qsort(o->files, (size_t)o->n_files, sizeof *o->files, cmp_str);
    return SF_OK;
}

/* 1 + 4k frames, or a line saying what to give instead. */
static sf_status frame_count_ok(int64_t n, const char *what, sf_err *err) {
    if (n >= 1 && (n - 1) % 4 == 0) return SF_OK;
    const int64_t over = (n - 1) % 4;
    return sf_fail(err, SF_E_ARG, "%s gives %lld frames; the VAE encodes 1 + 4k (1 image, or 5, 9, 13, ...): drop the last "
                   "%lld or add %lld", what, (long long)n, (long long)over, (long long)(4 - over));
}

/* Every --image / --frames file decodes (a damaged frame 60 would waste the encoder's minutes). */
static sf_status images_ok(const sf_vae_encode_opts *o, sf_err *err) {
    for (int64_t i = 0; i < o->n_files; i++) {
        sf_image im = {0};
        sf_status s = sf_image_load(o->files[i], &im, err);
        sf_image_free(&im);
        if (s) return s;
    }
    return SF_OK;
}

/* --video FILE[:NAME]: the tensor, held to [T,3,H,W] / [1,T,3,H,W] of floats. *tf stays open (the view borrows it). */
static sf_status open_video(const char *arg, sf_tfile **tf, const sf_tensor **t, int64_t d[4], sf_err *err) {
    char path[4096], what[4200];
    const char *name = NULL;
    sf_split_file_arg(arg, path, sizeof path, &name);
    sf_status s = sf_tfile_open(path, tf, err);
    if (s) return s;
    const char *nm = name ? name : "video";
    *t = sf_tfile_get(*tf, nm);
    if (!*t && !name && (*tf)->n == 1) *t = &(*tf)->entries[0].t, nm = (*tf)->entries[0].name;
    if (!*t) return sf_fail(err, SF_E_ARG, "--video %s: no tensor named %s (pick one with FILE:NAME)", path, nm);
    snprintf(what, sizeof what, "--video %s:%s", path, nm);
    if (sf_tensor_latent_dims(*t, what, d, err)) return SF_E_ARG;
    if (d[1] != 3) return sf_fail(err, SF_E_ARG, "%s has %lld channels; a pixel video has 3 (RGB)", what, (long long)d[1]);
    if (d[0] > MAX_FRAMES) return sf_fail(err, SF_E_ARG, "%s has %lld frames; too many", what, (long long)d[0]);
    return frame_count_ok(d[0], what, err);
}

sf_status sf_vae_encode_opts_get(const sf_args *a, const sf_opt *opts, sf_vae_encode_opts *o, sf_err *err) {
    memset(o, 0, sizeof *o);
    sf_status s = SF_OK;
    const char **imgs = NULL;
    const int n_img = sf_args_all(a, opts, "image", &imgs);
    const char *frames = sf_args_get(a, opts, "frames"), *v;
    o->video = sf_args_get(a, opts, "video");
    const char **pos = NULL;
    const int n_pos = sf_args_positional(a, &pos);
    const char *first = n_pos > 0 ? pos[0] : NULL;
    free(pos);
    if (first) {
        free(imgs);
        return sf_fail(err, SF_E_ARG, "unexpected argument '%s' (images go after --image)", first);
    }
    if ((n_img > 0) + !!frames + !!o->video != 1) {
        free(imgs);
        return sf_fail(err, SF_E_ARG, "give one of --image FILE..., --frames DIR or --video FILE (see --help)");
    }
    for (int i = 0; i < n_img; i++)
        if ((s = add_file(o, imgs[i], err))) break;
    free(imgs);
    if (s) return s;
    if (frames && (s = list_frames(o, frames, err))) return s;
    if (!(o->out = sf_args_get(a, opts, "out"))) return sf_fail(err, SF_E_ARG, "--out FILE is required (the latents' safetensors file)");
    if (!o->out[0] || !strcmp(o->out, "-")) return sf_fail(err, SF_E_ARG, "--out: give a file name (safetensors)");
    o->name = sf_args_get(a, opts, "name");
    if (!o->name) o->name = "latents";
    if (!o->name[0] || strlen(o->name) > 200) return sf_fail(err, SF_E_ARG, "--name: 1 to 200 characters");
    long hw[2] = {0, 0};
    static const char *const hw_flag[2] = {"height", "width"};
    for (int k = 0; k < 2; k++) {
        char fl[16];
        snprintf(fl, sizeof fl, "--%s", hw_flag[k]);
        if ((v = sf_args_get(a, opts, hw_flag[k])) && (s = sf_arg_long(fl, v, 8, 16384, &hw[k], err))) return s;
        if (hw[k] % 8) return sf_fail(err, SF_E_ARG, "%s %ld: must be a multiple of 8 (the VAE's latent is 1/8)", fl, hw[k]);
    }
    if (!o->video) { /* images: the reference's i2v size unless told */
        o->H = hw[0] ? hw[0] : 480;
        o->W = hw[1] ? hw[1] : 832;
    } else {
        o->H = hw[0], o->W = hw[1]; /* checked against the video's in sf_vae_encode_run's first step */
    }
    if ((v = sf_args_get(a, opts, "threads")) && (s = sf_arg_long("--threads", v, 1, 256, &o->threads, err))) return s;
    if ((s = sf_stage_flags_get(a, opts, &o->sh, err))) return s;
    if (o->sh.cuda) { /* the GPU checked before any work: without one, one line and nothing written */
        sf_device dev = {1, o->sh.ordinal};
        if ((s = sf_device_check(&dev, err))) return s;
    }
    if ((v = sf_args_get(a, opts, "vae"))) snprintf(o->vae_path, sizeof o->vae_path, "%s", v);
    else snprintf(o->vae_path, sizeof o->vae_path, "%s/Wan2.1_VAE.pth", o->sh.model_dir);
    /* the checks that need no model, before it loads */
    if (o->n_files) {
        if ((s = frame_count_ok(o->n_files, frames ? "--frames" : "--image", err))) return s;
        if ((s = images_ok(o, err))) return s;
    } else {
        sf_tfile *tf = NULL;
        const sf_tensor *t;
        int64_t d[4];
        s = open_video(o->video, &tf, &t, d, err);
        sf_tfile_destroy(&tf);
        if (s) return s;
        if ((o->H && o->H != d[2]) || (o->W && o->W != d[3]))
            return sf_fail(err, SF_E_ARG, "--video %s has frames of %lldx%lld (HxW), not --height %lld --width %lld (it is not resized)",
                           o->video, (long long)d[2], (long long)d[3], (long long)(o->H ? o->H : d[2]), (long long)(o->W ? o->W : d[3]));
        if (d[2] % 8 || d[3] % 8)
            return sf_fail(err, SF_E_ARG, "--video %s has frames of %lldx%lld; the VAE needs multiples of 8", o->video,
                           (long long)d[2], (long long)d[3]);
        o->H = d[2], o->W = d[3];
    }
    if (access(o->vae_path, R_OK) != 0) return sf_fail(err, SF_E_IO, "cannot open %s: %s", o->vae_path, strerror(errno));
    return sf_check_out_dir("--out", o->out, 0, err);
}

void sf_vae_encode_opts_free(sf_vae_encode_opts *o) {
    for (int64_t i = 0; i < o->n_files; i++) free(o->files[i]);
    free(o->files);
    o->files = NULL;
    o->n_files = 0;
}

/* Frame i of the input as pixels [3, H, W] in [-1, 1]. */
static sf_status load_frame(const sf_vae_encode_opts *o, int64_t i, const sf_tensor *video, float *px, sf_err *err) {
    if (video) {
        const int64_t fe = 3 * o->H * o->W;
        sf_tensor f = *video; /* frame i: drop the leading dims, offset the data */
        const int lead = video->ndim - 4;
        f.ndim = 3;
        for (int k = 0; k < 3; k++) f.shape[k] = video->shape[lead + 1 + k], f.stride[k] = video->stride[lead + 1 + k];
        f.data = (char *)video->data + (size_t)(i * video->stride[lead]) * sf_dtype_size(video->dtype);
        sf_tensor_to_f32(&f, px);
        for (int64_t j = 0; j < fe; j++)
            if (!isfinite(px[j]))
                return sf_fail(err, SF_E_ARG, "--video %s: frame %lld holds a non-finite value (element %lld)", o->video,
                               (long long)i, (long long)j);
        return SF_OK;
    }
    sf_image im = {0}, rs = {0};
    sf_status s = sf_image_load(o->files[i], &im, err);
    if (!s && (im.w != o->W || im.h != o->H)) {
        s = sf_image_resize_bilinear(&im, o->W, o->H, &rs, err);
        sf_image_free(&im);
        im = rs;
    }
    if (!s) sf_image_to_pixels(&im, px);
    sf_image_free(&im);
    return s;
}

sf_status sf_vae_encode_run(const sf_vae_encode_opts *o, sf_err *err) {
    sf_tfile *tf = NULL;
    const sf_tensor *video = NULL;
    sf_vae_enc *enc = NULL;
    sf_vae_enc_cuda *gpu = NULL;
    float *px = NULL, *z = NULL;
    int64_t d[4], n = o->n_files, m = 0;
    sf_status s = SF_OK;
    if (o->video) {
        if ((s = open_video(o->video, &tf, &video, d, err))) goto done;
        n = d[0];
    }
    const double t0 = sf_now();
    if (o->sh.cuda) { /* the GPU encoder borrows the loader's config and weights; no CPU state */
        if ((s = sf_vae_enc_new_weights(o->vae_path, o->H, o->W, &enc, err)) ||
            (s = sf_vae_enc_cuda_new(enc, o->sh.ordinal, &gpu, err)))
            goto done;
    } else if ((s = sf_vae_enc_new(o->vae_path, o->H, o->W, o->threads > 0 ? (int)o->threads : sf_cpu_count(), &enc,
                                   err))) {
        goto done;
    }
    const int64_t C = sf_vae_enc_z_dim(enc), h = o->H / 8, w = o->W / 8, total = sf_vae_enc_latents_for(enc, n);
    char where[32];
    snprintf(where, sizeof where, gpu ? "cuda:%d" : "the CPU", o->sh.ordinal);
    sf_info("VAE encoder %s on %s: %lld frame%s of %lldx%lld -> %lld latent frame%s of %lldx%lld", o->vae_path, where, (long long)n, n == 1 ? "" : "s", (long long)o->W, (long long)o->H,
            (long long)total, total == 1 ? "" : "s", (long long)w, (long long)h);
    px = sf_calloc2((size_t)(3 * o->H * o->W), sizeof(float));
    z = sf_calloc2((size_t)(total * C * h * w), sizeof(float));
    if (!px || !z) {
        s = sf_fail(err, SF_E_NOMEM, "out of memory for %lld latent frames", (long long)total);
        goto done;
    }
    for (int64_t i = 0; i < n; i++) { /* frame by frame: memory does not grow with the video */
        int64_t got = 0;
        if ((s = sf_stop_check(err)) || (s = load_frame(o, i, video, px, err)) ||
            (s = gpu ? sf_vae_enc_cuda_encode(gpu, px, 1, z + (size_t)(m * C * h * w), &got, err)
                     : sf_vae_encode(enc, px, 1, z + (size_t)(m * C * h * w), &got, err)))
            goto done;
        m += got;
        if (got) sf_debug("latent frame %lld of %lld done (%.1f s)", (long long)m, (long long)total, sf_now() - t0);
    }
    if (m != total) {
        s = sf_fail(err, SF_E_FORMAT, "the encoder made %lld latent frames, not %lld", (long long)m, (long long)total);
        goto done;
    }
    const int64_t shape[5] = {1, m, C, h, w};
    sf_tensor_entry e = {(char *)o->name, sf_tensor_view(z, SF_F32, 5, shape)};
    char hw[64], src[4200];
    snprintf(hw, sizeof hw, "%lldx%lld", (long long)o->W, (long long)o->H);
    snprintf(src, sizeof src, "%s", o->video ? o->video : o->files[0]);
    const char *meta[] = {"sf.source", src, "sf.size", hw, "sf.producer", "sf-vae-encode " SF_VERSION};
    if ((s = sf_safetensors_write(o->out, &e, 1, meta, 3, err))) goto done;
    sf_info("wrote %s: %s [1, %lld, %lld, %lld, %lld] (%.1f s)", o->out, o->name, (long long)m, (long long)C, (long long)h,
            (long long)w, sf_now() - t0);
done:
    sf_vae_enc_cuda_destroy(&gpu);
    sf_vae_enc_destroy(&enc);
    sf_tfile_destroy(&tf);
    free(px);
    free(z);
    return s;
}
