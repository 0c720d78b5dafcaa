/* serve.c — sf-encode --serve (resident encoder, ZeroMQ REP) and --server (REQ client).
 *
 * The protocol is described at the top of serve.h (wire headers from common/wire.h, one
 * header + payload frame pair per wire message). Mirrors no reference module: the reference
 * loads umT5 in every process. Tested by tests/bats/sf-encode-serve.bats (two clients get the
 * same bytes as a direct run, a bad request gets an error reply and the server keeps serving,
 * SIGTERM stops it with exit 0 and removes the ipc socket file, CURVE keeps other keys out) and
 * tests/unit/test_encode_serve.c (raw malformed requests, text_len limits, oversized frames, the
 * client after an unanswered request). */
#define _POSIX_C_SOURCE 200809L
#include "serve.h"
#include "stop.h"
#include "wire.h"
#include "wire_impl.h" /* sf_wire_selfpipe_fd (the stop signal's self-pipe, for zmq_poll), sf_wire_net_ipc_alive */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#define MAX_PARTS 6
/* The largest frame a request may have (ZMQ_MAXMSGSIZE, per frame: libzmq drops the connection of a
 * peer that sends more, before buffering it). A legal request is a small header and a prompt of at
 * most SF_ENCODE_MAX_PROMPT (16 KiB) bytes; up to 4x that is still read and refused with an error
 * reply naming the limit, so a client that is a little over hears why. */
#define MAX_REQUEST (4 * SF_ENCODE_MAX_PROMPT)

struct sf_encode_client {
    void *ctx, *sock;
    sf_wire *net;   /* the socket's network edge: CURVE (wire_net.c) */
    char url[1024];
    double timeout_s;
    int forward, recache, stop; /* the live route's request meta (sf_encode_client_route) */
    sf_wire_msg *m; /* scratch header (large: heap) */
};

sf_status sf_encode_url_check(const char *url, sf_err *err) {
    if (!url || (strncmp(url, "tcp://", 6) != 0 && strncmp(url, "ipc://", 6) != 0) || !url[6])
        return sf_fail(err, SF_E_ARG, "encode server URL must be tcp://HOST:PORT or ipc://PATH (got '%s')",
                       url ? url : "");
    if (strlen(url) >= 1024) return sf_fail(err, SF_E_ARG, "encode server URL too long");
    return SF_OK;
}

/* The wire's network edge for a REQ/REP socket (common/wire_net.c, as the stages' tcp streams): with
 * $SF_WIRE_CURVE_KEY a tcp server is a CURVE server whose ZAP handler accepts only that key's clients,
 * a client a CURVE client with the same key pair; nothing without it. The returned sf_wire only
 * carries the socket's context, socket and CURVE state (its other fields stay unused). */
static sf_status net_edge(void *ctx, void *sock, const char *url, int client, sf_wire **out, sf_err *err) {
    sf_wire *w = calloc(1, sizeof *w);
    if (!(*out = w)) return sf_fail(err, SF_E_NOMEM, "out of memory");
    w->writer = client;
    w->kind = strncmp(url, "tcp://", 6) == 0 ? SF_WK_TCP : SF_WK_IPC;
    w->zctx = ctx, w->zsock = sock;
    snprintf(w->url, sizeof w->url, "%s", url);
    sf_status s = sf_wire_net_curve(w, err);
    /* both watch their connections: a server says once that a peer failed the (CURVE) handshake; a
     * client fails when the server refused its handshake (sf_wire_zmon_refused), where it waited forever */
    if (!s) s = sf_wire_zmon_open(w, err);
    return s;
}

/* Before the socket is closed: the monitor is stopped and drained (libzmq leaks event frames left in
 * it, as wire_zmq.c's teardown says), then closed with the ZAP handler. */
static void net_edge_free(sf_wire **pw) {
    sf_wire *w = *pw;
    if (!w) return;
    int zero = 0;
    if (w->zmon) {
        zmq_socket_monitor(w->zsock, NULL, 0);
        sf_wire_zmon_drain(w);
        zmq_setsockopt(w->zmon, ZMQ_LINGER, &zero, sizeof zero), zmq_close(w->zmon);
    }
    if (w->zap) zmq_setsockopt(w->zap, ZMQ_LINGER, &zero, sizeof zero), zmq_close(w->zap);
    free(w);
    *pw = NULL;
}

