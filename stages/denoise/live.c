/* live.c — prompt embeddings read while sf-denoise runs, and the block-boundary switch (see live.h).
 * Tested by tests/unit/test_live.c and tests/bats/live.bats. */
#define _POSIX_C_SOURCE 200809L
#include "stages/denoise/live.h"
#include "wire.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FEED_QUEUE 8 /* pending prompts kept; the oldest is dropped when a viewer sends faster */

typedef struct pending {
    float *emb;          /* (rows, text_dim), owned */
    int64_t rows;
    int at_block;        /* -1: next boundary */
    int recache;         /* -1: not given */
    char prompt[4096];
} pending;

struct sf_prompt_feed {
    const char *url;     /* the caller's, for messages */
    sf_wire *r;
    int text_dim, text_len;
    pthread_t th;
    int running;         /* the reader thread exists (joined at close) */
    int done;            /* the reader returned (end of stream, error); __atomic */
    int stop;            /* a "stop" message came (the live route ends the run); __atomic */
    pthread_mutex_t mu;
    pending q[FEED_QUEUE];
    int nq;
    pending cur;         /* the entry last handed out by take (owned here) */
};

/* A prompt_embeds message → (rows, text_dim) f32 copy; SF_E_SHAPE when it does not fit the model. */
static sf_status embeds_of(const sf_prompt_feed *f, const sf_wire_msg *m, const void *payload, pending *p,
                           sf_err *err) {
    sf_tensor t = sf_wire_msg_view(m, payload);
    int ok = (t.ndim == 2 || (t.ndim == 3 && t.shape[0] == 1));
    int64_t L = ok ? t.shape[t.ndim - 2] : 0, D = ok ? t.shape[t.ndim - 1] : 0;
    char b[96];
    sf_status s = sf_tensor_need_float(&t, "prompt_embeds", err); /* never an integer tensor converted */
    if (s) return s;
    if (!ok || D != f->text_dim || L > f->text_len || L < 1)
        return sf_fail(err, SF_E_SHAPE, "prompt_embeds of shape %s; the model expects [L, %d] with L <= %d",
                       sf_shape_str(&t, b, sizeof b), f->text_dim, f->text_len);
    p->emb = sf_calloc2((size_t)(L * D), sizeof(float));
    if (!p->emb) return sf_fail(err, SF_E_NOMEM, "out of memory");
    sf_tensor_to_f32(&t, p->emb);
    p->rows = L;
    const char *pr = sf_wire_meta_str(m, "prompt");
    snprintf(p->prompt, sizeof p->prompt, "%s", pr ? pr : "");
    p->at_block = (int)sf_wire_meta_int(m, "at_block", -1);
    p->recache = (int)sf_wire_meta_int(m, "recache", -1);
    return SF_OK;
}

static int is_embeds(const sf_wire_msg *m) {
    size_t ln = strlen(m->name); /* prompt_embeds, x.prompt_embeds */
    return m->type == SF_WIRE_TENSOR && ln >= 13 && !strcmp(m->name + ln - 13, "prompt_embeds");
}

