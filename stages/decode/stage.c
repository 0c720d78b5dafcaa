/* stage.c — sf-decode's flags gathered and its run (stage.h). Moved out of main.c unchanged in
 * behaviour: the same checks in the same order, the same messages; failures return a status (main
 * turns it into the exit line). */
#define _POSIX_C_SOURCE 200809L
#include "stages/decode/stage.h"

#include "device.h"
#include "parallel.h"
#include "tfile.h"
#include "trace.h"
#include "wire.h"
#include "stages/decode/decoder.h"
#include "stages/decode/video.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct run {
    const char *vae_path, *out_path, *save_path;
    int fps, threads, bf16, progress;
    sf_decoder *dec;     /* the Wan VAE or the TAEHV, CPU or GPU (decoder.h) */
    char label[320];     /* which decoder, for the viewer: "TAEHV taew2_1.pth on cuda:0" (frames meta decoder) */
    int cuda, ordinal;   /* --device cuda[:N] */
    sf_video_writer *vw;
    sf_wire *fo;         /* --out URL: raw frames on the wire */
    sf_wire_msg *fm;     /* the frames message being sent (meta of the latents block) */
    int64_t frames_sent;
    float *video;        /* --save-video: all frames [T, 3, H, W] */
    int64_t video_cap, video_n;
    uint8_t *u8;         /* one block's frames [n, H, W, 3] */
    int64_t blk_cap;
    int64_t latents_done;
    int64_t blocks_done; /* decode_block calls: the SF_TRACE block index */
    int sized;           /* the decoder was made from --height/--width, before any latents */
    sf_wire_opts wo;     /* --in: --timeout; latents up to the default 1 GiB a message */
    double t0;
} run;

/* Create the decoder and the writer for latents of h×w (C < 0: the VAE's own z_dim, for --height/--width
 * before any latents), or check later latents against them. */
static sf_status ensure_init(run *r, int64_t C, int64_t h, int64_t w, sf_err *err) {
    sf_status s;
    if (r->dec) {
        const int64_t dh = sf_decoder_h(r->dec), dw = sf_decoder_w(r->dec);
        if ((s = sf_decoder_check_channels(r->dec, C, err))) return s;
        if (h != dh || w != dw) {
            if (r->sized && !r->latents_done)
                return sf_fail(err, SF_E_SHAPE, "latents of %lldx%lld do not match --height %lld --width %lld (latents %lldx%lld)",
                               (long long)h, (long long)w, (long long)(dh * 8), (long long)(dw * 8), (long long)dh,
                               (long long)dw);
            return sf_fail(err, SF_E_SHAPE, "a latent block of %lldx%lld does not match the first block's %lldx%lld",
                           (long long)h, (long long)w, (long long)dh, (long long)dw);
        }
    } else {
        sf_tfile *tf = NULL;
        const sf_decoder_opts dopt = {h, w, r->threads, r->cuda, r->ordinal, r->bf16, C};
        char line[1024];
        if ((s = sf_tfile_open(r->vae_path, &tf, err)) != SF_OK) return s;
        if ((s = sf_decoder_open(tf, &dopt, &r->dec, err)) != SF_OK) return s; /* the channels too */
        sf_decoder_describe(r->dec, r->vae_path, line, sizeof line);
        sf_info("%s", line);
        const char *base = strrchr(r->vae_path, '/');
        snprintf(r->label, sizeof r->label, "%s %.200s %s", sf_decoder_kind(r->dec), base ? base + 1 : r->vae_path,
                 r->cuda ? "on the GPU" : "on the CPU");
    }
    /* the video once latents came (a decoder made from --height/--width writes nothing before: an input
       that fails first leaves no header on stdout) */
    if (C < 0 || !r->out_path || r->vw) return SF_OK;
    return sf_video_open(r->out_path, (int)sf_decoder_frame_w(r->dec), (int)sf_decoder_frame_h(r->dec), r->fps, &r->vw, err);
}