/* Wait until sock has `events` (1), timeout (0; timeout_ms < 0: never), or a stop signal
 * (SF_E_STOPPED); answers CURVE's ZAP requests meanwhile (net, may be NULL). */
static int poll_sock(void *sock, sf_wire *net, short events, long timeout_ms, sf_err *err) {
    double t_end = timeout_ms >= 0 ? sf_now() + timeout_ms / 1000.0 : 0;
    for (;;) {
        if (sf_wire_stopped()) return sf_fail(err, SF_E_STOPPED, "interrupted by signal");
        zmq_pollitem_t it[4] = {{sock, 0, events, 0}, {NULL, sf_wire_selfpipe_fd(), ZMQ_POLLIN, 0}, {0}, {0}};
        int n = it[1].fd >= 0 ? 2 : 1;
        if (net && net->zap) it[n++] = (zmq_pollitem_t){net->zap, 0, ZMQ_POLLIN, 0};
        if (net && net->zmon) it[n++] = (zmq_pollitem_t){net->zmon, 0, ZMQ_POLLIN, 0};
        long wait_ms = 500; /* re-check the flag at least twice a second (no self-pipe, other threads) */
        if (timeout_ms >= 0) {
            double left = t_end - sf_now();
            if (left <= 0) return 0;
            if (left * 1000 < wait_ms) wait_ms = (long)(left * 1000) + 1;
        }
        int r = zmq_poll(it, n, wait_ms);
        if (r < 0 && errno != EINTR) return sf_fail(err, SF_E_IO, "zmq_poll: %s", zmq_strerror(errno));
        if (sf_wire_stopped()) return sf_fail(err, SF_E_STOPPED, "interrupted by signal");
        if (r > 0 && net && net->zap) sf_wire_net_zap_serve(net);
        if (r > 0 && net && net->zmon) sf_wire_zmon_drain(net);
        if (r > 0 && (it[0].revents & events)) return 1;
        sf_status s = net && net->writer ? sf_wire_zmon_refused(net, "encode server", err) : SF_OK;
        if (s) return s;
    }
}

/* Receive every frame of one multipart message; *n = number of frames (MAX_PARTS + 1 when
 * there were more, the rest dropped). Frames are initialised; close them with close_parts. */
static sf_status recv_parts(void *sock, zmq_msg_t *parts, int *n, sf_err *err) {
    *n = 0;
    int more = 1;
    zmq_msg_t extra;
    while (more) {
        zmq_msg_t *p = *n < MAX_PARTS ? &parts[*n] : &extra;
        zmq_msg_init(p);
        if (zmq_msg_recv(p, sock, 0) < 0) {
            int e = errno;
            zmq_msg_close(p);
            return sf_fail(err, e == EINTR ? SF_E_STOPPED : SF_E_IO, "zmq receive: %s", zmq_strerror(e));
        }
        more = zmq_msg_more(p);
        if (p == &extra) {
            zmq_msg_close(p);
            *n = MAX_PARTS + 1;
        } else {
            (*n)++;
        }
    }
    return SF_OK;
}

static void close_parts(zmq_msg_t *parts, int n) {
    for (int i = 0; i < n && i < MAX_PARTS; i++) zmq_msg_close(&parts[i]);
}

/* Send one wire message as [header, payload]; more: another pair follows. */
static sf_status send_pair(void *sock, const sf_wire_msg *m, const void *payload, int more, sf_err *err) {
    void *hdr = NULL;
    size_t hl = 0;
    sf_status st = sf_wire_header_encode(m, &hdr, &hl, err);
    if (st) return st;
    size_t pl = sf_wire_msg_nbytes(m);
    int r = zmq_send(sock, hdr, hl, ZMQ_SNDMORE);
    if (r >= 0) r = zmq_send(sock, pl ? payload : "", pl, more ? ZMQ_SNDMORE : 0);
    free(hdr);
    if (r < 0) return sf_fail(err, errno == EINTR ? SF_E_STOPPED : SF_E_IO, "zmq send: %s", zmq_strerror(errno));
    return SF_OK;
}

