/* view.c — sf-view's HTTP server, MJPEG stream and prompt box (see view.h).
 * Tested by tests/unit/test_view.c and tests/bats/live.bats. */
#define _POSIX_C_SOURCE 200809L
#include "tools/view/view.h"
#include "stages/encode/serve.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <linux/sockios.h> /* SIOCOUTQ */
#include <linux/tcp.h>     /* struct tcp_info with tcpi_bytes_acked (glibc's netinet/tcp.h lacks it) */
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <turbojpeg.h>

#define MAX_BODY (16 << 10)
#define BOUNDARY "sfpipeframe"
#define SPARE_CONNS 8     /* connections beyond the stream's max_viewers: the page, status, prompts */
#define CLOSING_CONNS 16  /* idle connections shut down to make room and not closed yet (MHD's count) */

/* One HTTP connection (from MHD's connection notifications), so that an idle one can make room. */
typedef struct conn {
    struct conn *prev, *next;
    int fd;
    int busy;      /* a request is being answered (a stream viewer always is) */
    int closing;   /* shut down to make room, not closed yet */
    double t_idle; /* when it last became idle: connected, or its last request answered */
} conn;

struct sf_view {
    sf_view_opts o;
    struct MHD_Daemon *d;
    tjhandle tj;
    pthread_mutex_t mu;      /* everything below */
    pthread_cond_t cv;       /* a new frame, or the end */
    unsigned char *jpg;      /* the latest frame (tjAlloc'd) */
    size_t jpg_len;
    uint64_t seq;            /* frames published */
    char prompt[4096], pending[4096];
    char weights[512], decoder[320]; /* what made the frames: sf-denoise's weights (fp8 said), sf-decode's decoder */
    int64_t block, frame;
    int64_t gen_block, gen_step, n_steps; /* the generator's progress ("progress" messages) */
    double fps, video_fps, latency_ms, t_post, switch_ms;
    double gen_fps;          /* the generator's own rate (its blocks' meta gen_fps; 0: not said) */
    int64_t recorded;        /* frames --record wrote (-1: not recording) */
    double shown[32];        /* when the last 32 frames were shown (a ring), for the measured rate */
    int switches, viewers, ever_viewed, ended, stopping;
    double t_left;           /* when the last viewer left */
    double next_due;         /* when the next frame may be shown (playback pacing) */
    int64_t lag_block, lag_first; /* the block being played and its first frame (sf_view_play's own) */
    pthread_mutex_t enc_mu;  /* one prompt request at a time on the encoder's REQ socket (others: 503) */
    sf_encode_client *enc;
    char clock[64];          /* sf_clock_id: frames whose meta clock matches have a comparable t_sent */
    double base_delay;       /* another clock's t_sent: the least (arrival - t_sent) seen (play's only) */
    int have_base;
    pthread_t stop_th;       /* sf_view_stop_route_async's */
    int stop_started;
    conn *conns;             /* every connection MHD holds */
    int n_open;              /* those not closing */
};

/* ------------------------------------------------------------------ input checks */

/* cJSON decodes an escaped NUL (\u0000) into its C string, where strlen stops: the text after it would
 * pass every check unseen (and be dropped). cJSON keeps no decoded length, so the escape is looked for
 * in the raw JSON (which cJSON has accepted: backslashes only occur inside strings, in pairs or escapes). */
static int has_nul_escape(const char *b, size_t n) {
    for (size_t i = 0; i + 5 < n; i++) {
        if (b[i] != '\\') continue;
        if (!memcmp(b + i + 1, "u0000", 5)) return 1;
        i++; /* skip the escaped character: in \\\\u0000 the pair is a backslash, then text */
    }
    return 0;
}