/* Room in r->u8 / r->video for one latent frame's video frames (at most sf_decoder_max_frames). */
static sf_status frame_room(run *r, sf_err *err) {
    const int64_t fe = 3 * sf_decoder_frame_h(r->dec) * sf_decoder_frame_w(r->dec);
    const int64_t nf = sf_decoder_max_frames(r->dec);
    if (nf > r->blk_cap) {
        free(r->u8);
        r->u8 = sf_calloc2((size_t)(nf * fe), 1);
        if (!r->u8) return sf_fail(err, SF_E_NOMEM, "out of memory for %lld frames", (long long)nf);
        r->blk_cap = nf;
    }
    if (r->save_path && r->video_n + nf > r->video_cap) {
        int64_t cap = r->video_cap ? 2 * r->video_cap : 64;
        while (cap < r->video_n + nf) cap *= 2;
        float *v = realloc(r->video, (size_t)(cap * fe) * sizeof(float));
        if (!v) return sf_fail(err, SF_E_NOMEM, "out of memory for --save-video");
        r->video = v;
        r->video_cap = cap;
    }
    return SF_OK;
}

/* Emit the `got` video frames of one latent frame, now in r->u8 (and r->video at video_n): at once (1
 * for a video's first latent frame, 4 after) — a viewer sees the first frame after a third of the
 * first block's decode. */
static sf_status emit_latent(run *r, int64_t got, sf_err *err) {
    const int64_t H = sf_decoder_frame_h(r->dec), W = sf_decoder_frame_w(r->dec), fe = 3 * H * W;
    sf_status s;
    if (r->fo && got > 0) { /* one message per latent frame: the viewer shows frames as soon as they exist */
        int64_t sh[4] = {got, H, W, 3};
        sf_tensor t = sf_tensor_view(r->u8, SF_U8, 4, sh);
        if ((s = sf_wire_meta_set_int(r->fm, "start_frame", r->frames_sent, err)) ||
            (s = sf_wire_meta_set_int(r->fm, "fps", r->fps, err)) ||
            (s = sf_wire_send_tensor(r->fo, "frames", &t, r->fm, err)))
            return s;
        r->frames_sent += got;
    }
    for (int64_t f = 0; r->vw && f < got; f++)
        if ((s = sf_video_write(r->vw, r->u8 + f * fe, err)) != SF_OK) return s;
    if (r->save_path) r->video_n += got;
    r->latents_done++;
    sf_trace("decode", "latent_out", r->latents_done - 1, r->vw ? sf_video_frames(r->vw) : r->video_n);
    return SF_OK;
}

/* Decode n latent frames [n, C, h, w] f32 (a block), emitting each one's frames as it is done. Latent
 * frame t+1 is submitted before t's frames are received and written out, so a GPU decodes while the
 * host sends and writes (decoder.h). */
static sf_status decode_block(run *r, const float *z, int64_t n, sf_err *err) {
    const int64_t zf = sf_decoder_z_dim(r->dec) * sf_decoder_h(r->dec) * sf_decoder_w(r->dec);
    const int64_t fe = 3 * sf_decoder_frame_h(r->dec) * sf_decoder_frame_w(r->dec);
    const int want_u8 = r->vw || r->fo, want_video = r->save_path != NULL;
    sf_status s;
    if (n > 0 && (s = sf_decoder_submit(r->dec, z, want_video, want_u8, err))) return s;
    for (int64_t t = 0; t < n; t++) {
        int64_t got = 0;
        if ((s = frame_room(r, err))) return s;
        float *dst = want_video ? r->video + r->video_n * fe : NULL;
        uint8_t *u8 = want_u8 ? r->u8 : NULL;
        if (t + 1 < n && (s = sf_decoder_submit(r->dec, z + (t + 1) * zf, want_video, want_u8, err))) return s;
        s = sf_decoder_receive(r->dec, dst, u8, &got, err);
        if (s || (s = emit_latent(r, got, err))) return s;
    }
    sf_trace("decode", "frames_out", r->blocks_done++, r->vw ? sf_video_frames(r->vw) : r->video_n);
    if (r->progress)
        sf_info("decoded %lld latent frames -> %lld video frames (%.1f s)", (long long)r->latents_done,
                (long long)(r->save_path ? r->video_n : r->vw ? sf_video_frames(r->vw) : r->frames_sent), sf_now() - r->t0);
    return SF_OK;
}