/* Decode frames [2i, 2i+1] into m and check the payload length. */
static sf_status parse_pair(zmq_msg_t *parts, int i, sf_wire_msg *m, const void **payload, sf_err *err) {
    sf_status st = sf_wire_header_decode(zmq_msg_data(&parts[2 * i]), zmq_msg_size(&parts[2 * i]), m, err);
    if (st) return st;
    if (zmq_msg_size(&parts[2 * i + 1]) != sf_wire_msg_nbytes(m))
        return sf_fail(err, SF_E_FORMAT, "payload of message %d has %zu bytes, its header says %zu", i,
                       zmq_msg_size(&parts[2 * i + 1]), sf_wire_msg_nbytes(m));
    *payload = zmq_msg_data(&parts[2 * i + 1]);
    return SF_OK;
}

/* ------------------------------------------------------------------ server */

/* Answer one request (frames parts[0..n)): encodes and sends the reply; a bad request or a
 * failing prompt is answered with an error message (returned SF_OK: the server goes on).
 * Only a failure to send is returned. */
/* The live route: prompt_embeds (emb (seq_len, dim)) with meta prompt [and recache] to the stream. */
static sf_status forward_embeds(sf_wire *fwd, const sf_encoded *res, int recache, sf_err *err) {
    sf_wire_msg *m = malloc(sizeof *m);
    if (!m) return sf_fail(err, SF_E_NOMEM, "out of memory");
    int64_t se[2] = {res->seq_len, res->dim};
    sf_tensor te = sf_tensor_view(res->emb, SF_F32, 2, se);
    sf_status st = sf_wire_msg_tensor(m, "prompt_embeds", &te, err);
    if (!st) st = sf_wire_meta_set_str(m, "prompt", res->cleaned, err);
    if (!st && recache >= 0) st = sf_wire_meta_set_bool(m, "recache", recache, err);
    if (!st) st = sf_wire_send(fwd, m, res->emb, err);
    free(m);
    return st;
}