sf_status sf_view_parse_prompt(const char *body, size_t len, char *out, size_t n, int *recache, sf_err *err) {
    *recache = -1;
    if (len > MAX_BODY) return sf_fail(err, SF_E_ARG, "request body too large");
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    while (j && end < body + len && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r')) end++;
    if (!j || !cJSON_IsObject(j) || end != body + len) { /* nothing but white space after the object */
        cJSON_Delete(j);
        return sf_fail(err, SF_E_ARG, "expected a JSON object {\"prompt\": TEXT}");
    }
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "prompt"), *r = cJSON_GetObjectItemCaseSensitive(j, "recache");
    sf_status s = SF_OK;
    if (!cJSON_IsString(p) || !p->valuestring) s = sf_fail(err, SF_E_ARG, "\"prompt\" must be a string");
    else if (r && !cJSON_IsBool(r)) s = sf_fail(err, SF_E_ARG, "\"recache\" must be true or false");
    /* a NUL, raw (cJSON takes it inside a string) or escaped, is a control character like the others */
    else if (memchr(body, 0, len) || has_nul_escape(body, len))
        s = sf_fail(err, SF_E_ARG, "the prompt has a control character (NUL)");
    size_t pl = s ? 0 : strlen(p->valuestring);
    if (!s && (pl < 1 || pl > SF_VIEW_MAX_PROMPT || pl + 1 > n))
        s = sf_fail(err, SF_E_ARG, "the prompt must have 1..%d bytes", SF_VIEW_MAX_PROMPT);
    for (size_t i = 0; !s && i < pl;) { /* valid UTF-8, no control character but tab (sf_unicode_is_ctl) */
        uint32_t cp = 0;
        int l = sf_utf8_decode(p->valuestring + i, pl - i, &cp);
        if (!l) s = sf_fail(err, SF_E_ARG, "the prompt is not valid UTF-8");
        else if (cp != '\t' && sf_unicode_is_ctl(cp)) s = sf_fail(err, SF_E_ARG, "the prompt has a control character");
        i += (size_t)l;
    }
    size_t k = 0; /* "" or only blanks is no prompt */
    while (!s && k < pl && (p->valuestring[k] == ' ' || p->valuestring[k] == '\t')) k++;
    if (!s && k == pl) s = sf_fail(err, SF_E_ARG, "the prompt is empty");
    if (!s) {
        memcpy(out, p->valuestring, pl + 1);
        if (r) *recache = cJSON_IsTrue(r);
    }
    cJSON_Delete(j);
    return s;
}

/* ------------------------------------------------------------------ state */