static sf_status run_file(run *r, const char *arg, sf_err *err) {
    char path[4096];
    const char *name = NULL;
    sf_tfile *tf = NULL;
    float *z = NULL;
    sf_status s;
    sf_split_file_arg(arg, path, sizeof path, &name);
    if (!name) name = "latents";
    if ((s = sf_tfile_open(path, &tf, err)) != SF_OK) return s;
    const sf_tensor *t = sf_tfile_get(tf, name);
    int64_t d[4];
    char what[4200];
    snprintf(what, sizeof what, "latents %s:%s", path, name);
    if (!t) {
        s = sf_fail(err, SF_E_NOTFOUND, "%s: no tensor named %s (pick one with FILE:NAME)", path, name);
        goto done;
    }
    if ((s = sf_tensor_latent_dims(t, what, d, err)) != SF_OK) goto done;
    if ((s = ensure_init(r, d[1], d[2], d[3], err)) != SF_OK) goto done;
    size_t n = (size_t)(d[0] * d[1] * d[2] * d[3]);
    if (!(z = sf_calloc2(n, sizeof(float)))) {
        s = sf_fail(err, SF_E_NOMEM, "out of memory");
        goto done;
    }
    sf_tensor_to_f32(t, z);
    /* stream in blocks of 3 latent frames (the DiT's block size) to bound memory */
    for (int64_t i = 0; i < d[0] && s == SF_OK; i += 3) {
        int64_t k = d[0] - i < 3 ? d[0] - i : 3;
        s = decode_block(r, z + i * d[1] * d[2] * d[3], k, err);
    }
done:
    free(z);
    sf_tfile_destroy(&tf);
    return s;
}

static sf_status run_wire(run *r, const char *url, sf_err *err) {
    sf_wire *in = NULL;
    sf_wire_msg *m = malloc(sizeof *m);
    float *z = NULL;
    size_t zcap = 0;
    sf_status s;
    if (!m) return sf_fail(err, SF_E_NOMEM, "out of memory");
    if ((s = sf_wire_install_signals(err)) != SF_OK) goto done;
    if ((s = sf_wire_open_reader_opts(url, &r->wo, &in, err)) != SF_OK) goto done;
    for (;;) {
        const void *payload = NULL;
        if ((s = sf_wire_recv(in, m, &payload, err)) != SF_OK) goto done;
        if (m->type == SF_WIRE_END) break;
        if (r->fo && !strcmp(m->name, "progress")) { /* the generator's progress: on to the viewer */
            if ((s = sf_wire_send(r->fo, m, payload ? payload : "", err)) != SF_OK) goto done;
            continue;
        }
        if (strcmp(m->name, "latents") != 0) {
            sf_debug("ignoring wire message '%s'", m->name);
            continue;
        }
        sf_tensor t = sf_wire_msg_view(m, payload);
        int64_t d[4];
        if ((s = sf_tensor_latent_dims(&t, "wire latents", d, err)) != SF_OK) goto done;
        if ((s = ensure_init(r, d[1], d[2], d[3], err)) != SF_OK) goto done;
        size_t n = (size_t)(d[0] * d[1] * d[2] * d[3]);
        if (n > zcap) {
            free(z);
            if (!(z = sf_calloc2(n, sizeof(float)))) {
                s = sf_fail(err, SF_E_NOMEM, "out of memory");
                goto done;
            }
            zcap = n;
        }
        sf_tensor_to_f32(&t, z);
        if (r->fo) { /* the frames message carries the block's provenance for the viewer */
            const char *pr = sf_wire_meta_str(m, "prompt"), *clk = sf_wire_meta_str(m, "clock"),
                       *wt = sf_wire_meta_str(m, "weights");
            const double gf = sf_wire_meta_rate(m, "gen_fps"); /* passed on when a sane rate */
            sf_wire_msg_init(r->fm, SF_WIRE_TENSOR, "frames");
            if ((s = sf_wire_meta_set_int(r->fm, "block", sf_wire_meta_int(m, "block", -1), err)) ||
                (s = sf_wire_meta_set_double(r->fm, "t_sent", sf_wire_meta_double(m, "t_sent", 0.0), err)) ||
                (clk && (s = sf_wire_meta_set_str(r->fm, "clock", clk, err))) ||
                (pr && (s = sf_wire_meta_set_str(r->fm, "prompt", pr, err))) ||
                (wt && (s = sf_wire_meta_set_str(r->fm, "weights", wt, err))) ||
                (s = sf_wire_meta_set_str(r->fm, "decoder", r->label, err)) ||
                (gf > 0 && (s = sf_wire_meta_set_double(r->fm, "gen_fps", gf, err))))
                goto done;
        }
        if ((s = decode_block(r, z, d[0], err)) != SF_OK) goto done;
    }
    if (!r->latents_done) s = sf_fail(err, SF_E_FORMAT, "%s: stream ended without any latents", url);
done:
    sf_wire_close(&in, NULL);
    free(z);
    free(m);
    return s;
}