static sf_status serve_one(sf_encoder *enc, void *sock, zmq_msg_t *parts, int n, int64_t default_tl,
                           sf_wire_msg *m, sf_wire *fwd, sf_err *err) {
    sf_err rerr = {{0}};
    sf_status rst = SF_OK;
    sf_encoded res = {0};
    const void *payload = NULL;
    int64_t index = -1, tl = default_tl;
    int forward = 0, recache = -1;
    double t0 = sf_now();
    /* who asked, for the log: a TCP client's address; an ipc client's process (libzmq gives the socket's
     * peer credentials as localhost:UID:GID:PID) */
    const char *pa = n > 0 ? zmq_msg_gets(&parts[0], "Peer-Address") : NULL;
    char peer[80];
    long uid, gid, pid;
    if (pa && sscanf(pa, "localhost:%ld:%ld:%ld", &uid, &gid, &pid) == 3) snprintf(peer, sizeof peer, "pid %ld, uid %ld", pid, uid);
    else snprintf(peer, sizeof peer, "%s", pa && *pa ? pa : "unknown");
    if (n != 2) {
        rst = sf_fail(&rerr, SF_E_FORMAT, "bad request: expected 2 frames [header, payload], got %d", n);
        goto reply;
    }
    if ((rst = parse_pair(parts, 0, m, &payload, &rerr))) goto reply;
    if (m->type != SF_WIRE_TENSOR || strcmp(m->name, "prompt") != 0 || m->dtype != SF_U8 || m->ndim != 1) {
        rst = sf_fail(&rerr, SF_E_FORMAT, "bad request: expected tensor 'prompt' u8 [n_bytes]");
        goto reply;
    }
    const sf_wire_meta *tle = sf_wire_meta_find(m, "text_len");
    if (tle && tle->kind != SF_META_INT) { /* 3.7 or "512" is a client bug, not a request for the default */
        rst = sf_fail(&rerr, SF_E_ARG, "bad request: text_len must be an integer");
        goto reply;
    }
    tl = sf_wire_meta_int(m, "text_len", default_tl);
    index = sf_wire_meta_int(m, "index", -1);
    forward = fwd && sf_wire_meta_int(m, "forward", 0);
    recache = (int)sf_wire_meta_int(m, "recache", -1);
    if (fwd && sf_wire_meta_int(m, "stop", 0)) { /* end the live run: "stop" downstream, then this server */
        int64_t z[1] = {0};
        sf_tensor te = sf_tensor_view((void *)"", SF_U8, 1, z);
        sf_status fs = sf_wire_msg_tensor(m, "stop", &te, err);
        if (!fs) fs = sf_wire_send(fwd, m, "", err);
        sf_wire_msg_init(m, SF_WIRE_ERROR, "");
        snprintf(m->text, sizeof m->text, "live route stopped");
        sf_status ss = send_pair(sock, m, NULL, 0, err);
        sf_info("stop request: the live route ends");
        return fs ? fs : ss ? ss : sf_fail(err, SF_E_STOPPED, "stop request");
    }
    /* at most the server's own --text-len (the model's text_len, 512): a client may ask for fewer tokens,
     * never make the single-threaded server encode (and cache) a longer sequence than it was started for */
    if (tl < 1 || tl > default_tl) {
        rst = sf_fail(&rerr, SF_E_ARG, "bad request: text_len %lld not in 1..%lld (this server's --text-len)",
                      (long long)tl, (long long)default_tl);
        goto reply;
    }
    rst = sf_encoder_run(enc, m->shape[0] ? payload : "", (size_t)m->shape[0], tl, &res, &rerr);
reply:
    if (rst) {
        sf_warn("request failed: %s (client %s)", rerr.msg, peer);
        sf_wire_msg_init(m, SF_WIRE_ERROR, "");
        snprintf(m->text, sizeof m->text, "%s", rerr.msg);
        return send_pair(sock, m, NULL, 0, err);
    }
    sf_status st;
    int64_t se[2] = {res.seq_len, res.dim}, si[1] = {res.seq_len};
    sf_tensor te = sf_tensor_view(res.emb, SF_F32, 2, se);
    sf_tensor ti = sf_tensor_view(res.ids, SF_I64, 1, si), tm = sf_tensor_view(res.mask, SF_I64, 1, si);
    if ((st = sf_wire_msg_tensor(m, "prompt_embeds", &te, err)) ||
        (st = sf_wire_meta_set_str(m, "prompt", res.cleaned, err)) ||
        (st = sf_wire_meta_set_int(m, "n_tokens", res.n_tokens, err)) ||
        (st = sf_wire_meta_set_str(m, "cache_key", res.key, err)) ||
        (st = sf_wire_meta_set_bool(m, "from_cache", res.from_cache, err)) ||
        (index >= 0 && (st = sf_wire_meta_set_int(m, "index", index, err)))) {
        /* e.g. a cleaned prompt too long for the meta arena: tell the client */
        sf_warn("request failed: %s (client %s)", err->msg, peer);
        sf_wire_msg_init(m, SF_WIRE_ERROR, "");
        snprintf(m->text, sizeof m->text, "%s", err->msg);
        sf_encoded_free(&res);
        return send_pair(sock, m, NULL, 0, err);
    }
    if (forward && (st = forward_embeds(fwd, &res, recache, err))) { /* downstream gone: the run is over */
        sf_encoded_free(&res);
        return st;
    }
    if (!(st = send_pair(sock, m, res.emb, 1, err)) && !(st = sf_wire_msg_tensor(m, "ids", &ti, err)) &&
        !(st = send_pair(sock, m, res.ids, 1, err)) && !(st = sf_wire_msg_tensor(m, "mask", &tm, err)))
        st = send_pair(sock, m, res.mask, 0, err);
    if (!st) { /* the prompt as cleaned, its first 80 bytes or so (whole characters; escaped by sf_log) */
        char shown[84];
        sf_escape_ctl(shown, sizeof shown, res.cleaned);
        sf_info("served \"%s%s\" to client %s: %lld tokens (%s%s) in %.3f s", shown,
                strlen(res.cleaned) >= sizeof shown ? "..." : "", peer, (long long)res.n_tokens,
                res.from_cache ? "cache hit" : "encoded", forward ? ", forwarded" : "", sf_now() - t0);
    }
    sf_encoded_free(&res);
    return st;
}

sf_status sf_encode_serve(sf_encoder *enc, const char *url, int64_t default_text_len, sf_err *err) {
    return sf_encode_serve_fwd(enc, url, default_text_len, NULL, NULL, err);
}