char *sf_view_status_json(sf_view *v) {
    cJSON *j = cJSON_CreateObject();
    if (!j) return NULL;
    pthread_mutex_lock(&v->mu);
    cJSON_AddStringToObject(j, "prompt", v->prompt);
    cJSON_AddStringToObject(j, "pending", v->pending);
    cJSON_AddNumberToObject(j, "block", (double)v->block);
    cJSON_AddNumberToObject(j, "frame", (double)v->frame);
    cJSON_AddNumberToObject(j, "gen_block", (double)v->gen_block);
    cJSON_AddNumberToObject(j, "gen_step", (double)v->gen_step);
    cJSON_AddNumberToObject(j, "n_steps", (double)v->n_steps);
    cJSON_AddNumberToObject(j, "fps", v->fps);
    cJSON_AddNumberToObject(j, "video_fps", v->video_fps);
    cJSON_AddNumberToObject(j, "gen_fps", v->gen_fps);
    cJSON_AddStringToObject(j, "weights", v->weights);
    cJSON_AddStringToObject(j, "decoder", v->decoder);
    cJSON_AddNumberToObject(j, "recorded", (double)v->recorded);
    cJSON_AddNumberToObject(j, "latency_ms", v->latency_ms);
    cJSON_AddNumberToObject(j, "switches", v->switches);
    cJSON_AddNumberToObject(j, "switch_latency_ms", v->switch_ms);
    cJSON_AddNumberToObject(j, "viewers", v->viewers);
    cJSON_AddBoolToObject(j, "ended", v->ended);
    cJSON_AddBoolToObject(j, "can_prompt", v->o.encoder != NULL && !v->ended);
    pthread_mutex_unlock(&v->mu);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

static void sleep_until(double t) {
    sf_sleep(t - sf_now());
}

sf_status sf_view_play(sf_view *v, const sf_wire_msg *m, const void *payload, sf_err *err) {
    if (m->dtype != SF_U8 || m->ndim != 4 || m->shape[3] != 3 || m->shape[1] < 1 || m->shape[2] < 1 ||
        m->shape[1] > 16384 || m->shape[2] > 16384)
        return sf_fail(err, SF_E_SHAPE, "frames message must be u8 [n, H, W, 3]");
    const int64_t n = m->shape[0], H = m->shape[1], W = m->shape[2];
    const char *pr = sf_wire_meta_str(m, "prompt"), *clk = sf_wire_meta_str(m, "clock");
    const char *wt = sf_wire_meta_str(m, "weights"), *dec = sf_wire_meta_str(m, "decoder");
    const double t_sent = sf_wire_meta_double(m, "t_sent", 0.0);
    const double fps = v->o.fps > 0 ? v->o.fps : (double)sf_wire_meta_int(m, "fps", 16);
    /* t_sent is sf-denoise's sf_now(): comparable with ours only on the same boot of the same host (meta
     * clock). From another host its offset is unknown, so the lag counts from the least delay seen (the
     * freshest block: the offset plus the pipeline's shortest transit), and the latency is not shown. */
    const int same_clock = t_sent > 0 && clk && v->clock[0] && !strcmp(clk, v->clock);
    if (t_sent > 0 && !same_clock && (!v->have_base || sf_now() - t_sent < v->base_delay))
        v->base_delay = sf_now() - t_sent, v->have_base = 1;
    const double base = same_clock ? 0 : v->base_delay;
    /* a block comes as one message per latent frame (sf-decode), each with the block's t_sent: frame k of
     * the block is due k/fps after the block's first, so its lag counts from there */
    const int64_t blk = sf_wire_meta_int(m, "block", -1), first = sf_wire_meta_int(m, "start_frame", 0);
    if (blk != v->lag_block || first < v->lag_first) v->lag_block = blk, v->lag_first = first;
    const int64_t k0 = first - v->lag_first;
    const double gf = sf_wire_meta_rate(m, "gen_fps"); /* a peer's number: 0 (not shown) unless sane */
    for (int64_t i = 0; i < n; i++) {
        unsigned char *jpg = NULL;
        unsigned long jl = 0;
        const unsigned char *rgb = (const unsigned char *)payload + i * H * W * 3;
        if (tjCompress2(v->tj, rgb, (int)W, 0, (int)H, TJPF_RGB, &jpg, &jl, TJSAMP_420, v->o.quality, 0) != 0) {
            tjFree(jpg);
            return sf_fail(err, SF_E_IO, "JPEG: %s", tjGetErrorStr2(v->tj));
        }
        /* playback at the video's rate: a block's frames arrive together and are shown 1/fps apart */
        double now = sf_now();
        if (v->next_due < now) v->next_due = now;
        /* live, not buffered: a frame already later than max_lag behind its block's departure is shown
         * at once, so the stages' queues drain and the lag (and a prompt switch's delay) stays small */
        if (!(t_sent > 0 && now - t_sent - base - (double)(k0 + i) / fps > v->o.max_lag)) sleep_until(v->next_due);
        else v->next_due = now;
        v->next_due += 1.0 / (fps > 0 ? fps : 16);
        now = sf_now();
        pthread_mutex_lock(&v->mu);
        tjFree(v->jpg);
        v->jpg = jpg, v->jpg_len = jl;
        v->seq++;
        /* the measured rate: frames shown over the last (up to) 32 frames' span, at least 0.5 s of it */
        v->shown[v->seq % 32] = now;
        uint64_t k = v->seq < 32 ? v->seq : 32;
        double span = now - v->shown[(v->seq - k + 1) % 32];
        v->fps = k > 1 ? (double)(k - 1) / (span > 0.5 ? span : 0.5) : 0;
        v->video_fps = fps;
        v->block = sf_wire_meta_int(m, "block", -1);
        v->frame = sf_wire_meta_int(m, "start_frame", 0) + i;
        if (k0 + i == 0) v->latency_ms = same_clock ? (now - t_sent) * 1e3 : -1; /* denoise → decode → screen */
        if (k0 + i == 0 && gf > 0) v->gen_fps = gf;
        if (wt) snprintf(v->weights, sizeof v->weights, "%s", wt); /* a peer's text: JSON-escaped, shown as text */
        if (dec) snprintf(v->decoder, sizeof v->decoder, "%s", dec);
        if (pr && strcmp(pr, v->prompt) != 0) { /* a block of another prompt: the switch is on screen */
            if (v->prompt[0]) v->switches++;
            if (v->pending[0] && !strcmp(pr, v->pending)) {
                v->switch_ms = (now - v->t_post) * 1e3;
                v->pending[0] = 0;
            }
            snprintf(v->prompt, sizeof v->prompt, "%s", pr);
        }
        pthread_cond_broadcast(&v->cv);
        pthread_mutex_unlock(&v->mu);
    }
    return SF_OK;
}

void sf_view_progress(sf_view *v, const sf_wire_msg *m) {
    pthread_mutex_lock(&v->mu);
    v->gen_block = sf_wire_meta_int(m, "block", -1);
    v->gen_step = sf_wire_meta_int(m, "step", -1);
    v->n_steps = sf_wire_meta_int(m, "n_steps", 0);
    pthread_mutex_unlock(&v->mu);
}

void sf_view_set_recorded(sf_view *v, int64_t frames) {
    pthread_mutex_lock(&v->mu);
    v->recorded = frames;
    pthread_mutex_unlock(&v->mu);
}

void sf_view_mark_ended(sf_view *v) {
    pthread_mutex_lock(&v->mu);
    v->ended = 1;
    pthread_cond_broadcast(&v->cv);
    pthread_mutex_unlock(&v->mu);
}

int sf_view_viewers(sf_view *v, double *idle_s) {
    pthread_mutex_lock(&v->mu);
    int n = v->viewers;
    *idle_s = v->ever_viewed && !n ? sf_now() - v->t_left : -1;
    pthread_mutex_unlock(&v->mu);
    return n;
}

/* The prompt client, connected on first use (the server may still be loading when the view starts).
 * Call with enc_mu held. A request without its reply in encoder_timeout does not break it (the client
 * resets its REQ socket, see serve.c). */
static sf_status encoder(sf_view *v, sf_err *err) {
    if (v->enc) return SF_OK;
    if (!v->o.encoder) return sf_fail(err, SF_E_ARG, "no encoder server: prompts cannot be sent (--encoder URL)");
    return sf_encode_client_open(v->o.encoder, v->o.encoder_timeout, &v->enc, err);
}

/* On a connection of its own: neither waits for a prompt request in flight (enc_mu) nor shares its socket.
 * The server answers it after the request it is busy with, if any. */
sf_status sf_view_stop_route(sf_view *v, sf_err *err) {
    sf_encode_client *c = NULL;
    if (!v->o.encoder) return sf_fail(err, SF_E_ARG, "no encoder server (--encoder URL)");
    sf_status s = sf_encode_client_open(v->o.encoder, v->o.encoder_timeout, &c, err);
    if (!s) s = sf_encode_client_stop_route(c, err);
    sf_encode_client_close(&c);
    return s;
}

static void *stop_route_main(void *arg) {
    sf_err e = {{0}};
    if (sf_view_stop_route(arg, &e)) sf_warn("%s", e.msg);
    return NULL;
}

void sf_view_stop_route_async(sf_view *v) {
    if (v->stop_started) return;
    if (pthread_create(&v->stop_th, NULL, stop_route_main, v) == 0) v->stop_started = 1;
    else stop_route_main(v); /* no thread: here, then */
}

/* ------------------------------------------------------------------ HTTP */

/* ------------------------------------------------------------------ connections */

/* Idle connections (nothing sent, an unfinished request, a keep-alive between requests) cannot lock
 * others out: MHD drops one that moves no byte for stall_timeout, and when max_viewers + SPARE_CONNS
 * are open a new one takes the place of the one idle longest (shut down; it closes as if its client
 * had), or is refused when none is idle. Every client of a loopback server has the same address, so a
 * per-address limit (MHD_OPTION_PER_IP_CONNECTION_LIMIT) would not tell an attacker from the page. */
static void on_connection(void *cls, struct MHD_Connection *cn, void **ctx, enum MHD_ConnectionNotificationCode t) {
    sf_view *v = cls;
    conn *c = *ctx;
    pthread_mutex_lock(&v->mu);
    if (t == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(cn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (ci && (c = calloc(1, sizeof *c))) { /* else untracked: still within MHD's own limit */
            c->fd = ci->connect_fd, c->t_idle = sf_now(), c->next = v->conns;
            if (v->conns) v->conns->prev = c;
            v->conns = c, v->n_open++;
        }
        *ctx = c;
    } else if (c) { /* closed (the socket is still open: MHD closes it after this call) */
        if (c->prev) c->prev->next = c->next;
        else v->conns = c->next;
        if (c->next) c->next->prev = c->prev;
        if (!c->closing) v->n_open--;
        free(c);
        *ctx = NULL;
    }
    pthread_mutex_unlock(&v->mu);
}

/* MHD's accept policy: room for one more, made by shutting the longest-idle connection down if need be.
 * Runs on MHD's listening thread, which also closes connections: a tracked fd is still open here. */
static enum MHD_Result admit(void *cls, const struct sockaddr *addr, socklen_t len) {
    (void)addr, (void)len;
    sf_view *v = cls;
    enum MHD_Result r = MHD_YES;
    pthread_mutex_lock(&v->mu);
    if (v->n_open >= v->o.max_viewers + SPARE_CONNS) {
        conn *old = NULL;
        for (conn *c = v->conns; c; c = c->next)
            if (!c->busy && !c->closing && (!old || c->t_idle < old->t_idle)) old = c;
        if (old) {
            shutdown(old->fd, SHUT_RDWR); /* its thread reads the end and closes it */
            old->closing = 1, v->n_open--;
        } else {
            r = MHD_NO;
        }
    }
    pthread_mutex_unlock(&v->mu);
    return r;
}

static void conn_set_busy(sf_view *v, struct MHD_Connection *cn, int busy) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(cn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    conn *c = ci ? ci->socket_context : NULL;
    if (!c) return;
    pthread_mutex_lock(&v->mu);
    c->busy = busy;
    if (!busy) c->t_idle = sf_now();
    pthread_mutex_unlock(&v->mu);
}

/* MHD counts a connection's idle time from the last byte it moved, and checks it after a content
 * reader returns: the time the stream's reader waited for the next frame (a slow block, a paused
 * generator) would count as the viewer's idleness, and the viewer be dropped with the frame unsent.
 * Restart the count (MHD restarts it only when the timeout changes from 0). A handler that waits (a
 * prompt for the encoder) needs nothing: MHD_queue_response restarts it. */
static void restart_idle_clock(sf_view *v, struct MHD_Connection *cn) {
    MHD_set_connection_option(cn, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
    MHD_set_connection_option(cn, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned)ceil(v->o.stall_timeout));
}

typedef struct mjpeg {   /* one viewer of /stream.mjpg */
    sf_view *v;
    struct MHD_Connection *cn;
    uint64_t seq;        /* last frame sent */
    unsigned char *buf;  /* the part being sent: header + JPEG + CRLF */
    size_t len, off, cap;
    int fd;              /* its socket, or -1 */
    uint64_t acked;      /* bytes the viewer had acknowledged when last looked at */
    double t_progress;   /* when it last took some (or had nothing waiting) */
} mjpeg;

/* 1 when the viewer has taken nothing for stall_timeout while bytes wait for it: none of what was sent
 * was acknowledged (TCP_INFO) and the socket's queue never emptied (SIOCOUTQ). A page that reads,
 * however slowly, makes progress; an <img> of another site that never reads does not. While the queue
 * still has room this is looked at per frame; once it is full MHD's own timeout (stall_timeout, for
 * every connection) ends it. */
static int viewer_stalled(mjpeg *c, double now) {
    struct tcp_info ti;
    socklen_t tl = sizeof ti;
    int queued = 0;
    memset(&ti, 0, sizeof ti);
    if (c->fd < 0 || getsockopt(c->fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) != 0 || ioctl(c->fd, SIOCOUTQ, &queued) != 0)
        return 0;
    if (queued == 0 || ti.tcpi_bytes_acked != c->acked) {
        c->acked = ti.tcpi_bytes_acked;
        c->t_progress = now;
        return 0;
    }
    return now - c->t_progress > c->v->o.stall_timeout;
}

static ssize_t mjpeg_read(void *cls, uint64_t pos, char *out, size_t max) {
    (void)pos;
    mjpeg *c = cls;
    sf_view *v = c->v;
    if (c->off == c->len) { /* wait for a newer frame */
        pthread_mutex_lock(&v->mu);
        int stalled = 0;
        while (v->seq == c->seq && !v->ended && !v->stopping && !(stalled = viewer_stalled(c, sf_now()))) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 250 * 1000 * 1000;
            if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
            pthread_cond_timedwait(&v->cv, &v->mu, &ts);
        }
        if (!stalled && !v->stopping && v->seq != c->seq) stalled = viewer_stalled(c, sf_now());
        if (stalled) {
            pthread_mutex_unlock(&v->mu);
            sf_info("a viewer took nothing for %g s: dropped (--stall-timeout)", v->o.stall_timeout);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        if (v->stopping || v->seq == c->seq) {
            pthread_mutex_unlock(&v->mu);
            return v->stopping ? MHD_CONTENT_READER_END_WITH_ERROR : MHD_CONTENT_READER_END_OF_STREAM;
        }
        char hdr[128];
        int hl = snprintf(hdr, sizeof hdr, "--" BOUNDARY "\r\nContent-Type: image/jpeg\r\nContent-Length: %zu\r\n\r\n",
                          v->jpg_len);
        size_t need = (size_t)hl + v->jpg_len + 2;
        if (need > c->cap) {
            unsigned char *nb = realloc(c->buf, need);
            if (!nb) {
                pthread_mutex_unlock(&v->mu);
                return MHD_CONTENT_READER_END_WITH_ERROR;
            }
            c->buf = nb, c->cap = need;
        }
        memcpy(c->buf, hdr, (size_t)hl);
        memcpy(c->buf + hl, v->jpg, v->jpg_len);
        memcpy(c->buf + hl + v->jpg_len, "\r\n", 2);
        c->len = need, c->off = 0, c->seq = v->seq;
        pthread_mutex_unlock(&v->mu);
        restart_idle_clock(v, c->cn); /* waiting for the frame was not the viewer's idleness */
    }
    size_t k = c->len - c->off < max ? c->len - c->off : max;
    memcpy(out, c->buf + c->off, k);
    c->off += k;
    return (ssize_t)k;
}

static void viewer_left(sf_view *v) {
    pthread_mutex_lock(&v->mu);
    v->viewers--;
    v->t_left = sf_now();
    pthread_mutex_unlock(&v->mu);
}

static void mjpeg_free(void *cls) {
    mjpeg *c = cls;
    viewer_left(c->v);
    free(c->buf);
    free(c);
}

/* Every response's headers, the stream's included. */
static void add_headers(struct MHD_Response *r, const char *type) {
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline' 'self'; "
                                                          "style-src 'unsafe-inline'; frame-ancestors 'none'");
    MHD_add_response_header(r, "X-Frame-Options", "DENY"); /* no other page may frame the prompt box */
    /* no other site may load the stream or a frame (an <img> of this server on any page held a viewer slot) */
    MHD_add_response_header(r, "Cross-Origin-Resource-Policy", "same-origin");
}

static enum MHD_Result send_mem(struct MHD_Connection *cn, unsigned code, const char *type, const void *p, size_t n) {
    struct MHD_Response *r = MHD_create_response_from_buffer(n, (void *)p, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    add_headers(r, type);
    enum MHD_Result ret = MHD_queue_response(cn, code, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_json_error(struct MHD_Connection *cn, unsigned code, const char *msg) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "error", msg);
    char *s = cJSON_PrintUnformatted(j);
    enum MHD_Result r = send_mem(cn, code, "application/json", s ? s : "{}", s ? strlen(s) : 2);
    free(s);
    cJSON_Delete(j);
    return r;
}

typedef struct body {    /* a POST body being received */
    char *p;
    size_t n;
    int too_big;
} body;

static void on_completed(void *cls, struct MHD_Connection *cn, void **con_cls, enum MHD_RequestTerminationCode t) {
    (void)t;
    conn_set_busy(cls, cn, 0); /* answered: idle until its next request */
    body *b = *con_cls;
    if (b) free(b->p);
    free(b);
    *con_cls = NULL;
}

/* POST /prompt: validate, ask the encoder (cache hits are instant), which forwards to sf-denoise. */
static enum MHD_Result post_prompt(sf_view *v, struct MHD_Connection *cn, const body *b) {
    char text[SF_VIEW_MAX_PROMPT + 1];
    int recache;
    sf_err err = {{0}};
    if (b->too_big) return send_json_error(cn, MHD_HTTP_CONTENT_TOO_LARGE, "request body too large");
    if (sf_view_parse_prompt(b->p ? b->p : "", b->n, text, sizeof text, &recache, &err))
        return send_json_error(cn, MHD_HTTP_BAD_REQUEST, err.msg);
    sf_encoded res;
    double t0 = sf_now();
    /* one request at a time (one REQ socket); another POST meanwhile is told at once, not queued for
     * up to --encoder-timeout each while it holds a connection */
    if (pthread_mutex_trylock(&v->enc_mu) != 0)
        return send_json_error(cn, MHD_HTTP_SERVICE_UNAVAILABLE, "busy: the previous prompt is still being encoded, "
                                                                 "try again in a moment");
    sf_status s = encoder(v, &err);
    if (s) {
        pthread_mutex_unlock(&v->enc_mu);
        return send_json_error(cn, MHD_HTTP_SERVICE_UNAVAILABLE, err.msg);
    }
    sf_encode_client_route(v->enc, 1, recache);
    s = sf_encode_client_run(v->enc, text, strlen(text), v->o.text_len, -1, &res, &err);
    pthread_mutex_unlock(&v->enc_mu);
    if (s) {
        sf_warn("prompt request failed: %s", err.msg);
        return send_json_error(cn, MHD_HTTP_BAD_GATEWAY, err.msg);
    }
    pthread_mutex_lock(&v->mu);
    snprintf(v->pending, sizeof v->pending, "%s", res.cleaned);
    v->t_post = t0;
    v->switch_ms = -1;
    pthread_mutex_unlock(&v->mu);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "prompt", res.cleaned);
    cJSON_AddBoolToObject(j, "from_cache", res.from_cache);
    cJSON_AddNumberToObject(j, "encode_ms", (sf_now() - t0) * 1e3);
    char *js = cJSON_PrintUnformatted(j);
    enum MHD_Result r = send_mem(cn, MHD_HTTP_OK, "application/json", js ? js : "{}", js ? strlen(js) : 2);
    sf_info("prompt queued: \"%.200s\"", res.cleaned);
    free(js);
    cJSON_Delete(j);
    sf_encoded_free(&res);
    return r;
}

/* DNS rebinding: a web page on a name its owner controls can re-point that name at 127.0.0.1 and then
 * read this server as its own origin (frames, status) and post prompts (its Origin matches its Host).
 * Its requests carry that name as Host, so only names that cannot be re-pointed are served: IP literals,
 * "localhost" and *.localhost (browsers resolve those to loopback themselves), and --allow-host's. A
 * request without Host (HTTP/1.0 tools; browsers always send one) is served. */
int sf_view_host_ok(const char *host, const char *allow) {
    if (!host) return 1;
    size_t n = strlen(host);
    if (n == 0 || n > 255) return 0;
    char h[256];
    if (host[0] == '[') { /* [v6]:port */
        const char *e = strchr(host, ']');
        if (!e || (e[1] && e[1] != ':')) return 0;
        size_t l = (size_t)(e - host - 1);
        memcpy(h, host + 1, l), h[l] = 0;
        struct in6_addr a6;
        return inet_pton(AF_INET6, h, &a6) == 1;
    }
    const char *colon = strchr(host, ':');
    size_t l = colon ? (size_t)(colon - host) : n;
    if (colon && (!colon[1] || strspn(colon + 1, "0123456789") != strlen(colon + 1))) return 0;
    memcpy(h, host, l), h[l] = 0;
    if (l && h[l - 1] == '.') h[--l] = 0; /* "localhost." is "localhost" */
    struct in_addr a4;
    if (l == 0) return 0;
    if (inet_pton(AF_INET, h, &a4) == 1) return 1;
    /* names compare without regard to case */
    if (!strcasecmp(h, "localhost") || (l > 10 && !strcasecmp(h + l - 10, ".localhost"))) return 1;
    for (const char *p = allow; p && *p;) { /* comma-separated names */
        size_t k = strcspn(p, ",");
        if (k == l && !strncasecmp(p, h, l)) return 1;
        p += k + (p[k] == ',');
    }
    return 0;
}

/* A POST must come from this page: an Origin header, when present, must name the Host it was sent to. */
static int same_origin(struct MHD_Connection *cn) {
    const char *origin = MHD_lookup_connection_value(cn, MHD_HEADER_KIND, "Origin");
    const char *host = MHD_lookup_connection_value(cn, MHD_HEADER_KIND, "Host");
    if (!origin) return 1;
    if (!host || strncmp(origin, "http://", 7) != 0) return 0;
    return strcmp(origin + 7, host) == 0;
}

static enum MHD_Result count_host(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
    (void)kind, (void)value;
    if (key && !strcasecmp(key, "Host")) ++*(int *)cls;
    return MHD_YES;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *cn, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_n, void **con_cls) {
    (void)version;
    sf_view *v = cls;
    /* a POST's headers and body are still coming in: the connection stays idle (it can make room) */
    if (strcmp(method, "POST") != 0 || (*con_cls && !*upload_n)) conn_set_busy(v, cn, 1);
    int n_host = 0; /* RFC 9112 §3.2: more than one Host is a 400 (the check below would see the first only) */
    MHD_get_connection_values(cn, MHD_HEADER_KIND, count_host, &n_host);
    if (n_host > 1) return send_json_error(cn, MHD_HTTP_BAD_REQUEST, "more than one Host header");
    const char *host = MHD_lookup_connection_value(cn, MHD_HEADER_KIND, "Host");
    if (!sf_view_host_ok(host, v->o.allow_hosts)) { /* answered at the headers: a body is never read */
        sf_warn("request with Host '%.100s' refused (not this machine's name; --allow-host adds one)", host);
        return send_json_error(cn, MHD_HTTP_FORBIDDEN, "this Host is not served: start sf-view with --allow-host NAME");
    }
    if (!strcmp(method, "POST")) {
        body *b = *con_cls;
        if (!b) { /* first call: headers only */
            if (!(b = calloc(1, sizeof *b))) return MHD_NO;
            *con_cls = b;
            return MHD_YES;
        }
        if (*upload_n) { /* a chunk of the body */
            if (!b->too_big && b->n + *upload_n <= MAX_BODY) {
                char *np = realloc(b->p, b->n + *upload_n + 1);
                if (!np) return MHD_NO;
                memcpy(np + b->n, upload, *upload_n);
                b->p = np, b->n += *upload_n;
                b->p[b->n] = 0;
            } else {
                b->too_big = 1;
            }
            *upload_n = 0;
            return MHD_YES;
        }
        if (strcmp(url, "/prompt") != 0) return send_json_error(cn, MHD_HTTP_NOT_FOUND, "not found");
        if (!same_origin(cn)) return send_json_error(cn, MHD_HTTP_FORBIDDEN, "cross-origin request refused");
        return post_prompt(v, cn, b);
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return send_json_error(cn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed");
    if (!strcmp(url, "/")) return send_mem(cn, MHD_HTTP_OK, "text/html; charset=utf-8", sf_view_page, strlen(sf_view_page));
    if (!strcmp(url, "/status")) {
        char *s = sf_view_status_json(v);
        enum MHD_Result r = s ? send_mem(cn, MHD_HTTP_OK, "application/json", s, strlen(s)) : MHD_NO;
        free(s);
        return r;
    }
    if (!strcmp(url, "/frame.jpg")) {
        pthread_mutex_lock(&v->mu);
        enum MHD_Result r = v->jpg ? send_mem(cn, MHD_HTTP_OK, "image/jpeg", v->jpg, v->jpg_len)
                                   : send_json_error(cn, MHD_HTTP_SERVICE_UNAVAILABLE, "no frame yet");
        pthread_mutex_unlock(&v->mu);
        return r;
    }
    if (!strcmp(url, "/stream.mjpg")) {
        pthread_mutex_lock(&v->mu); /* at most max_viewers: the connections left serve the page, status, prompts */
        int full = v->viewers >= v->o.max_viewers;
        if (!full) v->viewers++, v->ever_viewed = 1;
        pthread_mutex_unlock(&v->mu);
        if (full) return send_json_error(cn, MHD_HTTP_SERVICE_UNAVAILABLE, "too many viewers (sf-view --max-viewers)");
        mjpeg *c = calloc(1, sizeof *c);
        struct MHD_Response *r = c ? MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, mjpeg_read, c,
                                                                       mjpeg_free)
                                   : NULL;
        if (!r) {
            free(c);
            viewer_left(v);
            return MHD_NO;
        }
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(cn, MHD_CONNECTION_INFO_CONNECTION_FD);
        c->v = v, c->cn = cn, c->fd = ci ? ci->connect_fd : -1, c->t_progress = sf_now();
        add_headers(r, "multipart/x-mixed-replace; boundary=" BOUNDARY);
        enum MHD_Result ret = MHD_queue_response(cn, MHD_HTTP_OK, r);
        MHD_destroy_response(r);
        return ret;
    }
    return send_json_error(cn, MHD_HTTP_NOT_FOUND, "not found");
}

/* ------------------------------------------------------------------ life */

sf_status sf_view_new(const sf_view_opts *o, sf_view **out, sf_err *err) {
    *out = NULL;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)o->port);
    if (o->port < 1 || o->port > 65535) return sf_fail(err, SF_E_ARG, "--port must be in 1..65535");
    if (inet_pton(AF_INET, o->bind ? o->bind : "127.0.0.1", &sa.sin_addr) != 1)
        return sf_fail(err, SF_E_ARG, "--bind: '%s' is not an IPv4 address", o->bind);
    if (o->quality < 1 || o->quality > 100) return sf_fail(err, SF_E_ARG, "--quality must be in 1..100");
    sf_view *v = calloc(1, sizeof *v);
    if (!v) return sf_fail(err, SF_E_NOMEM, "out of memory");
    v->o = *o;
    if (!(v->o.max_viewers > 0)) v->o.max_viewers = 16;
    if (!(v->o.encoder_timeout > 0)) v->o.encoder_timeout = 300; /* a cold umT5-XXL on a CPU takes minutes */
    if (!(v->o.stall_timeout > 0)) v->o.stall_timeout = 10;
    sf_clock_id(v->clock, sizeof v->clock);
    v->switch_ms = v->latency_ms = -1;
    v->block = v->gen_block = v->gen_step = -1;
    v->lag_block = -2; /* no block played yet */
    v->recorded = -1;
    pthread_mutex_init(&v->mu, NULL);
    pthread_cond_init(&v->cv, NULL);
    pthread_mutex_init(&v->enc_mu, NULL);
    sf_status s = SF_OK;
    if (!(v->tj = tjInitCompress())) s = sf_fail(err, SF_E_NOMEM, "cannot start the JPEG encoder");
    if (!s) {
        /* the stream takes at most max_viewers (then 503): SPARE_CONNS stay for everything else (admit);
         * MHD's own limit leaves room for the idle ones being closed to make room */
        v->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, (uint16_t)o->port, admit,
                                v, handle, v, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_LIMIT,
                                (unsigned)(v->o.max_viewers + SPARE_CONNS + CLOSING_CONNS), MHD_OPTION_NOTIFY_CONNECTION,
                                on_connection, v, MHD_OPTION_NOTIFY_COMPLETED, on_completed, v,
                                /* a connection that moves no byte (an idle client, a stalled viewer) */
                                MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)ceil(v->o.stall_timeout), MHD_OPTION_END);
        if (!v->d)
            s = sf_fail(err, SF_E_IO, "cannot listen on %s:%d (port in use? pick another with port=N)",
                        o->bind ? o->bind : "127.0.0.1", o->port);
    }
    if (s) {
        sf_view_destroy(&v);
        return s;
    }
    *out = v;
    return SF_OK;
}

void sf_view_destroy(sf_view **pv) {
    sf_view *v = *pv;
    if (!v) return;
    pthread_mutex_lock(&v->mu);
    v->stopping = 1;
    pthread_cond_broadcast(&v->cv);
    pthread_mutex_unlock(&v->mu);
    if (v->stop_started) pthread_join(v->stop_th, NULL); /* bounded: encoder_timeout, or a stop signal */
    if (v->d) MHD_stop_daemon(v->d);
    if (v->tj) tjDestroy(v->tj);
    tjFree(v->jpg);
    sf_encode_client_close(&v->enc);
    pthread_mutex_destroy(&v->enc_mu);
    pthread_cond_destroy(&v->cv);
    pthread_mutex_destroy(&v->mu);
    free(v);
    *pv = NULL;
}