/* --out URL: a wire URL (or a .wire file) gets raw frames; anything else is a video file (--output). */
static int is_frames_url(const char *u) {
    size_t n = strlen(u);
    return !strncmp(u, "tcp://", 6) || !strncmp(u, "ipc://", 6) || !strncmp(u, "shm://", 6) || !strncmp(u, "fd:", 3) ||
           u[0] == '@' || u[0] == '>' || (n > 5 && !strcmp(u + n - 5, ".wire"));
}

/* ---- flags -------------------------------------------------------------------------------- */

sf_status sf_decode_opts_get(const sf_args *a, const sf_opt *opts, sf_decode_opts *o, sf_err *err) {
    sf_status s;
    const char *v;
    memset(o, 0, sizeof *o);
    if ((s = sf_stage_flags_get(a, opts, &o->sh, err))) return s; /* --device / --gpu-id, --model-dir, --progress */
    const sf_device dev = {o->sh.cuda, o->sh.ordinal};
    /* a missing driver / GPU is one line before anything is read or written */
    if (dev.cuda && (s = sf_device_check(&dev, err)) != SF_OK) return s;
    if ((o->bench = sf_args_get(a, opts, "bench"))) return SF_OK;
    o->fps = 16;
    if ((v = sf_args_get(a, opts, "fps")) && (s = sf_arg_long("--fps", v, 1, 1000, &o->fps, err)) != SF_OK) return s;
    if ((v = sf_args_get(a, opts, "threads")) && (s = sf_arg_long("--threads", v, 1, 256, &o->threads, err)) != SF_OK)
        return s;
    if ((v = sf_args_get(a, opts, "height")) && (s = sf_arg_long("--height", v, 8, 1 << 16, &o->height, err)) != SF_OK)
        return s;
    if ((v = sf_args_get(a, opts, "width")) && (s = sf_arg_long("--width", v, 8, 1 << 16, &o->width, err)) != SF_OK)
        return s;
    if (!o->height != !o->width) return sf_fail(err, SF_E_ARG, "give --height and --width together (the video's size)");
    if (o->height % 8 || o->width % 8)
        return sf_fail(err, SF_E_ARG, "--height/--width must be multiples of 8 (the latents are /8)");
    o->bf16 = sf_args_has(a, opts, "bf16-unscale");
    o->out_path = sf_args_get(a, opts, "output");
    o->frames_url = sf_args_get(a, opts, "out");
    if (o->frames_url && !is_frames_url(o->frames_url)) { /* a video file: the old alias of --output */
        if (!o->out_path) o->out_path = o->frames_url;
        o->frames_url = NULL;
    }
    o->save_path = sf_args_get(a, opts, "save-video");
    o->lat = sf_args_get(a, opts, "latents"), o->in = sf_args_get(a, opts, "in");
    if (!o->lat && !o->in && sf_fd_is_data(0)) o->in = "-"; /* `... | sf-decode -o v.y4m` */
    if (!!o->lat == !!o->in)
        return sf_fail(err, SF_E_ARG, "give exactly one of --latents FILE[:NAME] or --in URL (see --help)");
    if (!o->out_path && !o->save_path && !o->frames_url)
        return sf_fail(err, SF_E_ARG, "nothing to write: give -o VIDEO, --save-video FILE and/or --out URL");
    sf_video_kind kind;
    if (o->out_path && (s = sf_video_check(o->out_path, &kind, err)) != SF_OK) return s;
    /* the output folders, before the VAE loads and the latents arrive */
    if ((s = sf_check_out_dir("-o", o->out_path, 0, err)) || (s = sf_check_out_dir("--save-video", o->save_path, 0, err)))
        return s;
    if ((v = sf_args_get(a, opts, "vae"))) snprintf(o->vae_path, sizeof o->vae_path, "%s", v);
    else snprintf(o->vae_path, sizeof o->vae_path, "%s/Wan2.1_VAE.pth", o->sh.model_dir);
    /* the weights too, before the latents arrive (a decoder made from --height/--width loads them at once;
       one sized by the first latents would wait for them, on a silent wire for ever) */
    if (access(o->vae_path, R_OK) != 0) return sf_fail(err, SF_E_IO, "cannot open %s: %s", o->vae_path, strerror(errno));
    return SF_OK;
}