sf_status sf_encode_serve_fwd(sf_encoder *enc, const char *url, int64_t default_text_len, sf_wire *fwd,
                              const char *first, sf_err *err) {
    sf_status st;
    void *ctx = NULL, *sock = NULL;
    sf_wire *net = NULL;
    sf_wire_msg *m = NULL;
    int bound = 0;
    if ((st = sf_encode_url_check(url, err))) return st;
    const char *ipc = strncmp(url, "ipc://", 6) == 0 ? url + 6 : NULL;
    if (default_text_len < 1 || default_text_len > SF_SERVE_MAX_TEXT_LEN)
        return sf_fail(err, SF_E_ARG, "--text-len must be in 1..%d for a server", SF_SERVE_MAX_TEXT_LEN);
    if (ipc && sf_wire_net_ipc_alive(ipc)) return sf_fail(err, SF_E_IO, "%s: another server is already listening there", url);
    /* resident: load the weights now (onto the GPU too, unless --low-memory), so "bound" means "ready" */
    if ((st = sf_encoder_load(enc, default_text_len, err))) return st;
    if (fwd && first) { /* the live route's opening prompt, before any request */
        sf_encoded res = {0};
        if ((st = sf_encoder_run(enc, first, strlen(first), default_text_len, &res, err))) return st;
        st = forward_embeds(fwd, &res, -1, err);
        sf_encoded_free(&res);
        if (st) return st;
    }
    if (!(m = malloc(sizeof *m))) return sf_fail(err, SF_E_NOMEM, "out of memory");
    int zero = 0;
    int64_t maxmsg = MAX_REQUEST;
    if (!(ctx = zmq_ctx_new()) || !(sock = zmq_socket(ctx, ZMQ_REP)) ||
        zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero) ||
        zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg)) {
        st = sf_fail(err, SF_E_IO, "zmq socket: %s", zmq_strerror(errno));
        goto fail;
    }
    /* CURVE before the bind; the bind is exactly the host named ('*' warns), as every wire endpoint */
    if ((st = net_edge(ctx, sock, url, 0, &net, err)) || (st = sf_wire_net_bind(net, url, err))) goto fail;
    bound = 1;
    if (ipc) sf_stop_unlink_at_exit(ipc); /* a hard stop (the watchdog, a late second signal) removes it too */
    sf_info("serving on %s (text_len %lld by default)", url, (long long)default_text_len);
    zmq_msg_t parts[MAX_PARTS];
    for (;;) {
        int r = poll_sock(sock, net, ZMQ_POLLIN, -1, err);
        if (r < 0) {
            st = (sf_status)r;
            break;
        }
        int n = 0;
        if ((st = recv_parts(sock, parts, &n, err))) break;
        st = serve_one(enc, sock, parts, n, default_text_len, m, fwd, err);
        close_parts(parts, n);
        if (st) break;
    }
    if (st == SF_E_STOPPED) {
        sf_info("stop signal: server exits");
        st = SF_OK;
    }
fail:
    net_edge_free(&net);
    if (sock) zmq_close(sock);
    if (ctx) zmq_ctx_term(ctx); /* the ipc listener unlinks its socket file while terminating */
    if (bound && ipc) {
        struct stat sb;
        if (stat(ipc, &sb) == 0 && S_ISSOCK(sb.st_mode) && !sf_wire_net_ipc_alive(ipc)) unlink(ipc);
        sf_stop_forget(ipc);
    }
    free(m);
    return st;
}

/* ------------------------------------------------------------------ client */

