/* wire_net.c — the network edge of the ZeroMQ transports (wire_zmq.c): which address a tcp
 * endpoint binds, and CURVE security for streams between the stages of one run.
 *
 * Binding: exactly the address asked, never wider. "tcp://127.0.0.1:P" and "tcp://[::1]:P" bind
 * that address; a name ("tcp://localhost:P", "tcp://$(hostname):P") is resolved with
 * getaddrinfo and every address it has is bound (a name that does not resolve may still be an
 * interface name, "tcp://eth0:P", which libzmq knows); the host "*" (or 0.0.0.0, [::]) binds
 * every interface, with a warning. "tcp://route=PEER:P" binds the local address the kernel
 * would use to reach PEER (sf-run's remote receivers: the interface that reaches the sender);
 * PEER "ssh-client" is the address this host was reached on by ssh ($SSH_CONNECTION).
 *
 * CURVE: when $SF_WIRE_CURVE_KEY holds a Z85 secret key (sf-run makes one per run), every tcp
 * endpoint uses it: readers are CURVE servers, writers clients with the same key pair, and a
 * ZAP handler on the reader accepts only clients whose public key is the run's. Streams are
 * encrypted and authenticated; a peer without the key never completes the handshake.
 *
 * Mirrors no reference module. Tested by tests/unit/test_wire.c (bind_*) and
 * tests/bats/net-edge.bats (names, CURVE peers refused). */
#define _POSIX_C_SOURCE 200809L
#include "wire_impl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* "tcp://" + numeric address (IPv6 in brackets) + ":" + port. */
static int numeric_url(char *out, size_t n, const struct sockaddr *sa, const char *port) {
    char ip[INET6_ADDRSTRLEN];
    if (sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, ip, sizeof ip);
        return snprintf(out, n, "tcp://%s:%s", ip, port) < (int)n;
    }
    if (sa->sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, ip, sizeof ip);
        return snprintf(out, n, "tcp://[%s]:%s", ip, port) < (int)n;
    }
    return 0;
}

static sf_status bind_one(sf_wire *w, const char *url, int v6, sf_err *err) {
    int on = v6;
    zmq_setsockopt(w->zsock, ZMQ_IPV6, &on, sizeof on);
    if (zmq_bind(w->zsock, url) != 0) return sf_fail(err, SF_E_IO, "wire: cannot bind %s: %s", url, zmq_strerror(errno));
    return SF_OK;
}

/* The local address the kernel routes to `peer` from (no packet is sent: a UDP connect). */
static sf_status route_to(const sf_wire *w, const char *peer, struct sockaddr_storage *ss, sf_err *err) {
    char buf[256];
    if (!strcmp(peer, "ssh-client")) { /* "client_ip client_port server_ip server_port" */
        const char *sc = getenv("SSH_CONNECTION");
        char a[64], b[16], c[64];
        if (!sc || sscanf(sc, "%63s %15s %63s", a, b, c) != 3)
            return sf_fail(err, SF_E_ARG, "wire: %s: route=ssh-client needs $SSH_CONNECTION (a stage started by ssh)", w->url);
        snprintf(buf, sizeof buf, "%s", c); /* the address ssh reached this host on */
        struct addrinfo hints = {0}, *ai = NULL;
        hints.ai_flags = AI_NUMERICHOST;
        if (getaddrinfo(buf, NULL, &hints, &ai) != 0 || !ai)
            return sf_fail(err, SF_E_ARG, "wire: %s: bad $SSH_CONNECTION", w->url);
        memcpy(ss, ai->ai_addr, ai->ai_addrlen);
        freeaddrinfo(ai);
        return SF_OK;
    }
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_socktype = SOCK_DGRAM;
    int gr = getaddrinfo(peer, "9", &hints, &ai);
    if (gr != 0 || !ai) return sf_fail(err, SF_E_ARG, "wire: %s: cannot resolve peer %s: %s", w->url, peer, gai_strerror(gr));
    int fd = socket(ai->ai_family, SOCK_DGRAM, 0);
    socklen_t len = sizeof *ss;
    int ok = fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 && getsockname(fd, (struct sockaddr *)ss, &len) == 0;
    int e = errno;
    if (fd >= 0) close(fd);
    freeaddrinfo(ai);
    if (!ok) return sf_fail(err, SF_E_IO, "wire: %s: no route to %s: %s", w->url, peer, strerror(e));
    return SF_OK;
}