/* ---- the run ------------------------------------------------------------------------------ */

sf_status sf_decode_stage_run(const sf_decode_opts *o, sf_err *err) {
    run r = {0};
    sf_status s = SF_OK;
    r.cuda = o->sh.cuda;
    r.ordinal = o->sh.ordinal;
    r.wo.timeout_s = o->sh.wire_timeout;
    r.fps = (int)o->fps;
    r.threads = o->threads > 0 ? (int)o->threads : sf_cpu_count();
    r.bf16 = o->bf16;
    r.progress = o->sh.progress != SF_PROGRESS_NONE; /* a line per decoded block (bar and lines alike) */
    r.out_path = o->out_path;
    r.save_path = o->save_path;
    r.vae_path = o->vae_path;
    r.t0 = sf_now();
    if (o->frames_url) {
        if ((s = sf_check_out_dir("--out", o->frames_url, 0, err)) || (s = sf_wire_install_signals(err)) ||
            (s = sf_wire_open_writer(o->frames_url, &r.fo, err)))
            goto done;
        if (!(r.fm = malloc(sizeof *r.fm))) {
            s = sf_fail(err, SF_E_NOMEM, "out of memory");
            goto done;
        }
        sf_wire_msg_init(r.fm, SF_WIRE_TENSOR, "frames");
    }
    /* the size known up front: the VAE loads and makes its plans now, while the stages upstream work */
    if (o->height && (s = ensure_init(&r, -1, o->height / 8, o->width / 8, err)) != SF_OK) goto done;
    if (o->height) r.sized = 1, sf_trace("decode", "ready", -1, 0);
    s = o->lat ? run_file(&r, o->lat, err) : run_wire(&r, o->in, err);
    if (r.fo) { /* end (or the error) downstream, before the video file is finished */
        sf_err e2;
        if (s == SF_OK) s = sf_wire_send_end(r.fo, err);
        else if (!sf_wire_stopped()) sf_wire_send_error(r.fo, err->msg, &e2);
        sf_status s2 = sf_wire_close(&r.fo, s ? &e2 : err);
        if (s == SF_OK) s = s2;
    }
    if (s == SF_OK && r.vw) {
        int64_t nf = sf_video_frames(r.vw);
        s = sf_video_close(&r.vw, err);
        if (s == SF_OK) sf_trace("decode", "end", -1, nf);
        if (s == SF_OK) sf_info("wrote %s: %lld frames at %d fps", r.out_path, (long long)nf, r.fps);
    }
    if (s == SF_OK && r.save_path) {
        int64_t shape[5] = {1, r.video_n, 3, sf_decoder_frame_h(r.dec), sf_decoder_frame_w(r.dec)};
        sf_tensor_entry e = {"video", sf_tensor_view(r.video, SF_F32, 5, shape)};
        s = sf_safetensors_write(r.save_path, &e, 1, NULL, 0, err);
    }
done:
    if (r.fo) {
        sf_err e2;
        sf_wire_close(&r.fo, &e2);
    }
    sf_video_abort(&r.vw);
    sf_decoder_destroy(&r.dec);
    free(r.video);
    free(r.u8);
    free(r.fm);
    return s;
}