sf_status sf_encode_client_open(const char *url, double timeout_s, sf_encode_client **out, sf_err *err) {
    *out = NULL;
    sf_status st = sf_encode_url_check(url, err);
    if (st) return st;
    if (strncmp(url, "ipc://", 6) == 0) {
        struct stat sb;
        if (stat(url + 6, &sb) != 0 || !S_ISSOCK(sb.st_mode))
            return sf_fail(err, SF_E_IO, "no encode server at %s (no socket file; start one with sf-encode --serve)",
                           url);
    }
    sf_encode_client *c = calloc(1, sizeof *c);
    if (!c || !(c->m = malloc(sizeof *c->m))) {
        if (c) free(c);
        return sf_fail(err, SF_E_NOMEM, "out of memory");
    }
    snprintf(c->url, sizeof c->url, "%s", url);
    c->timeout_s = timeout_s;
    c->recache = -1;
    /* A strict REQ socket whose reply never came (timeout, stop, a receive error) refuses every later
     * send (EFSM) for good. Relaxed, a new request may follow an unanswered one; correlated, each
     * request carries an id the REP server echoes, and a late reply to an older request is dropped by
     * libzmq rather than taken as the answer to the new one. */
    int zero = 0, one = 1;
    if (!(c->ctx = zmq_ctx_new()) || !(c->sock = zmq_socket(c->ctx, ZMQ_REQ)) ||
        zmq_setsockopt(c->sock, ZMQ_LINGER, &zero, sizeof zero) ||
        zmq_setsockopt(c->sock, ZMQ_REQ_RELAXED, &one, sizeof one) ||
        zmq_setsockopt(c->sock, ZMQ_REQ_CORRELATE, &one, sizeof one)) {
        st = sf_fail(err, SF_E_IO, "zmq socket: %s", zmq_strerror(errno));
        goto fail;
    }
    if ((st = net_edge(c->ctx, c->sock, url, 1, &c->net, err))) goto fail; /* CURVE client, before connecting */
    if (zmq_connect(c->sock, url) != 0) {
        st = sf_fail(err, SF_E_IO, "cannot connect to %s: %s", url, zmq_strerror(errno));
        goto fail;
    }
    *out = c;
    return SF_OK;
fail:
    sf_encode_client_close(&c);
    return st;
}

void sf_encode_client_route(sf_encode_client *c, int forward, int recache) {
    c->forward = forward;
    c->recache = recache;
}

sf_status sf_encode_client_stop_route(sf_encode_client *c, sf_err *err) {
    sf_encoded res;
    c->stop = 1;
    sf_status st = sf_encode_client_run(c, "", 0, 1, -1, &res, err);
    c->stop = 0;
    if (st == SF_E_FORMAT && strstr(err->msg, "live route stopped")) return SF_OK;
    if (!st) sf_encoded_free(&res);
    return st ? st : sf_fail(err, SF_E_FORMAT, "encode server %s has no live route (--out)", c->url);
}

void sf_encode_client_close(sf_encode_client **pc) {
    sf_encode_client *c = *pc;
    if (!c) return;
    net_edge_free(&c->net);
    if (c->sock) zmq_close(c->sock);
    if (c->ctx) zmq_ctx_term(c->ctx);
    free(c->m);
    free(c);
    *pc = NULL;
}

/* Check one reply tensor: name, dtype and shape. */
static sf_status expect_tensor(const sf_wire_msg *m, const char *name, sf_dtype dt, int ndim, int64_t d0,
                               sf_err *err) {
    if (m->type != SF_WIRE_TENSOR || strcmp(m->name, name) != 0 || m->dtype != dt || m->ndim != ndim ||
        m->shape[0] != d0 || (ndim == 2 && (m->shape[1] < 1 || m->shape[1] > (1 << 20))))
        return sf_fail(err, SF_E_FORMAT, "encode server: malformed reply (expected %s %s with %lld rows)", name,
                       sf_dtype_name(dt), (long long)d0);
    return SF_OK;
}

