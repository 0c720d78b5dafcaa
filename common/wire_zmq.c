/* wire_zmq.c — the ZeroMQ (tcp://, ipc://) transports of the wire format (DESIGN.md §4; frame
 * spec at the top of wire.h), and the ZeroMQ control channel of the shm:// ring (wire_shm.c).
 *
 * ZeroMQ: DEALER → ROUTER, one multipart message per wire message, high-water mark 2 so a slow
 * reader applies back-pressure; the reader acknowledges `end` (see "ZeroMQ plumbing" below).
 * Payloads over 64 KiB are sent zero-copy (zmq_msg_init_data on the caller's payload);
 * sf_wire_send waits until ZeroMQ frees the frame (it was written to the socket), so the caller
 * may reuse the buffer on return. A socket monitor tells a reader that the stream's writer
 * disconnected ("upstream closed without end-of-stream"). Addresses, CURVE: wire_net.c.
 *
 * Mirrors no reference module. Tested by tests/unit/test_wire.c (ipc, tcp), tests/bats/sf-wire.bats (separate processes) and tests/bats/net-edge.bats
 * (hostile peers, missing readers, acks, message caps). */
#define _POSIX_C_SOURCE 200809L
#include "wire_impl.h"
#include "stop.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ZHWM 2
#define WRITER_GRACE_S 3.0 /* seconds a blocked writer waits for a vanished reader to return */
#define WRITER_GRACE_DEAD_S 0.3 /* ... when nothing listens on its ipc path any more: frames in flight only */
#define HS_DROPS 10 /* a writer whose reader cut this many handshakes short in a row is refused (~1.5 s) */
#define WRITER_LINGER_MS 5000 /* a normal close: how long queued frames (an error message) may take */
#define ZCOPY_MIN 65536 /* payloads up to this many bytes are copied, not zero-copy */
#define ZACK "SFACK1"   /* reader -> writer, alone in a message: end-of-stream received */
#define ZACK_LEN 6
#define ZACK_LINGER_MS 5000 /* how long a reader waits for the writer to take its ack */
#define HEARTBEAT_IVL_MS 2000      /* ZMTP pings: a peer that stops answering ... */
#define HEARTBEAT_TIMEOUT_MS 10000 /* ... is disconnected after this long (dead host, SIGSTOP) */
#define HANDSHAKE_IVL_MS 10000     /* a connection that does not complete the handshake is dropped */


/* ------------------------------------------------------------------------------------------
 * ZeroMQ plumbing.
 *
 * DEALER (writer) -> ROUTER (reader). The reader takes the first peer that sends a valid message
 * as the stream's writer and ignores every other peer from then on; before that, malformed
 * messages are dropped with a warning, and peers that connect and leave (or never complete the
 * ZMTP handshake) are not counted. On `end` the reader sends ZACK back to the stream's writer;
 * a writer's close waits for it, so a stream is reported done only once its reader has it. */

static void zfree_signal(void *data, void *hint) {
    (void)data;
    sf_wire *w = hint;
    atomic_fetch_sub(&w->zpending, 1);
    ssize_t r = write(w->zfree_pipe[1], "x", 1);
    (void)r;
}

/* Tear the ZeroMQ side down (linger ms for queued frames; 0 drops them at once). */
static void zmq_teardown(sf_wire *w, int linger) {
    for (int i = 0; i < w->zparts_held; i++) zmq_msg_close(&w->zparts[i]);
    w->zparts_held = 0;
    if (w->zmon) {
        /* Stop the monitor and drain its queue: libzmq leaks event frames left in it. */
        zmq_socket_monitor(w->zsock, NULL, 0);
        sf_wire_zmon_drain(w);
        int zero = 0;
        zmq_setsockopt(w->zmon, ZMQ_LINGER, &zero, sizeof zero);
        zmq_close(w->zmon);
    }
    if (w->zap) {
        int zero = 0;
        zmq_setsockopt(w->zap, ZMQ_LINGER, &zero, sizeof zero);
        zmq_close(w->zap);
    }
    /* the ipc:// socket file this side bound (sf-run's /tmp/sf-run-*.sock, shm's sf-shm-*.ctl):
     * libzmq leaves it behind, so remove it once the socket is closed */
    char ipc[1100] = "";
    size_t ipc_n = sizeof ipc - 1;
    if (w->zsock && w->zbind && (zmq_getsockopt(w->zsock, ZMQ_LAST_ENDPOINT, ipc, &ipc_n) != 0 || strncmp(ipc, "ipc:///", 7)))
        ipc[0] = 0;
    if (w->zsock) {
        zmq_setsockopt(w->zsock, ZMQ_LINGER, &linger, sizeof linger);
        zmq_close(w->zsock);
    }
    if (w->zctx) zmq_ctx_term(w->zctx); /* waits until every frame was freed */
    if (ipc[0]) {
        unlink(ipc + 6);
        sf_stop_forget(ipc + 6);
    }
    w->zmon = w->zsock = w->zctx = w->zap = NULL;
    for (int i = 0; i < 2; i++) {
        if (w->zfree_pipe[i] >= 0) close(w->zfree_pipe[i]);
        w->zfree_pipe[i] = -1;
    }
}

