/* fake_encoder.h — a fake sf-encode server's pieces, shared by test_encode_serve.c (the client's reset
 * after a lost reply) and test_view.c (sf-view's prompt and stop requests): on a ZeroMQ ROUTER socket,
 * read one request with its envelope (routing id, request id, empty delimiter: what the reply must carry
 * back) and answer it with an `error` message, framed as stages/encode/serve.c frames its replies
 * ([envelope..., header, empty payload]). Header-only, as the other test fixtures. */
#ifndef SF_TEST_FAKE_ENCODER_H
#define SF_TEST_FAKE_ENCODER_H

#include "wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <zmq.h>

typedef struct fake_request {
    zmq_msg_t env[8]; /* the envelope, its empty delimiter last (at most 8 frames kept) */
    int nenv;
    int stop;         /* the request header's meta `stop` (the live route's stop request), else 0 */
} fake_request;

/* Read every frame of one request off sock. 0, or -1 when a receive failed; either way release r after. */
static inline int fake_request_recv(void *sock, fake_request *r) {
    sf_wire_msg *m = malloc(sizeof *m); /* 36 KiB: off the small thread stacks */
    int more = 1, delim = 0, rc = 0;
    r->nenv = 0, r->stop = 0;
    while (more) {
        zmq_msg_t fr;
        zmq_msg_init(&fr);
        if (zmq_msg_recv(&fr, sock, 0) < 0) {
            rc = -1;
            break;
        }
        more = zmq_msg_more(&fr);
        sf_err e;
        if (delim == 1 && m && !sf_wire_header_decode(zmq_msg_data(&fr), zmq_msg_size(&fr), m, &e))
            r->stop = (int)sf_wire_meta_int(m, "stop", 0);
        if (delim) delim++;
        else if (r->nenv < 8) {
            delim = zmq_msg_size(&fr) == 0;
            zmq_msg_init(&r->env[r->nenv]);
            zmq_msg_copy(&r->env[r->nenv++], &fr);
        }
        zmq_msg_close(&fr);
    }
    free(m);
    return rc;
}

static inline void fake_request_release(fake_request *r) {
    for (int i = 0; i < r->nenv; i++) zmq_msg_close(&r->env[i]);
    r->nenv = 0;
}

/* Answer r with an `error` message whose text is text. 1 when every frame went out. */
static inline int fake_reply(void *sock, fake_request *r, const char *text) {
    sf_wire_msg *m = malloc(sizeof *m);
    void *h = NULL;
    size_t hl = 0;
    sf_err e;
    int ok = m != NULL;
    if (ok) {
        sf_wire_msg_init(m, SF_WIRE_ERROR, "");
        snprintf(m->text, sizeof m->text, "%s", text);
        ok = !sf_wire_header_encode(m, &h, &hl, &e);
    }
    for (int i = 0; ok && i < r->nenv; i++)
        ok = zmq_send(sock, zmq_msg_data(&r->env[i]), zmq_msg_size(&r->env[i]), ZMQ_SNDMORE) >= 0;
    if (ok) ok = zmq_send(sock, h, hl, ZMQ_SNDMORE) >= 0 && zmq_send(sock, "", 0, 0) >= 0;
    free(h);
    free(m);
    return ok;
}

#endif
