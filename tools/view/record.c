/* record.c — sf-view --record (record.h). */
#include "tools/view/record.h"
#include "stages/decode/video.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sf_view_rec {
    char path[4096];
    double fps;
    sf_video_writer *w;
    int64_t h, wd; /* the recording's frame size, from its first message */
    int dropped;   /* a failure ended it: later frames are ignored */
};

sf_status sf_view_rec_new(const char *path, double fps, sf_view_rec **out, sf_err *err) {
    *out = NULL;
    sf_video_kind k;
    sf_status s = sf_video_check(path, &k, err);
    if (!s) s = sf_check_out_dir("--record", path, 0, err); /* its folder exists and is writable: said now */
    if (s) return s;
    if (strlen(path) >= sizeof((sf_view_rec *)0)->path) return sf_fail(err, SF_E_ARG, "--record: path too long");
    sf_view_rec *r = calloc(1, sizeof *r);
    if (!r) return sf_fail(err, SF_E_NOMEM, "out of memory");
    snprintf(r->path, sizeof r->path, "%s", path);
    r->fps = fps;
    *out = r;
    return SF_OK;
}

static void drop(sf_view_rec *r, const char *why) {
    sf_warn("--record %s: %s; recording stopped (the view goes on)", r->path, why);
    sf_video_abort(&r->w);
    r->dropped = 1;
}

void sf_view_rec_frames(sf_view_rec *r, const sf_wire_msg *m, const void *payload) {
    if (!r || r->dropped) return;
    const int64_t n = m->shape[0], H = m->shape[1], W = m->shape[2];
    sf_err e = {{0}};
    if (!r->w) {
        const double fps = r->fps > 0 ? r->fps : (double)sf_wire_meta_int(m, "fps", 16);
        if (sf_video_open(r->path, (int)W, (int)H, fps >= 1 && fps <= 1000 ? (int)(fps + 0.5) : 16, &r->w, &e)) {
            drop(r, e.msg);
            return;
        }
        r->h = H, r->wd = W;
    }
    if (H != r->h || W != r->wd) {
        char why[128];
        snprintf(why, sizeof why, "frames of %lldx%lld after %lldx%lld", (long long)W, (long long)H, (long long)r->wd,
                 (long long)r->h);
        drop(r, why);
        return;
    }
    for (int64_t i = 0; i < n; i++)
        if (sf_video_write(r->w, (const uint8_t *)payload + i * H * W * 3, &e)) {
            drop(r, e.msg);
            return;
        }
}

int64_t sf_view_rec_count(const sf_view_rec *r) {
    return !r || r->dropped ? -1 : r->w ? sf_video_frames(r->w) : 0;
}

sf_status sf_view_rec_close(sf_view_rec **rp, sf_err *err) {
    sf_view_rec *r = rp ? *rp : NULL;
    sf_status s = SF_OK;
    if (!r) return SF_OK;
    if (r->w) {
        const int64_t n = sf_video_frames(r->w);
        if ((s = sf_video_close(&r->w, err)) == SF_OK) sf_info("recorded %lld frames to %s", (long long)n, r->path);
    } else if (!r->dropped) {
        sf_info("--record %s: no frame came, nothing written", r->path);
    }
    free(r);
    *rp = NULL;
    return s;
}