static int zpeer_del(sf_wire *w, int fd) {
    for (int i = 0; i < w->zconnected; i++)
        if (w->zpeer_fd[i] == fd) {
            w->zpeer_fd[i] = w->zpeer_fd[--w->zconnected];
            return 1;
        }
    return 0;
}

static int zpeer_has(const sf_wire *w, int fd) {
    for (int i = 0; i < w->zconnected; i++)
        if (w->zpeer_fd[i] == fd) return 1;
    return 0;
}

sf_status sf_wire_zmon_open(sf_wire *w, sf_err *err) {
    char mon[64];
    snprintf(mon, sizeof mon, "inproc://sf-wire-mon-%p", (void *)w);
    if (zmq_socket_monitor(w->zsock, mon, ZMQ_EVENT_CONNECTED | ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                                                ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                                ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_DISCONNECTED) == 0) {
        w->zmon = zmq_socket(w->zctx, ZMQ_PAIR);
        if (w->zmon && zmq_connect(w->zmon, mon) != 0) {
            zmq_close(w->zmon);
            w->zmon = NULL;
        }
    }
    if (!w->zmon) return sf_fail(err, SF_E_IO, "wire: %s: cannot monitor the socket: %s", w->url, zmq_strerror(errno));
    return SF_OK;
}

/* Read pending monitor events: open connections by fd (CONNECTED/ACCEPTED to DISCONNECTED),
 * and whether one completed the ZMTP handshake (libzmq reports that event without the fd, so
 * it is a flag, cleared when no connection is left). A bare TCP connect, a port scanner or a
 * peer without the run's CURVE key opens a connection but never completes the handshake. */
void sf_wire_zmon_drain(sf_wire *w) {
    if (!w->zmon) return;
    for (;;) {
        zmq_msg_t a, b;
        zmq_msg_init(&a);
        if (zmq_msg_recv(&a, w->zmon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&a);
            return;
        }
        if (zmq_msg_size(&a) >= 6) {
            uint16_t ev;
            uint32_t val;
            memcpy(&ev, zmq_msg_data(&a), 2); /* host order, as libzmq writes it */
            memcpy(&val, (const uint8_t *)zmq_msg_data(&a) + 2, 4);
            int fd = (int)val;
            if ((ev == ZMQ_EVENT_CONNECTED || ev == ZMQ_EVENT_ACCEPTED) && !zpeer_has(w, fd) &&
                w->zconnected < (int)(sizeof w->zpeer_fd / sizeof w->zpeer_fd[0])) {
                w->zpeer_fd[w->zconnected++] = fd;
            } else if (ev == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
                w->zhandshaken = w->zever_connected = 1;
                w->zdown_since = 0;
                w->zhs_refused = w->zhs_dropped = 0;
            } else if (ev == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL || ev == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ||
                       ev == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
                /* the connecting side, told "no" for a reason no retry changes: CURVE on one side only
                 * (PROTOCOL), a key the ZAP handler refuses (AUTH); a CURVE reader with another key pair
                 * cannot decrypt the HELLO and just drops the connection (NO_DETAIL), which one peer
                 * going away mid-handshake also does: only HS_DROPS of those in a row count */
                if (w->writer && !w->zhs_refused &&
                    (ev != ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL || ++w->zhs_dropped >= HS_DROPS))
                    w->zhs_refused = ev, w->zhs_detail = val;
                sf_debug("wire: %s: handshake failed (libzmq event 0x%x, detail %u)", w->url, ev, (unsigned)val);
                if (!w->writer && !w->zrefused++)
                    sf_warn("wire: %s: refused a peer that failed the ZeroMQ handshake%s", w->url,
                            w->curve ? " (without this run's CURVE key)" : " (not a wire writer)");
            } else if (ev == ZMQ_EVENT_DISCONNECTED) {
                if (zpeer_del(w, fd) && w->zconnected == 0) {
                    w->zhandshaken = 0;
                    if (!w->zdown_since) w->zdown_since = sf_now();
                }
                if (w->zstarted && fd == w->zsfd) w->zstream_down = 1;
            }
        }
        int more = zmq_msg_more(&a);
        zmq_msg_close(&a);
        if (more) {
            zmq_msg_init(&b);
            zmq_msg_recv(&b, w->zmon, 0);
            zmq_msg_close(&b);
        }
    }
}

