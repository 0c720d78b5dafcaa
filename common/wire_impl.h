/* wire_impl.h — internals shared by wire.c (codec, byte streams, signals, dispatch),
 * wire_zmq.c (ZeroMQ transports), wire_shm.c (shm ring) and wire_net.c (binds, CURVE). Not a public API; include wire.h instead.
 * Tested through tests/unit/test_wire.c. */
#ifndef SF_WIRE_IMPL_H
#define SF_WIRE_IMPL_H

#include "wire.h"

#include <stdatomic.h>
#include <stdio.h>
#include <zmq.h>

enum { SF_WK_STDIO = 1, SF_WK_FD, SF_WK_FILE, SF_WK_TCP, SF_WK_IPC, SF_WK_SHM };

struct sf_wire_shm; /* wire_shm.c */

struct sf_wire {
    int writer;           /* 1 writer, 0 reader */
    int kind;             /* SF_WK_* */
    double timeout_s;     /* sf_wire_opts.timeout_s resolved (0: wait forever) */
    size_t max_payload;   /* sf_wire_opts.max_payload resolved */
    char url[1024];
    int sent_end, got_end;
    sf_wire_msg end_msg;  /* replayed after end */
    /* byte streams */
    int fd, own_fd;
    sf_atomic_file af;    /* file writer */
    int file_open;
    uint8_t *hbuf;        /* reader: header bytes */
    size_t hcap;
    uint8_t *pbuf;        /* reader: payload bytes (borrowed to the caller) */
    size_t pcap;
    /* scratch for sf_wire_reserve on non-shm transports */
    void *scratch;
    size_t scratch_cap;
    /* zeromq */
    void *zctx, *zsock, *zmon, *zap;
    int zbind;
    int zpeer_fd[64], zconnected; /* open connections (monitor fds) */
    int zhandshaken;      /* a connection completed the ZMTP handshake (cleared when none is left) */
    int zever_connected;  /* one ever did */
    double zopened;       /* when the endpoint was opened (timeout clock before any peer came) */
    double zdown_since;   /* when the last peer disconnected (0: connected) */
    /* reader: the stream's writer, fixed by its first valid message (other peers are ignored) */
    uint8_t zsid[256];    /* its ROUTER routing id */
    size_t zsid_len;
    int zsfd;             /* its connection's fd (-1 unknown) */
    int zstarted, zstream_down, zacked, zwarned, zrefused; /* zwarned, zrefused: warned once */
    /* writer / client: its peer refused the handshake (CURVE on one side only, another CURVE key), so
     * no retry can succeed: zhs_refused is the libzmq event (0: none) and zhs_detail its value;
     * zhs_dropped counts handshakes the peer cut short in a row. A handshake that succeeds clears them. */
    int zhs_refused, zhs_dropped;
    unsigned zhs_detail;
    size_t zlast_id_len;  /* routing id of the message in zparts */
    uint8_t zlast_id[256];
    int zlast_fd;
    /* writer: the reader acknowledged end-of-stream */
    int zgot_ack;
    /* writer: the reader left for good, or never came (close does not linger then) */
    int zpeer_gone;
    /* writer connecting over ipc: the reader's socket path (is anyone still listening there?) */
    char zpeer_ipc[108];
    /* CURVE (SF_WIRE_CURVE_KEY): the run's key pair, Z85 */
    int curve;
    char curve_pub[41], curve_sec[41];
    int zparts_held;
    zmq_msg_t zparts[4];         /* received parts, held until the next recv */
    int zfree_pipe[2];           /* zero-copy frees signal here */
    atomic_int zpending;
    /* shm */
    struct sf_wire_shm *shm;
};

/* wire.c helpers used by wire_zmq.c */
sf_status sf_wire_check_size(const sf_wire *w, const sf_wire_msg *m, sf_err *err);
int sf_wire_selfpipe_fd(void); /* -1 when signals are not installed */
sf_status sf_wire_stop_err(sf_err *err);

/* wire_net.c: the network edge of the ZeroMQ transports */
/* Bind w->zsock to exactly the address asked (names resolved, never widened; see wire.h); an ipc
 * path where a live process listens is refused (libzmq would take it over). */
sf_status sf_wire_net_bind(sf_wire *w, const char *addr, sf_err *err);
/* 1 when something accepts connections on the Unix socket `path` (0: none, or a stale file). */
int sf_wire_net_ipc_alive(const char *path);
/* CURVE from $SF_WIRE_CURVE_KEY on tcp endpoints (no-op when unset); before bind/connect. */
sf_status sf_wire_net_curve(sf_wire *w, sf_err *err);
/* Answer pending ZAP requests (reader with CURVE): only the run's own key is accepted. */
void sf_wire_net_zap_serve(sf_wire *w);
/* wire_zmq.c: the socket monitor (open before bind/connect; drain when w->zmon is readable): open
 * connections, completed handshakes, and one warning for a peer that failed the handshake (a reader
 * with CURVE: a peer without the run's key). Also used by sf-encode --serve (stages/encode/serve.c). */
sf_status sf_wire_zmon_open(sf_wire *w, sf_err *err);
void sf_wire_zmon_drain(sf_wire *w);
/* Writer / client: SF_E_IO naming the cause when its peer refused the handshake (w->zhs_refused: only
 * one side has $SF_WIRE_CURVE_KEY, or the keys differ; `peer` says what the peer is), else SF_OK. */
sf_status sf_wire_zmon_refused(const sf_wire *w, const char *peer, sf_err *err);

/* wire_zmq.c */
sf_status sf_wire_zmq_open(sf_wire *w, const char *addr, int force, sf_err *err);
sf_status sf_wire_zmq_send(sf_wire *w, const sf_wire_msg *m, const void *payload, sf_err *err);
sf_status sf_wire_zmq_recv(sf_wire *w, sf_wire_msg *m, const void **payload, sf_err *err);
void sf_wire_zmq_end_received(sf_wire *w);
sf_status sf_wire_zmq_close(sf_wire *w, sf_err *err);
/* Send n parts: part 0 is a malloc'd header (ownership passes), the others are borrowed
 * (len 0: an empty frame); returns once ZeroMQ released every frame. */
sf_status sf_wire_zmq_send_parts(sf_wire *w, void *hdr, size_t hlen, const void *const *bufs, const size_t *lens, int n,
                                 sf_err *err);
/* Reader: the next valid message, its parts in w->zparts, decoded by `parse`. */
typedef sf_status (*sf_wire_zparse_fn)(sf_wire *w, sf_wire_msg *m, const void **payload, sf_err *err);
sf_status sf_wire_zmq_recv_msg(sf_wire *w, sf_wire_msg *m, const void **payload, sf_wire_zparse_fn parse, sf_err *err);
/* `data` as an 8-byte-aligned pointer (copied into w->pbuf when it is not). */
sf_status sf_wire_aligned_payload(sf_wire *w, const void *data, size_t n, const void **out, sf_err *err);

/* wire_shm.c */
sf_status sf_wire_shm_open(sf_wire *w, const char *spec, sf_err *err);
sf_status sf_wire_shm_send(sf_wire *w, const sf_wire_msg *m, const void *payload, sf_err *err);
sf_status sf_wire_shm_recv(sf_wire *w, sf_wire_msg *m, const void **payload, sf_err *err);
sf_status sf_wire_shm_reserve(sf_wire *w, size_t nbytes, void **buf, sf_err *err);
sf_status sf_wire_shm_close(sf_wire *w, sf_err *err);

#endif