int sf_wire_net_ipc_alive(const char *path) {
    struct sockaddr_un sa;
    if (strlen(path) >= sizeof sa.sun_path) return 0;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

sf_status sf_wire_net_bind(sf_wire *w, const char *addr, sf_err *err) {
    if (strncmp(addr, "tcp://", 6) != 0) { /* ipc:// */
        /* libzmq unlinks whatever is at the path before it binds: a second reader of the same
         * stream (ipc://X, or shm://NAME's control socket) would silently take a live reader's
         * path and remove it on exit. A socket file nobody listens on (its owner was SIGKILLed)
         * is stale: replaced, as libzmq does. */
        if (!strncmp(addr, "ipc://", 6) && sf_wire_net_ipc_alive(addr + 6))
            return sf_fail(err, SF_E_IO, "wire: %s: cannot bind %s: another process is listening there (a second reader of this stream?)",
                           w->url, addr + 6);
        if (zmq_bind(w->zsock, addr) != 0) return sf_fail(err, SF_E_IO, "wire: cannot bind %s: %s", addr, zmq_strerror(errno));
        return SF_OK;
    }
    const char *hp = addr + 6, *colon = strrchr(hp, ':');
    char host[256], port[16], url[320];
    if (!colon || colon == hp || strlen(colon + 1) == 0 || strlen(colon + 1) >= sizeof port || (size_t)(colon - hp) >= sizeof host)
        return sf_fail(err, SF_E_ARG, "wire: %s: expected tcp://HOST:PORT", addr);
    memcpy(host, hp, (size_t)(colon - hp));
    host[colon - hp] = 0;
    snprintf(port, sizeof port, "%s", colon + 1);
    if (strchr(host, ';')) return sf_fail(err, SF_E_ARG, "wire: %s: a bind address names one host", addr);
    if (!strcmp(host, "*") || !strcmp(host, "0.0.0.0") || !strcmp(host, "[::]") || !strcmp(host, "::")) {
        sf_warn("wire: %s binds every network interface: any host that can reach this one may connect%s", addr,
                w->curve ? "" : " (no CURVE key: unauthenticated and unencrypted)");
        return bind_one(w, addr, host[0] == '[' || host[0] == ':', err);
    }
    struct sockaddr_storage ss;
    if (!strncmp(host, "route=", 6)) {
        sf_status st = route_to(w, host + 6, &ss, err);
        if (st) return st;
        if (!numeric_url(url, sizeof url, (struct sockaddr *)&ss, port)) return sf_fail(err, SF_E_ARG, "wire: %s: bad address", addr);
        return bind_one(w, url, ss.ss_family == AF_INET6, err);
    }
    /* a numeric address or a name: bind every address it resolves to (never a wider one) */
    char name[256];
    size_t hl = strlen(host);
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') snprintf(name, sizeof name, "%.*s", (int)(hl - 2), host + 1);
    else snprintf(name, sizeof name, "%s", host);
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_socktype = SOCK_STREAM;
    int gr = getaddrinfo(name, NULL, &hints, &ai);
    if (gr != 0 || !ai) {
        /* not a host name: libzmq also takes an interface name (tcp://eth0:P) */
        if (zmq_bind(w->zsock, addr) == 0) return SF_OK;
        return sf_fail(err, SF_E_IO, "wire: cannot bind %s: '%s' is neither a host name nor an interface (%s)", addr, name,
                       gai_strerror(gr));
    }
    int bound = 0;
    sf_status st = SF_OK;
    for (struct addrinfo *p = ai; p; p = p->ai_next) {
        if (!numeric_url(url, sizeof url, p->ai_addr, port)) continue;
        int dup = 0; /* getaddrinfo lists an address once per protocol */
        for (struct addrinfo *q = ai; q != p; q = q->ai_next)
            if (q->ai_addrlen == p->ai_addrlen && !memcmp(q->ai_addr, p->ai_addr, p->ai_addrlen)) dup = 1;
        if (dup) continue;
        sf_err e2;
        if (!bind_one(w, url, p->ai_family == AF_INET6, bound ? &e2 : err)) bound++;
        else if (!bound) st = SF_E_IO;
        if (!strcmp(port, "*") || !strcmp(port, "0")) break; /* an ephemeral port: one address */
    }
    freeaddrinfo(ai);
    return bound ? SF_OK : st ? st : sf_fail(err, SF_E_IO, "wire: cannot bind %s: no usable address", addr);
}

int sf_wire_curve_key_valid(const char *k) {
    uint8_t raw[32];
    return k && strlen(k) == 40 && zmq_z85_decode(raw, k) != NULL;
}

sf_status sf_wire_net_curve(sf_wire *w, sf_err *err) {
    const char *k = getenv("SF_WIRE_CURVE_KEY");
    if (w->kind != SF_WK_TCP || !k || !*k) return SF_OK;
    if (!sf_wire_curve_key_valid(k))
        return sf_fail(err, SF_E_ARG, "wire: $SF_WIRE_CURVE_KEY is not a Z85 CURVE secret key (40 characters)");
    if (!zmq_has("curve")) return sf_fail(err, SF_E_UNSUPPORTED, "wire: $SF_WIRE_CURVE_KEY is set but this libzmq has no CURVE");
    memcpy(w->curve_sec, k, 41);
    if (zmq_curve_public(w->curve_pub, w->curve_sec) != 0)
        return sf_fail(err, SF_E_ARG, "wire: $SF_WIRE_CURVE_KEY: %s", zmq_strerror(errno));
    w->curve = 1;
    int one = 1;
    if (!w->writer) {
        /* the ZAP handler must exist before the socket binds or connects */
        w->zap = zmq_socket(w->zctx, ZMQ_REP);
        if (!w->zap || zmq_bind(w->zap, "inproc://zeromq.zap.01") != 0)
            return sf_fail(err, SF_E_IO, "wire: ZAP handler: %s", zmq_strerror(errno));
        zmq_setsockopt(w->zsock, ZMQ_ZAP_DOMAIN, "sfpipe", 6);
        if (zmq_setsockopt(w->zsock, ZMQ_CURVE_SERVER, &one, sizeof one) ||
            zmq_setsockopt(w->zsock, ZMQ_CURVE_SECRETKEY, w->curve_sec, 40))
            return sf_fail(err, SF_E_IO, "wire: CURVE server: %s", zmq_strerror(errno));
    } else if (zmq_setsockopt(w->zsock, ZMQ_CURVE_SERVERKEY, w->curve_pub, 40) ||
               zmq_setsockopt(w->zsock, ZMQ_CURVE_PUBLICKEY, w->curve_pub, 40) ||
               zmq_setsockopt(w->zsock, ZMQ_CURVE_SECRETKEY, w->curve_sec, 40)) {
        return sf_fail(err, SF_E_IO, "wire: CURVE client: %s", zmq_strerror(errno));
    }
    return SF_OK;
}

/* ZAP (RFC 27): request [version, id, domain, address, identity, mechanism, credentials...],
 * reply [version, id, status code, status text, user id, metadata]. */
void sf_wire_net_zap_serve(sf_wire *w) {
    if (!w->zap) return;
    uint8_t pub[32];
    zmq_z85_decode(pub, w->curve_pub);
    for (;;) {
        zmq_msg_t part[8];
        int n = 0, more = 1;
        zmq_msg_init(&part[0]);
        if (zmq_msg_recv(&part[0], w->zap, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&part[0]);
            return;
        }
        more = zmq_msg_more(&part[0]);
        n = 1;
        while (more) {
            zmq_msg_t tmp, *dst = n < 8 ? &part[n] : &tmp;
            zmq_msg_init(dst);
            if (zmq_msg_recv(dst, w->zap, 0) < 0) {
                zmq_msg_close(dst);
                break;
            }
            more = zmq_msg_more(dst);
            if (dst == &tmp) zmq_msg_close(&tmp);
            else n++;
        }
        int ok = n >= 7 && zmq_msg_size(&part[5]) == 5 && !memcmp(zmq_msg_data(&part[5]), "CURVE", 5) &&
                 zmq_msg_size(&part[6]) == 32 && !memcmp(zmq_msg_data(&part[6]), pub, 32);
        if (!ok && !w->zrefused++) sf_warn("wire: %s: refused a peer without this run's CURVE key", w->url);
        if (n >= 2) {
            zmq_send(w->zap, "1.0", 3, ZMQ_SNDMORE);
            zmq_send(w->zap, zmq_msg_data(&part[1]), zmq_msg_size(&part[1]), ZMQ_SNDMORE);
            zmq_send(w->zap, ok ? "200" : "400", 3, ZMQ_SNDMORE);
            zmq_send(w->zap, ok ? "OK" : "unknown key", ok ? 2 : 11, ZMQ_SNDMORE);
            zmq_send(w->zap, "", 0, ZMQ_SNDMORE);
            zmq_send(w->zap, "", 0, 0);
        }
        for (int i = 0; i < n; i++) zmq_msg_close(&part[i]);
    }
}