sf_status sf_wire_zmon_refused(const sf_wire *w, const char *peer, sf_err *err) {
    const char *u = w->url;
    switch (w->zhs_refused) {
    case 0: return SF_OK;
    case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
        return sf_fail(err, SF_E_IO, "wire: %s: the %s refused this side's CURVE key: both need the same $SF_WIRE_CURVE_KEY", u, peer);
    case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        if (w->curve)
            return sf_fail(err, SF_E_IO, "wire: %s: the %s closed %d connections in a row during the CURVE handshake: its "
                           "$SF_WIRE_CURVE_KEY is not this side's, or it has none (both need the same key)", u, peer, HS_DROPS);
        /* a CURVE reader meeting a keyless writer reports the mechanism mismatch, or just drops the
         * connection, depending on which side's greeting lands first: both causes are named */
        return sf_fail(err, SF_E_IO, "wire: %s: the %s closed %d connections in a row during the ZeroMQ handshake: it uses "
                       "CURVE ($SF_WIRE_CURVE_KEY) where this side has none, or it is not a wire endpoint", u, peer, HS_DROPS);
    default:
        if (w->zhs_detail == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH && w->curve)
            return sf_fail(err, SF_E_IO, "wire: %s: this side uses CURVE ($SF_WIRE_CURVE_KEY is set), the %s does not: both need "
                           "the same key, or neither", u, peer);
        if (w->zhs_detail == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
            return sf_fail(err, SF_E_IO, "wire: %s: the %s uses CURVE (it has a $SF_WIRE_CURVE_KEY), this side has none: both need "
                           "the same key, or neither", u, peer);
        return sf_fail(err, SF_E_IO, "wire: %s: the ZeroMQ handshake with the %s failed (protocol error 0x%x): is it a wire endpoint?",
                       u, peer, w->zhs_detail);
    }
}

/* Writer: fail when there is no reader: none came within the timeout, or the one that was
 * connected left and did not come back within a grace period. Over ipc (and shm's control
 * socket) a reader that left and whose path nobody listens on any more is gone for good (exited,
 * or SIGKILLed: its socket file stays, refusing connections): the grace is then only for frames
 * in flight. A tcp peer may come back after a network blip, so it keeps the full grace. */
static sf_status zwriter_check(sf_wire *w, sf_err *err) {
    if (w->zhandshaken && w->zconnected > 0) return SF_OK;
    if (!w->zever_connected && sf_wire_zmon_refused(w, "reader", err)) { /* it would wait out --timeout */
        w->zpeer_gone = 1;
        return SF_E_IO;
    }
    double now = sf_now();
    if (w->zever_connected) {
        double down = w->zdown_since ? now - w->zdown_since : 0;
        if (down > WRITER_GRACE_S || (down > WRITER_GRACE_DEAD_S && w->zpeer_ipc[0] && !sf_wire_net_ipc_alive(w->zpeer_ipc))) {
            w->zpeer_gone = 1;
            return sf_fail(err, SF_E_IO, "wire: %s: downstream closed%s", w->url,
                           w->sent_end ? " before acknowledging end-of-stream: the stream may be incomplete" : "");
        }
    } else if (w->timeout_s > 0 && now - w->zopened > w->timeout_s) {
        w->zpeer_gone = 1;
        return sf_fail(err, SF_E_IO, "wire: %s: no reader connected within %g s (--timeout): nothing was delivered", w->url,
                       w->timeout_s);
    }
    return SF_OK;
}

/* Poll the socket (events), the monitor, the ZAP handler, the self-pipe and optionally an
 * extra fd; then apply the writer's checks. */
static sf_status zwait(sf_wire *w, short events, int extra_fd, long timeout_ms, sf_err *err) {
    zmq_pollitem_t it[5];
    int n = 0;
    if (events) it[n++] = (zmq_pollitem_t){w->zsock, 0, events, 0};
    if (w->zmon) it[n++] = (zmq_pollitem_t){w->zmon, 0, ZMQ_POLLIN, 0};
    if (w->zap) it[n++] = (zmq_pollitem_t){w->zap, 0, ZMQ_POLLIN, 0};
    if (sf_wire_selfpipe_fd() >= 0) it[n++] = (zmq_pollitem_t){NULL, sf_wire_selfpipe_fd(), ZMQ_POLLIN, 0};
    if (extra_fd >= 0) it[n++] = (zmq_pollitem_t){NULL, extra_fd, ZMQ_POLLIN, 0};
    /* wake up now and then: timeouts and the grace period are checked here */
    if (timeout_ms < 0 || timeout_ms > 200) timeout_ms = 200;
    int r = zmq_poll(it, n, timeout_ms);
    if (r < 0 && errno != EINTR) return sf_fail(err, SF_E_IO, "wire: zmq_poll: %s", zmq_strerror(errno));
    if (sf_wire_stopped()) return sf_wire_stop_err(err);
    sf_wire_zmon_drain(w);
    sf_wire_net_zap_serve(w);
    return w->writer ? zwriter_check(w, err) : SF_OK;
}

sf_status sf_wire_zmq_open(sf_wire *w, const char *addr, int force, sf_err *err) {
    sf_status st;
    w->zsfd = -1;
    w->zopened = sf_now();
    w->zctx = zmq_ctx_new();
    if (!w->zctx) return sf_fail(err, SF_E_IO, "wire: zmq_ctx_new: %s", zmq_strerror(errno));
    zmq_ctx_set(w->zctx, ZMQ_BLOCKY, 0);
    w->zsock = zmq_socket(w->zctx, w->writer ? ZMQ_DEALER : ZMQ_ROUTER);
    if (!w->zsock) return sf_fail(err, SF_E_IO, "wire: zmq_socket: %s", zmq_strerror(errno));
    int hwm = ZHWM, linger = w->writer ? WRITER_LINGER_MS : 0;
    int hb = HEARTBEAT_IVL_MS, hbt = HEARTBEAT_TIMEOUT_MS, hs = HANDSHAKE_IVL_MS;
    /* the largest frame a peer may send: a reader takes headers and payloads up to its cap, a
     * writer only acks (and handshake commands: CURVE's are a few hundred bytes); a bigger
     * frame drops the connection before it is buffered */
    int64_t maxmsg = w->writer ? 65536 : (int64_t)(w->max_payload > SF_WIRE_MAX_HEADER ? w->max_payload : SF_WIRE_MAX_HEADER);
    zmq_setsockopt(w->zsock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(w->zsock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(w->zsock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(w->zsock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    zmq_setsockopt(w->zsock, ZMQ_HEARTBEAT_IVL, &hb, sizeof hb);
    zmq_setsockopt(w->zsock, ZMQ_HEARTBEAT_TIMEOUT, &hbt, sizeof hbt);
    zmq_setsockopt(w->zsock, ZMQ_HANDSHAKE_IVL, &hs, sizeof hs);
    /* not ZMQ_IMMEDIATE on the writer: with it, libzmq drops a connection's unread inbound
     * messages (the reader's ack) as soon as the reader hangs up */
    if ((st = sf_wire_net_curve(w, err))) return st;
    if (w->writer) {
        if (pipe(w->zfree_pipe) != 0) return sf_fail(err, SF_E_IO, "wire: pipe: %s", strerror(errno));
        fcntl(w->zfree_pipe[0], F_SETFL, O_NONBLOCK);
        fcntl(w->zfree_pipe[1], F_SETFL, O_NONBLOCK);
    }
    if ((st = sf_wire_zmon_open(w, err))) return st;
    w->zbind = force == 1 || (force == 0 && !w->writer);
    if (w->zbind) {
        sf_status bs = sf_wire_net_bind(w, addr, err);
        /* an ipc socket file this side bound goes away however the program ends (stop.h) */
        if (bs == SF_OK && !strncmp(addr, "ipc:///", 7)) sf_stop_unlink_at_exit(addr + 6);
        return bs;
    }
    if (zmq_connect(w->zsock, addr) != 0)
        return sf_fail(err, SF_E_IO, "wire: cannot connect %s: %s", addr, zmq_strerror(errno));
    if (!strncmp(addr, "ipc://", 6) && strlen(addr + 6) < sizeof w->zpeer_ipc) snprintf(w->zpeer_ipc, sizeof w->zpeer_ipc, "%s", addr + 6);
    return SF_OK;
}

/* Send n parts: part 0 is a malloc'd header (ownership passes to ZeroMQ), the others are
 * borrowed zero-copy (len 0 → empty frame). Returns once ZeroMQ freed every frame. */
sf_status sf_wire_zmq_send_parts(sf_wire *w, void *hdr, size_t hlen, const void *const *bufs, const size_t *lens, int n,
                                 sf_err *err) {
    zmq_msg_t parts[4];
    int built = 0, sent = 0;
    sf_status st = SF_OK;
    /* The header and small payloads are copied (waiting for a free callback would cost more
     * than the copy); large payloads go zero-copy. */
    zmq_msg_init_size(&parts[built], hlen);
    memcpy(zmq_msg_data(&parts[built++]), hdr, hlen);
    free(hdr);
    for (int i = 0; i < n; i++) {
        if (lens[i] && lens[i] <= ZCOPY_MIN) {
            zmq_msg_init_size(&parts[built], lens[i]);
            memcpy(zmq_msg_data(&parts[built++]), bufs[i], lens[i]);
        } else if (lens[i]) {
            atomic_fetch_add(&w->zpending, 1);
            zmq_msg_init_data(&parts[built++], (void *)bufs[i], lens[i], zfree_signal, w);
        } else {
            zmq_msg_init(&parts[built++]);
        }
    }
    while (sent < built) {
        int flags = (sent + 1 < built ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT;
        if (zmq_msg_send(&parts[sent], w->zsock, flags) >= 0) {
            sent++;
            continue;
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN) {
            st = sf_fail(err, SF_E_IO, "wire: send %s: %s", w->url, zmq_strerror(errno));
            break;
        }
        if ((st = zwait(w, ZMQ_POLLOUT, -1, 500, err))) break;
    }
    for (int i = sent; i < built; i++) zmq_msg_close(&parts[i]); /* unsent: frees now */
    if (st) {
        if (sent) zmq_teardown(w, 0); /* a half-sent message; drop the socket, frames freed */
        return st;
    }
    /* Wait for ZeroMQ to release the borrowed frames. */
    while (atomic_load(&w->zpending) > 0) {
        char buf[64];
        while (read(w->zfree_pipe[0], buf, sizeof buf) > 0) {
        }
        if (atomic_load(&w->zpending) <= 0) break;
        if ((st = zwait(w, 0, w->zfree_pipe[0], 1000, err))) {
            zmq_teardown(w, 0);
            return st;
        }
    }
    return SF_OK;
}

sf_status sf_wire_zmq_send(sf_wire *w, const sf_wire_msg *m, const void *payload, sf_err *err) {
    if (!w->zsock) return sf_fail(err, SF_E_IO, "wire: %s is closed", w->url);
    void *hdr;
    size_t hlen;
    sf_status st = sf_wire_header_encode(m, &hdr, &hlen, err);
    if (st) return st;
    size_t nb = sf_wire_msg_nbytes(m);
    const void *bufs[1] = {payload};
    return sf_wire_zmq_send_parts(w, hdr, hlen, bufs, &nb, 1, err);
}

static void zrelease_parts(sf_wire *w) {
    for (int i = 0; i < w->zparts_held; i++) zmq_msg_close(&w->zparts[i]);
    w->zparts_held = 0;
}

/* Reader: no message now. Fail when the stream started and its writer left (after a short
 * wait for frames still in flight), or when no writer was connected for the timeout. */
static sf_status zreader_check(sf_wire *w, double *eof_at, long *poll_ms, sf_err *err) {
    double now = sf_now();
    *poll_ms = -1;
    if (w->zstarted && (w->zstream_down || (w->zsfd < 0 && w->zconnected == 0))) {
        if (!*eof_at) *eof_at = now + 0.5;
        if (now > *eof_at) return sf_fail(err, SF_E_IO, "wire: %s: " SF_WIRE_UPSTREAM_CLOSED, w->url);
        *poll_ms = 100;
    } else if (!w->zstarted && w->zconnected == 0 && w->timeout_s > 0) {
        /* an open connection (a writer still loading, a stalled scanner until the handshake
         * interval drops it) defers the verdict; peers that came and went do not */
        if (now - w->zopened > w->timeout_s)
            return sf_fail(err, SF_E_IO, "wire: %s: no writer connected for %g s (--timeout)", w->url, w->timeout_s);
    }
    return SF_OK;
}

/* Reader: receive one multipart message from the stream's writer (or, before the stream
 * started, from any peer) into w->zparts (released at the next call). */
static sf_status zrecv_parts(sf_wire *w, sf_err *err) {
    zrelease_parts(w);
    if (!w->zsock) return sf_fail(err, SF_E_IO, "wire: %s is closed", w->url);
    double eof_at = 0;
    for (;;) {
        zmq_msg_t id;
        zmq_msg_init(&id);
        if (zmq_msg_recv(&id, w->zsock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&id);
            if (errno != EAGAIN && errno != EINTR) return sf_fail(err, SF_E_IO, "wire: recv %s: %s", w->url, zmq_strerror(errno));
            long poll_ms;
            sf_status st = zreader_check(w, &eof_at, &poll_ms, err);
            if (!st) st = zwait(w, ZMQ_POLLIN, -1, poll_ms, err);
            if (st) return st;
            continue;
        }
        /* ROUTER: the routing id of the sending connection, then the message's parts */
        w->zlast_id_len = zmq_msg_size(&id) < sizeof w->zlast_id ? zmq_msg_size(&id) : sizeof w->zlast_id;
        memcpy(w->zlast_id, zmq_msg_data(&id), w->zlast_id_len);
        int more = zmq_msg_more(&id), extra = 0;
        zmq_msg_close(&id);
        while (more) {
            zmq_msg_t tmp, *dst = w->zparts_held < 4 ? &w->zparts[w->zparts_held] : &tmp;
            zmq_msg_init(dst);
            if (zmq_msg_recv(dst, w->zsock, 0) < 0) {
                zmq_msg_close(dst);
                return sf_fail(err, SF_E_IO, "wire: recv %s: %s", w->url, zmq_strerror(errno));
            }
            more = zmq_msg_more(dst);
            if (dst == &tmp) {
                zmq_msg_close(&tmp);
                extra = 1;
            } else {
                w->zparts_held++;
            }
        }
        w->zlast_fd = w->zparts_held ? zmq_msg_get(&w->zparts[0], ZMQ_SRCFD) : -1;
        int other = w->zstarted && (w->zlast_id_len != w->zsid_len || memcmp(w->zlast_id, w->zsid, w->zsid_len));
        if (other || (extra && !w->zstarted) || !w->zparts_held) {
            if (!w->zwarned++)
                sf_warn("wire: %s: ignoring messages from a peer that is not this stream's writer", w->url);
            zrelease_parts(w);
            continue;
        }
        if (extra) return sf_fail(err, SF_E_FORMAT, "wire: %s: message with more than 4 parts", w->url);
        return SF_OK;
    }
}

/* Reader: the next valid message. Before the stream started, a malformed message is some
 * other peer's (a scanner, a stray client): dropped with a warning. The first valid one fixes
 * the stream's writer; after that a malformed message is a broken stream. */
sf_status sf_wire_zmq_recv_msg(sf_wire *w, sf_wire_msg *m, const void **payload, sf_wire_zparse_fn parse, sf_err *err) {
    for (;;) {
        sf_status st = zrecv_parts(w, err);
        if (st) return st;
        st = parse(w, m, payload, err);
        if (!st) {
            if (!w->zstarted) {
                w->zstarted = 1;
                memcpy(w->zsid, w->zlast_id, w->zlast_id_len);
                w->zsid_len = w->zlast_id_len;
                w->zsfd = w->zlast_fd;
                sf_wire_zmon_drain(w);
                if (w->zsfd >= 0 && !zpeer_has(w, w->zsfd)) w->zstream_down = 1; /* it already left */
            }
            return SF_OK;
        }
        if (w->zstarted || st != SF_E_FORMAT) return st;
        if (!w->zwarned++) sf_warn("wire: %s: ignoring a malformed message from a peer (%s)", w->url, err->msg);
        zrelease_parts(w);
    }
}

/* A payload frame as an 8-byte-aligned pointer (ZeroMQ may hand out unaligned frames; then
 * copy into the endpoint's buffer so consumers can read floats directly). */
sf_status sf_wire_aligned_payload(sf_wire *w, const void *data, size_t n, const void **out, sf_err *err) {
    if (((uintptr_t)data & 7) == 0) {
        *out = data;
        return SF_OK;
    }
    if (w->pcap < n || !w->pbuf) {
        free(w->pbuf);
        w->pcap = 0;
        if (!(w->pbuf = malloc(n))) return sf_fail(err, SF_E_NOMEM, "wire: cannot allocate %zu bytes", n);
        w->pcap = n;
    }
    memcpy(w->pbuf, data, n);
    *out = w->pbuf;
    return SF_OK;
}

static sf_status zparse(sf_wire *w, sf_wire_msg *m, const void **payload, sf_err *err) {
    sf_status st;
    if (w->zparts_held != 2) return sf_fail(err, SF_E_FORMAT, "wire: %s: message of %d parts (want 2)", w->url, w->zparts_held);
    if ((st = sf_wire_header_decode(zmq_msg_data(&w->zparts[0]), zmq_msg_size(&w->zparts[0]), m, err))) return st;
    if ((st = sf_wire_check_size(w, m, err))) return st;
    size_t nb = zmq_msg_size(&w->zparts[1]);
    if (nb != sf_wire_msg_nbytes(m))
        return sf_fail(err, SF_E_FORMAT, "wire: %s: payload is %zu bytes, header says %zu", m->name, nb, sf_wire_msg_nbytes(m));
    *payload = NULL;
    return nb ? sf_wire_aligned_payload(w, zmq_msg_data(&w->zparts[1]), nb, payload, err) : SF_OK;
}

sf_status sf_wire_zmq_recv(sf_wire *w, sf_wire_msg *m, const void **payload, sf_err *err) {
    return sf_wire_zmq_recv_msg(w, m, payload, zparse, err);
}

/* The reader got `end`: acknowledge it to the stream's writer, then hang up once the writer
 * did (it does as soon as it has the ack; at most ZACK_LINGER_MS): libzmq may drop a message
 * that a peer has not read yet when the connection closes under it. */
void sf_wire_zmq_end_received(sf_wire *w) {
    if (!w->zctx) return;
    if (w->zstarted && !w->zacked) {
        w->zacked = 1;
        if (zmq_send(w->zsock, w->zsid, w->zsid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0 &&
            zmq_send(w->zsock, ZACK, ZACK_LEN, ZMQ_DONTWAIT) >= 0) {
            double until = sf_now() + ZACK_LINGER_MS / 1000.0;
            sf_err e;
            while (!w->zstream_down && !(w->zsfd < 0 && w->zconnected == 0) && sf_now() < until &&
                   zwait(w, 0, -1, 20, &e) == SF_OK) {
            }
        }
    }
    zmq_teardown(w, ZACK_LINGER_MS);
}

/* Writer after `end`: wait until the reader acknowledges it. Fails when the reader left first
 * (after a grace period), none ever came within the timeout, or on a signal. */
static sf_status zwait_ack(sf_wire *w, sf_err *err) {
    sf_status st = SF_OK;
    while (!st) {
        char buf[16];
        int n = zmq_recv(w->zsock, buf, sizeof buf, ZMQ_DONTWAIT);
        if (n == ZACK_LEN && !memcmp(buf, ZACK, ZACK_LEN)) return SF_OK;
        if (n >= 0 || errno == EINTR) continue; /* anything else from the reader: ignored */
        if (errno != EAGAIN) return sf_fail(err, SF_E_IO, "wire: recv %s: %s", w->url, zmq_strerror(errno));
        st = zwait(w, ZMQ_POLLIN, -1, 200, err);
    }
    return st;
}

sf_status sf_wire_zmq_close(sf_wire *w, sf_err *err) {
    sf_status st = SF_OK;
    if (!w->zctx) return SF_OK;
    /* A writer that sent `end` is done only once its reader acknowledged it: until then the
     * tail of the stream may sit in a queue that a vanished reader takes with it. */
    if (w->writer && w->sent_end) st = zwait_ack(w, err);
    /* Linger only where a reader may still take what is queued (an error message, say): not
     * after a failure, not once the reader is known gone (libzmq would hold queued frames for a
     * reconnect that never comes), and not once the stage is stopping (the stop watchdog would
     * kill it hard at SF_STOP_GRACE_MS while zmq_ctx_term waits). */
    int linger = w->writer && !st && !w->zpeer_gone && !sf_wire_stopped() ? WRITER_LINGER_MS : 0;
    zmq_teardown(w, linger);
    return st;
}