sf_status sf_encode_client_run(sf_encode_client *c, const char *prompt, size_t len, int64_t seq_len,
                               int64_t index, sf_encoded *out, sf_err *err) {
    sf_status st;
    zmq_msg_t parts[MAX_PARTS];
    int n = 0;
    sf_wire_msg *m = c->m;
    const void *p0 = NULL, *p1 = NULL, *p2 = NULL;
    memset(out, 0, sizeof *out);
    if (seq_len < 1 || seq_len > SF_SERVE_MAX_TEXT_LEN)
        return sf_fail(err, SF_E_ARG, "--text-len must be in 1..%d with a server", SF_SERVE_MAX_TEXT_LEN);
    /* the server would refuse it, or (past MAX_REQUEST) drop the connection without a reply */
    if ((st = sf_encoder_check_prompt(prompt, len, err))) return st;
    int64_t shp[1] = {(int64_t)len};
    sf_tensor t = sf_tensor_view((void *)prompt, SF_U8, 1, shp);
    if ((st = sf_wire_msg_tensor(m, "prompt", &t, err)) || (st = sf_wire_meta_set_int(m, "text_len", seq_len, err)) ||
        (st = sf_wire_meta_set_int(m, "index", index, err)) ||
        (c->forward && (st = sf_wire_meta_set_bool(m, "forward", 1, err))) ||
        (c->recache >= 0 && (st = sf_wire_meta_set_bool(m, "recache", c->recache, err))) ||
        (c->stop && (st = sf_wire_meta_set_bool(m, "stop", 1, err))))
        return st;
    int r = poll_sock(c->sock, c->net, ZMQ_POLLOUT, c->timeout_s > 0 ? (long)(c->timeout_s * 1000) : -1, err);
    if (r < 0) return (sf_status)r;
    if (r == 0) return sf_fail(err, SF_E_IO, "encode server %s: cannot send (timeout)", c->url);
    if ((st = send_pair(c->sock, m, prompt, 0, err))) return st;
    double t0 = sf_now();
    r = poll_sock(c->sock, c->net, ZMQ_POLLIN, c->timeout_s > 0 ? (long)(c->timeout_s * 1000) : -1, err);
    if (r < 0) return (sf_status)r;
    if (r == 0) return sf_fail(err, SF_E_IO, "no reply from encode server %s within %g s", c->url, c->timeout_s);
    if ((st = recv_parts(c->sock, parts, &n, err))) return st;
    if (n == 2 || n == 6) {
        if ((st = parse_pair(parts, 0, m, &p0, err))) goto fail;
    } else {
        st = sf_fail(err, SF_E_FORMAT, "encode server: malformed reply (%d frames)", n);
        goto fail;
    }
    if (m->type == SF_WIRE_ERROR) {
        st = sf_fail(err, SF_E_FORMAT, "encode server: %s", m->text);
        goto fail;
    }
    if (n != 6 || (st = expect_tensor(m, "prompt_embeds", SF_F32, 2, seq_len, err))) {
        if (!st) st = sf_fail(err, SF_E_FORMAT, "encode server: malformed reply (%d frames)", n);
        goto fail;
    }
    out->seq_len = seq_len;
    out->dim = m->shape[1];
    out->n_tokens = sf_wire_meta_int(m, "n_tokens", -1);
    out->from_cache = (int)sf_wire_meta_int(m, "from_cache", 0);
    const char *pr = sf_wire_meta_str(m, "prompt"), *key = sf_wire_meta_str(m, "cache_key");
    if (out->n_tokens < 1 || out->n_tokens > seq_len || !pr) {
        st = sf_fail(err, SF_E_FORMAT, "encode server: reply without a valid n_tokens / prompt");
        goto fail;
    }
    snprintf(out->key, sizeof out->key, "%s", key ? key : "");
    size_t ne = (size_t)seq_len * (size_t)out->dim; /* both bounded above: no overflow */
    if (!(out->cleaned = strdup(pr)) || !(out->emb = malloc(ne * sizeof *out->emb)) ||
        !(out->ids = malloc((size_t)seq_len * 8)) || !(out->mask = malloc((size_t)seq_len * 8))) {
        st = sf_fail(err, SF_E_NOMEM, "out of memory");
        goto fail;
    }
    memcpy(out->emb, p0, ne * sizeof *out->emb);
    if ((st = parse_pair(parts, 1, m, &p1, err)) || (st = expect_tensor(m, "ids", SF_I64, 1, seq_len, err)) ||
        (st = parse_pair(parts, 2, m, &p2, err)) || (st = expect_tensor(m, "mask", SF_I64, 1, seq_len, err)))
        goto fail;
    memcpy(out->ids, p1, (size_t)seq_len * 8);
    memcpy(out->mask, p2, (size_t)seq_len * 8);
    sf_info("server: %lld tokens (%s) in %.3f s", (long long)out->n_tokens,
            out->from_cache ? "cache hit" : "encoded", sf_now() - t0);
    close_parts(parts, n);
    return SF_OK;
fail:
    close_parts(parts, n);
    sf_encoded_free(out);
    return st;
}