static void *reader_main(void *arg) {
    sf_prompt_feed *f = arg;
    sf_wire_msg *m = malloc(sizeof *m);
    for (; m;) {
        const void *payload;
        sf_err e;
        if (sf_wire_recv(f->r, m, &payload, &e) || m->type == SF_WIRE_END) break;
        if (m->type == SF_WIRE_TENSOR && !strcmp(m->name, "stop")) {
            __atomic_store_n(&f->stop, 1, __ATOMIC_RELEASE);
            break;
        }
        if (!is_embeds(m)) continue;
        pending p;
        memset(&p, 0, sizeof p);
        if (embeds_of(f, m, payload, &p, &e)) {
            sf_warn("ignoring a prompt switch: %s", e.msg);
            continue;
        }
        pthread_mutex_lock(&f->mu);
        if (f->nq == FEED_QUEUE) { /* drop the oldest */
            free(f->q[0].emb);
            memmove(f->q, f->q + 1, sizeof(pending) * (FEED_QUEUE - 1));
            f->nq--;
        }
        f->q[f->nq++] = p;
        pthread_mutex_unlock(&f->mu);
    }
    free(m);
    __atomic_store_n(&f->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

sf_status sf_prompt_feed_connect(const char *url, double wire_timeout, int text_dim, int text_len, sf_prompt_feed **out,
                                 sf_err *err) {
    *out = NULL;
    sf_prompt_feed *f = calloc(1, sizeof *f);
    if (!f) return sf_fail(err, SF_E_NOMEM, "out of memory");
    f->url = url, f->text_dim = text_dim, f->text_len = text_len;
    /* the largest message it takes: [text_len, text_dim] f32 embeddings; --timeout for the writer */
    sf_wire_opts wo = {wire_timeout, (size_t)text_len * (size_t)text_dim * sizeof(float)};
    sf_status s = sf_wire_open_reader_opts(url, &wo, &f->r, err);
    if (s) {
        free(f);
        return s;
    }
    *out = f;
    return SF_OK;
}

sf_status sf_prompt_feed_first(sf_prompt_feed *f, int follow, float **emb, int64_t *rows, char *prompt, size_t pn,
                               sf_err *err) {
    sf_wire_msg *m = malloc(sizeof *m);
    sf_status s = m ? SF_OK : sf_fail(err, SF_E_NOMEM, "out of memory");
    *emb = NULL, *rows = 0;
    while (!s) {
        const void *payload;
        if ((s = sf_wire_recv(f->r, m, &payload, err))) break;
        if (m->type == SF_WIRE_END) {
            s = sf_fail(err, SF_E_FORMAT, "%s: stream ended without prompt_embeds", f->url);
            break;
        }
        if (!is_embeds(m)) continue;
        pending p;
        memset(&p, 0, sizeof p);
        if ((s = embeds_of(f, m, payload, &p, err))) {
            char m2[sizeof err->msg];
            snprintf(m2, sizeof m2, "%s", err->msg);
            s = sf_fail(err, s, "%s: %s", f->url, m2);
            break;
        }
        *emb = p.emb, *rows = p.rows;
        if (prompt && !prompt[0]) snprintf(prompt, pn, "%s", p.prompt);
        /* one prompt: read on to `end` — the writer is done only once its end is acknowledged */
        while (!follow && !(s = sf_wire_recv(f->r, m, &payload, err)) && m->type != SF_WIRE_END) {
        }
        if (s) {
            free(p.emb);
            *emb = NULL;
        }
        break;
    }
    free(m);
    if (!s && follow) {
        pthread_mutex_init(&f->mu, NULL);
        if (pthread_create(&f->th, NULL, reader_main, f)) {
            pthread_mutex_destroy(&f->mu);
            s = sf_fail(err, SF_E_NOMEM, "cannot start the prompt reader thread");
            free(*emb);
            *emb = NULL;
        } else {
            f->running = 1;
        }
    }
    if (!s && !follow) sf_wire_close(&f->r, NULL); /* one prompt: the stream is done with */
    return s;
}

sf_status sf_prompt_feed_open(const char *url, double wire_timeout, int text_dim, int text_len, int follow,
                              sf_prompt_feed **out, float **emb, int64_t *rows, char *prompt, size_t pn, sf_err *err) {
    sf_status s = sf_prompt_feed_connect(url, wire_timeout, text_dim, text_len, out, err);
    if (!s && (s = sf_prompt_feed_first(*out, follow, emb, rows, prompt, pn, err))) sf_prompt_feed_close(out);
    return s;
}

int sf_prompt_feed_take(sf_prompt_feed *f, int block, const float **emb, int64_t *rows, const char **prompt,
                        int *recache) {
    if (!f || !f->running) return 0;
    pthread_mutex_lock(&f->mu);
    int pick = -1;
    for (int i = 0; i < f->nq; i++)
        if (f->q[i].at_block <= block) pick = i; /* the newest due */
    if (pick >= 0) {
        free(f->cur.emb);
        f->cur = f->q[pick];
        for (int i = 0; i < pick; i++) free(f->q[i].emb); /* superseded */
        memmove(f->q, f->q + pick + 1, sizeof(pending) * (size_t)(f->nq - pick - 1));
        f->nq -= pick + 1;
    }
    pthread_mutex_unlock(&f->mu);
    if (pick < 0) return 0;
    *emb = f->cur.emb, *rows = f->cur.rows, *prompt = f->cur.prompt, *recache = f->cur.recache;
    return 1;
}

void sf_prompt_feed_close(sf_prompt_feed **fp) {
    sf_prompt_feed *f = fp ? *fp : NULL;
    if (!f) return;
    if (f->running) {
        if (!__atomic_load_n(&f->done, __ATOMIC_ACQUIRE))
            sf_wire_request_stop(); /* wakes a reader blocked on a silent stream */
        pthread_join(f->th, NULL);
        pthread_mutex_destroy(&f->mu);
        for (int i = 0; i < f->nq; i++) free(f->q[i].emb);
    }
    free(f->cur.emb);
    sf_wire_close(&f->r, NULL);
    free(f);
    *fp = NULL;
}

sf_status sf_denoise_live_block_start(void *ctx, int block, int64_t start_frame, int *recache, sf_err *err) {
    sf_denoise_live *lv = ctx;
    const float *emb;
    const char *pr;
    int64_t rows;
    int rc;
    (void)start_frame;
    for (double w; (w = sf_pace_wait(&lv->pace, sf_now())) > 0 && !sf_denoise_live_stopped(lv);)
        sf_sleep(w < 0.05 ? w : 0.05); /* in slices, so that a stop is seen within 50 ms */
    sf_pace_started(&lv->pace, sf_now());
    if (!lv->feed || !sf_prompt_feed_take(lv->feed, block, &emb, &rows, &pr, &rc)) return SF_OK;
    sf_status s = sf_dit_set_context(lv->st, emb, rows, err);
    if (s) return s;
    snprintf(lv->prompt, sizeof lv->prompt, "%s", pr);
    lv->switches++;
    *recache = rc >= 0 ? rc : lv->recache;
    sf_info("block %d: prompt switched%s: \"%.200s\"", block, *recache ? " (window re-cached)" : "", pr);
    return SF_OK;
}

void sf_denoise_live_progress(sf_wire *out, int block, int step, int n_steps) {
    sf_wire_msg m;
    sf_err e;
    int64_t z[1] = {0};
    char clk[64];
    sf_clock_id(clk, sizeof clk);
    sf_tensor t = sf_tensor_view((void *)"", SF_U8, 1, z);
    if (sf_wire_msg_tensor(&m, "progress", &t, &e) || sf_wire_meta_set_int(&m, "block", block, &e) ||
        sf_wire_meta_set_int(&m, "step", step, &e) || sf_wire_meta_set_int(&m, "n_steps", n_steps, &e) ||
        sf_wire_meta_set_double(&m, "t_sent", sf_now(), &e) || (clk[0] && sf_wire_meta_set_str(&m, "clock", clk, &e)))
        return;
    sf_wire_send(out, &m, "", &e);
}

int sf_prompt_feed_stop_requested(const sf_prompt_feed *f) {
    return f && __atomic_load_n(&f->stop, __ATOMIC_ACQUIRE);
}

int sf_denoise_live_stopped(void *ctx) {
    const sf_denoise_live *lv = ctx;
    return sf_wire_stopped() || sf_prompt_feed_stop_requested(lv->feed);
}
