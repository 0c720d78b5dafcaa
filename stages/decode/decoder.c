/* decoder.c — sf-decode's decoders behind one interface (decoder.h): the Wan VAE or the TAEHV, CPU or
 * GPU. Plain dispatch; the work is theirs. */
#define _POSIX_C_SOURCE 200809L
#include "stages/decode/decoder.h"

#include "stages/decode/taehv.h"
#include "stages/decode/taehv_cuda.h"
#include "stages/decode/vae.h"
#include "stages/decode/vae_cuda.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sf_decoder {
    sf_vae *vae;            /* the Wan VAE (config + weights; the CPU decoder's state when on the CPU) */
    sf_vae_cuda *vgpu;
    sf_taehv *tae;          /* or the TAEHV (config + weights; the CPU decoder's state when on the CPU) */
    sf_taehv_cuda *tgpu;
    int cuda, ordinal;
    int64_t z, h, w, H, W, per;
    float *q[2];            /* CPU: the submitted latent frames not yet received (oldest first) */
    int nq;
};

sf_status sf_decoder_open(sf_tfile *tf, const sf_decoder_opts *o, sf_decoder **out, sf_err *err) {
    sf_status s;
    *out = NULL;
    sf_decoder *d = calloc(1, sizeof *d);
    if (!d) {
        sf_tfile_destroy(&tf);
        return sf_fail(err, SF_E_NOMEM, "out of memory");
    }
    d->cuda = o->cuda, d->ordinal = o->ordinal, d->h = o->h, d->w = o->w;
    /* config and weights first, the channels checked, then the GPU decoder (its plans take seconds) */
    if (sf_taehv_detect(tf)) {
        if ((s = sf_taehv_new_from(tf, o->h, o->w, o->threads, !o->cuda, &d->tae, err))) goto fail;
        if (o->bf16_unscale) sf_warn("--bf16-unscale is the Wan VAE's: the TAEHV takes the latents as they are");
        const sf_taehv_config *c = sf_taehv_config_of(d->tae);
        d->z = c->z_dim, d->H = o->h << c->n_up, d->W = o->w << c->n_up, d->per = c->time_up;
        if ((s = sf_decoder_check_channels(d, o->channels, err)) ||
            (o->cuda && (s = sf_taehv_cuda_new(d->tae, o->ordinal, &d->tgpu, err))))
            goto fail;
    } else {
        if ((s = sf_vae_new_from(tf, o->h, o->w, o->threads, !o->cuda, &d->vae, err))) goto fail;
        d->vae->cfg.bf16_unscale = o->bf16_unscale;
        const sf_vae_config *c = &d->vae->cfg;
        d->z = c->z_dim, d->H = o->h << c->n_up, d->W = o->w << c->n_up, d->per = (int64_t)1 << c->n_up3d;
        if ((s = sf_decoder_check_channels(d, o->channels, err)) ||
            (o->cuda && (s = sf_vae_cuda_new(d->vae, o->ordinal, &d->vgpu, err))))
            goto fail;
    }
    if (!o->cuda)
        for (int i = 0; i < 2; i++)
            if (!(d->q[i] = sf_calloc2((size_t)(d->z * d->h * d->w), sizeof(float)))) {
                s = sf_fail(err, SF_E_NOMEM, "out of memory");
                goto fail;
            }
    *out = d;
    return SF_OK;
fail:
    sf_decoder_destroy(&d);
    return s;
}

void sf_decoder_destroy(sf_decoder **dp) {
    if (!dp || !*dp) return;
    sf_decoder *d = *dp;
    sf_vae_cuda_destroy(&d->vgpu);
    sf_vae_destroy(&d->vae);
    sf_taehv_cuda_destroy(&d->tgpu);
    sf_taehv_destroy(&d->tae);
    free(d->q[0]), free(d->q[1]);
    free(d);
    *dp = NULL;
}

sf_status sf_decoder_check_channels(const sf_decoder *d, int64_t C, sf_err *err) {
    if (C < 0 || C == d->z) return SF_OK;
    return sf_fail(err, SF_E_SHAPE, "latents have %lld channels but the %s expects %lld", (long long)C,
                   d->tae ? "TAEHV" : "VAE", (long long)d->z);
}

int64_t sf_decoder_z_dim(const sf_decoder *d) { return d->z; }
int64_t sf_decoder_h(const sf_decoder *d) { return d->h; }
int64_t sf_decoder_w(const sf_decoder *d) { return d->w; }
int64_t sf_decoder_frame_h(const sf_decoder *d) { return d->H; }
int64_t sf_decoder_frame_w(const sf_decoder *d) { return d->W; }
int64_t sf_decoder_max_frames(const sf_decoder *d) { return d->per; }

const char *sf_decoder_kind(const sf_decoder *d) { return d->tae ? "TAEHV" : "Wan VAE"; }

void sf_decoder_describe(const sf_decoder *d, const char *path, char *buf, size_t n) {
    char where[64];
    if (d->cuda) {
        const double gib = (d->vgpu ? sf_vae_cuda_bytes(d->vgpu) : sf_taehv_cuda_bytes(d->tgpu)) / 1073741824.0;
        snprintf(where, sizeof where, "on cuda:%d (%.2f GiB)", d->ordinal, gib);
    } else {
        snprintf(where, sizeof where, "%d threads", d->tae ? sf_taehv_config_of(d->tae)->threads : d->vae->cfg.threads);
    }
    if (d->tae) {
        const sf_taehv_config *c = sf_taehv_config_of(d->tae);
        snprintf(buf, n, "TAEHV %s: %d layers, %lld -> %lld channels, %d frames a latent frame, %lldx%lld latents -> %lldx%lld frames, %s",
                 path, c->n_layers, (long long)c->z_dim, (long long)c->layers[1].cout, c->time_up, (long long)d->h,
                 (long long)d->w, (long long)d->W, (long long)d->H, where);
    } else {
        snprintf(buf, n, "VAE %s: dim %lld, %lldx%lld latents -> %lldx%lld frames, %s", path, (long long)d->vae->cfg.dim,
                 (long long)d->h, (long long)d->w, (long long)d->W, (long long)d->H, where);
    }
}

sf_status sf_decoder_submit(sf_decoder *d, const float *z, int want_video, int want_u8, sf_err *err) {
    if (d->vgpu) return sf_vae_cuda_submit(d->vgpu, z, want_video, want_u8, err);
    if (d->tgpu) return sf_taehv_cuda_submit(d->tgpu, z, want_video, want_u8, err);
    if (d->nq == 2) return sf_fail(err, SF_E_ARG, "decoder: a third latent frame submitted before a receive");
    memcpy(d->q[d->nq++], z, (size_t)(d->z * d->h * d->w) * sizeof(float));
    return SF_OK;
}

sf_status sf_decoder_receive(sf_decoder *d, float *video, uint8_t *u8, int64_t *n_out, sf_err *err) {
    *n_out = 0;
    if (d->vgpu) return sf_vae_cuda_receive(d->vgpu, video, u8, n_out, err);
    if (d->tgpu) return sf_taehv_cuda_receive(d->tgpu, video, u8, n_out, err);
    if (!d->nq) return sf_fail(err, SF_E_ARG, "decoder: receive without a submitted latent frame");
    float *z = d->q[0];
    sf_status s = d->tae ? sf_taehv_decode(d->tae, z, 1, video, u8, n_out, err)
                         : sf_vae_decode(d->vae, z, 1, video, u8, n_out, err);
    d->q[0] = d->q[1], d->q[1] = z; /* the slot goes to the back of the queue */
    d->nq--;
    return s;
}
