/* test_view.c — sf-view's pieces (tools/view/view.h): the POST /prompt parser's refusals, a served
 * server's /status JSON (escaping through cJSON), a frame going through the JPEG encoder, playback
 * pacing with our clock and another host's, and over raw HTTP: --max-viewers (503), the stream's
 * headers, stalled viewers dropped, idle connections dropped and making room (a slow frame is not
 * idleness), two Host headers refused, a prompt request the encoder does not answer (another POST
 * meanwhile is 503 at once, the route's stop still goes through, the next request reaches the
 * encoder). The page in a browser: tests/bats/live.bats. */
#define _POSIX_C_SOURCE 200809L
#include "sf_test.h"
#include "fake_encoder.h"
#include "tools/view/view.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

static int test_port(int k) { return 20000 + (int)((getpid() * 7 + k) % 20000); }

static void nap(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

/* ---- raw HTTP ---- */

/* Connect to 127.0.0.1:port (SO_RCVBUF rcvbuf when > 0, set before connecting) and send req. */
static int http_open(int port, const char *req, int rcvbuf) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    if (rcvbuf > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET, sa.sin_port = htons((uint16_t)port), sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || send(fd, req, strlen(req), MSG_NOSIGNAL) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Read the response head (through the blank line) into buf; the status code, 0 when none came. */
static int http_head(int fd, char *buf, size_t n) {
    size_t k = 0;
    buf[0] = 0;
    while (fd >= 0 && k + 1 < n && recv(fd, buf + k, 1, 0) == 1) {
        buf[++k] = 0;
        if (k >= 4 && !memcmp(buf + k - 4, "\r\n\r\n", 4)) break;
    }
    int code = 0;
    return sscanf(buf, "HTTP/1.%*d %d", &code) == 1 ? code : 0;
}

/* One request (Connection: close): the status code; the body (truncated to n) in body. */
static int http(int port, const char *req, char *body, size_t n) {
    char head[4096];
    int fd = http_open(port, req, 0), code = http_head(fd, head, sizeof head);
    size_t k = 0;
    ssize_t r;
    while (fd >= 0 && k + 1 < n && (r = recv(fd, body + k, n - 1 - k, 0)) > 0) k += (size_t)r;
    body[k] = 0;
    if (fd >= 0) close(fd);
    return code;
}

static int post(int port, const char *json, char *body, size_t n) {
    char req[1024];
    snprintf(req, sizeof req, "POST /prompt HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\nConnection: close\r\n\r\n%s", strlen(json), json);
    return http(port, req, body, n);
}

#define GET_STREAM "GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
#define GET_STATUS "GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"

/* One frames message u8 [n, H, W, 3] of noise (JPEG keeps it large), with meta t_sent / clock. */
static sf_wire_msg *frames_msg(int n, int hw, double t_sent, const char *clock, unsigned char **px) {
    static sf_wire_msg m;
    size_t bytes = (size_t)n * hw * hw * 3;
    *px = malloc(bytes);
    for (size_t i = 0; *px && i < bytes; i++) (*px)[i] = (unsigned char)(rand() & 255);
    int64_t sh[4] = {n, hw, hw, 3};
    sf_tensor t = sf_tensor_view(*px, SF_U8, 4, sh);
    sf_err err;
    SF_CHECK_OK(sf_wire_msg_tensor(&m, "frames", &t, &err), &err);
    if (t_sent > 0) SF_CHECK_OK(sf_wire_meta_set_double(&m, "t_sent", t_sent, &err), &err);
    if (clock) SF_CHECK_OK(sf_wire_meta_set_str(&m, "clock", clock, &err), &err);
    return &m;
}

static void test_parse_prompt(void) {
    char out[SF_VIEW_MAX_PROMPT + 1];
    int rc;
    sf_err err = {{0}};
#define OK(body, want, want_rc)                                                                           \
    do {                                                                                                   \
        SF_CHECK_OK(sf_view_parse_prompt(body, strlen(body), out, sizeof out, &rc, &err), &err);            \
        SF_CHECK_MSG(!strcmp(out, want) && rc == (want_rc), "%s -> '%s' %d", body, out, rc);                \
    } while (0)
#define BAD(body, why)                                                                                    \
    do {                                                                                                   \
        SF_CHECK(sf_view_parse_prompt(body, strlen(body), out, sizeof out, &rc, &err) == SF_E_ARG);        \
        SF_CHECK_MSG(strstr(err.msg, why) != NULL, "%s: %s", body, err.msg);                                \
    } while (0)
    OK("{\"prompt\": \"a cat\"}", "a cat", -1);
    OK("{\"prompt\": \"<b>\\\"x\\\"</b>\", \"recache\": false}", "<b>\"x\"</b>", 0);
    OK("{\"recache\": true, \"prompt\": \"caf\\u00e9\"}", "caf\xc3\xa9", 1);
    BAD("prompt=a", "JSON object");
    BAD("[\"a\"]", "JSON object");
    BAD("{\"prompt\": 3}", "must be a string");
    BAD("{\"prompt\": \"a\", \"recache\": 1}", "true or false");
    BAD("{\"prompt\": \"\"}", "1..2000 bytes");
    BAD("{\"prompt\": \"  \"}", "empty");
    BAD("{\"prompt\": \"a\\u0001b\"}", "control character");
    BAD("{\"prompt\": \"a\\nb\"}", "control character");
    BAD("{\"prompt\": \"a\xff\"}", "UTF-8");
    BAD("{\"prompt\": \"\\ud800\"}", "JSON object"); /* a lone surrogate escape: cJSON refuses it */
    BAD("{\"prompt\": \"a\xe6\x97z\"}", "UTF-8");
    /* an escaped NUL: cJSON's C string ends there, the rest must not slip through as "a" */
    BAD("{\"prompt\": \"a\\u0000b\"}", "control character");
    BAD("{\"prompt\": \"a\\u0000\\u0001b\"}", "control character");
    BAD("{\"prompt\": \"a\", \"x\": \"\\u0000\"}", "control character");
    OK("{\"prompt\": \"a\\\\u0000b\"}", "a\\u0000b", -1); /* an escaped backslash, then text */
    SF_CHECK(sf_view_parse_prompt("{\"prompt\": \"a\0b\"}", 17, out, sizeof out, &rc, &err) == SF_E_ARG); /* raw NUL */
    /* C1 controls (U+009B: an 8-bit CSI) and bidi overrides / isolates, as the log escapes them */
    BAD("{\"prompt\": \"a\xc2\x9b" "31m\"}", "control character");
    BAD("{\"prompt\": \"a\xc2\x85\"}", "control character");
    BAD("{\"prompt\": \"a\xe2\x80\xae" "b\"}", "control character");
    BAD("{\"prompt\": \"a\\u2067b\"}", "control character");
    OK("{\"prompt\": \"a\tb \xc2\xa0\xe2\x80\x94\"}", "a\tb \xc2\xa0\xe2\x80\x94", -1); /* tab, NBSP, em dash */
    /* nothing but white space after the object */
    BAD("{\"prompt\": \"abc\"} garbage", "JSON object");
    BAD("{\"prompt\": \"abc\"}{}", "JSON object");
    OK("{\"prompt\": \"abc\"} \r\n", "abc", -1);
    static char as[2001], big[2100];
    memset(as, 'a', sizeof as);
    snprintf(big, sizeof big, "{\"prompt\": \"%.*s\"}", 2001, as);
    BAD(big, "1..2000 bytes");
}

/* The DNS-rebinding guard: names a page's owner can re-point at this machine are refused. */
static void test_host(void) {
    static const char *ok[] = {NULL, "127.0.0.1", "127.0.0.1:8080", "192.168.1.20:80", "[::1]:8080", "[::1]",
                               "localhost", "LocalHost:8080", "localhost.:8080", "view.localhost:8080", "0.0.0.0"};
    static const char *bad[] = {"", "evil.example", "evil.example:8080", "localhost.evil.example", "mylocalhost",
                                "127.0.0.1.evil.example", "127.1", "[::1", "[::1]x", "[nothost]:80", "localhost:",
                                "localhost:80x", "127.0.0.1:8080:1", ".localhost", "gpu-box:8080"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        SF_CHECK_MSG(sf_view_host_ok(ok[i], NULL), "Host '%s' should be served", ok[i] ? ok[i] : "(none)");
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        SF_CHECK_MSG(!sf_view_host_ok(bad[i], NULL), "Host '%s' should be refused", bad[i]);
    /* --allow-host: exact names, any case, any port; not suffixes or prefixes */
    const char *allow = "gpu-box,Studio.lan";
    SF_CHECK(sf_view_host_ok("gpu-box:8080", allow) && sf_view_host_ok("GPU-BOX", allow));
    SF_CHECK(sf_view_host_ok("studio.lan:80", allow));
    SF_CHECK(!sf_view_host_ok("gpu-box.evil.example", allow) && !sf_view_host_ok("gpu-bo", allow));
    SF_CHECK(!sf_view_host_ok("lan", allow) && !sf_view_host_ok("evil.example", allow));
    SF_CHECK(!sf_view_host_ok("gpu-box", ",") && sf_view_host_ok("gpu-box", ",gpu-box,"));
}

static void test_status_and_frame(void) {
    sf_err err = {{0}};
    sf_view *v = NULL;
    sf_view_opts o = {"127.0.0.1", test_port(0), NULL, 512, 85, 1000, 4, 1.0, NULL, 0, 0};
    SF_CHECK_OK(sf_view_new(&o, &v, &err), &err);
    if (!v) return;
    /* one frame of a block whose prompt needs escaping */
    enum { H = 8, W = 12 };
    static unsigned char px[2 * H * W * 3];
    for (size_t i = 0; i < sizeof px; i++) px[i] = (unsigned char)(i * 7);
    sf_wire_msg m;
    int64_t sh[4] = {2, H, W, 3};
    sf_tensor t = sf_tensor_view(px, SF_U8, 4, sh);
    SF_CHECK_OK(sf_wire_msg_tensor(&m, "frames", &t, &err), &err);
    SF_CHECK_OK(sf_wire_meta_set_str(&m, "prompt", "a \"fox\" </script>\n", &err), &err);
    SF_CHECK_OK(sf_wire_meta_set_int(&m, "block", 4, &err), &err);
    SF_CHECK_OK(sf_wire_meta_set_int(&m, "start_frame", 45, &err), &err);
    SF_CHECK_OK(sf_view_play(v, &m, px, &err), &err);
    char *js = sf_view_status_json(v);
    cJSON *j = cJSON_Parse(js);
    SF_CHECK(j != NULL);
    if (j) {
        SF_CHECK(!strcmp(cJSON_GetObjectItem(j, "prompt")->valuestring, "a \"fox\" </script>\n"));
        SF_CHECK(cJSON_GetObjectItem(j, "block")->valuedouble == 4);
        SF_CHECK(cJSON_GetObjectItem(j, "frame")->valuedouble == 46);
        SF_CHECK(cJSON_GetObjectItem(j, "switches")->valuedouble == 0);
        SF_CHECK(cJSON_IsFalse(cJSON_GetObjectItem(j, "can_prompt"))); /* no encoder */
        SF_CHECK(cJSON_GetObjectItem(j, "recorded")->valuedouble == -1); /* no --record */
    }
    cJSON_Delete(j);
    free(js);
    sf_view_set_recorded(v, 7);
    js = sf_view_status_json(v);
    SF_CHECK_MSG(strstr(js, "\"recorded\":7,"), "%s", js);
    free(js);
    /* a second prompt counts one switch */
    SF_CHECK_OK(sf_wire_meta_set_str(&m, "prompt", "a cat", &err), &err);
    SF_CHECK_OK(sf_view_play(v, &m, px, &err), &err);
    js = sf_view_status_json(v);
    SF_CHECK(strstr(js, "\"switches\":1") && strstr(js, "\"prompt\":\"a cat\""));
    free(js);
    /* frames that are not u8 [n, H, W, 3] */
    int64_t bad[3] = {H, W, 3};
    sf_tensor tb = sf_tensor_view(px, SF_U8, 3, bad);
    SF_CHECK_OK(sf_wire_msg_tensor(&m, "frames", &tb, &err), &err);
    SF_CHECK(sf_view_play(v, &m, px, &err) == SF_E_SHAPE);
    sf_view_mark_ended(v);
    double idle;
    SF_CHECK(sf_view_viewers(v, &idle) == 0 && idle < 0);
    sf_view_destroy(&v);
    SF_CHECK(v == NULL);
    /* refusals: a port in use, a bad address */
    sf_view *v2 = NULL;
    sf_view_opts bad_o = o;
    bad_o.bind = "localhost";
    SF_CHECK(sf_view_new(&bad_o, &v2, &err) == SF_E_ARG && strstr(err.msg, "IPv4"));
}

/* Pacing and latency: t_sent compares with our clock only when the frames say they were stamped by it
 * (meta clock); another host's t_sent counts from the least delay seen, and its latency is unknown. */
static void test_clock(void) {
    sf_err err = {{0}};
    sf_view *v = NULL;
    sf_view_opts o = {"127.0.0.1", test_port(1), NULL, 512, 85, 20, 4, 0.3, NULL, 0, 0}; /* 20 fps: 50 ms apart */
    SF_CHECK_OK(sf_view_new(&o, &v, &err), &err);
    if (!v) return;
    char clk[64], *js;
    sf_clock_id(clk, sizeof clk);
    SF_CHECK(clk[0] != 0);
    unsigned char *px = NULL;
    /* our clock, 5 s late: shown at once (catching up), latency 5 s */
    sf_wire_msg *m = frames_msg(4, 8, sf_now() - 5, clk, &px);
    double t0 = sf_now();
    SF_CHECK_OK(sf_view_play(v, m, px, &err), &err);
    SF_CHECK_MSG(sf_now() - t0 < 0.12, "late frames paced: %.3f s", sf_now() - t0);
    js = sf_view_status_json(v);
    cJSON *j = cJSON_Parse(js);
    double lat = j ? cJSON_GetObjectItem(j, "latency_ms")->valuedouble : 0;
    SF_CHECK_MSG(lat > 4900 && lat < 6000, "latency %.0f ms", lat);
    cJSON_Delete(j);
    free(js);
    free(px);
    /* another host's clock (far behind ours, or absent): not "late", paced at 20 fps, latency unknown */
    const char *other[2] = {NULL, "another-host-boot-id"};
    for (int k = 0; k < 2; k++) {
        m = frames_msg(4, 8, 1.0 + k, other[k], &px);
        t0 = sf_now();
        SF_CHECK_OK(sf_view_play(v, m, px, &err), &err);
        SF_CHECK_MSG(sf_now() - t0 >= 0.14, "another clock's frames not paced: %.3f s", sf_now() - t0);
        js = sf_view_status_json(v);
        SF_CHECK_MSG(strstr(js, "\"latency_ms\":-1"), "%s", js);
        free(js);
        free(px);
    }
    /* the same block stamp again 0.5 s later: it has waited longer than the least delay seen by more
     * than max_lag (0.3 s), so playback catches up */
    nap(0.5);
    m = frames_msg(4, 8, 2.0, other[1], &px);
    t0 = sf_now();
    SF_CHECK_OK(sf_view_play(v, m, px, &err), &err);
    SF_CHECK_MSG(sf_now() - t0 < 0.12, "lagging frames paced: %.3f s", sf_now() - t0);
    free(px);
    sf_view_destroy(&v);
}

/* A block comes as one message per latent frame (sf-decode), all with the block's t_sent: the frames of a
 * later message are due later by the frames before them in the block. Played at its rate, a fresh block
 * is not lagging (before, its third message counted from the block's first frame, passed max_lag and was
 * shown at once: a fast-forward every block), and the latency is the block's first frame's. */
static void test_block_lag(void) {
    sf_err err = {{0}};
    sf_view *v = NULL;
    sf_view_opts o = {"127.0.0.1", test_port(5), NULL, 512, 85, 20, 4, 0.25, NULL, 0, 0}; /* 20 fps, max lag 0.25 s */
    SF_CHECK_OK(sf_view_new(&o, &v, &err), &err);
    if (!v) return;
    char clk[64];
    sf_clock_id(clk, sizeof clk);
    unsigned char *px = NULL;
    const double t_sent = sf_now(), t0 = sf_now();
    double dt[3] = {0};
    for (int k = 0; k < 3; k++) { /* block 7: latent frames at pixel frames 25, 29, 33 */
        sf_wire_msg *m = frames_msg(4, 8, t_sent, clk, &px);
        SF_CHECK_OK(sf_wire_meta_set_int(m, "block", 7, &err), &err);
        SF_CHECK_OK(sf_wire_meta_set_int(m, "start_frame", 25 + 4 * k, &err), &err);
        SF_CHECK_OK(sf_wire_meta_set_double(m, "gen_fps", 48.5 + k, &err), &err); /* the block's first counts */
        const double t = sf_now();
        SF_CHECK_OK(sf_view_play(v, m, px, &err), &err);
        dt[k] = sf_now() - t;
        free(px);
    }
    /* 12 frames at 20 fps: 11 gaps of 50 ms; the last message's 4 frames take their 200 ms (catching up: ~50) */
    SF_CHECK_MSG(sf_now() - t0 >= 0.5, "the block took %.3f s (fast-forwarded)", sf_now() - t0);
    SF_CHECK_MSG(dt[2] >= 0.12, "the block's last latent frame took %.3f s (shown at once as lagging)", dt[2]);
    char *js = sf_view_status_json(v);
    cJSON *j = cJSON_Parse(js);
    const double lat = j ? cJSON_GetObjectItem(j, "latency_ms")->valuedouble : -1;
    SF_CHECK_MSG(lat >= 0 && lat < 150, "latency %.0f ms: not the block's first frame's", lat);
    const double gf = j ? cJSON_GetObjectItem(j, "gen_fps")->valuedouble : -1;
    SF_CHECK_MSG(gf == 48.5, "gen_fps %g: not the block's", gf);
    cJSON_Delete(j);
    free(js);
    /* a peer's gen_fps that is not a rate (inf, NaN, negative) is not shown: the last good one stays */
    const double badv[3] = {INFINITY, NAN, -3};
    for (int k = 0; k < 3; k++) {
        sf_wire_msg *m = frames_msg(1, 8, sf_now(), clk, &px);
        SF_CHECK_OK(sf_wire_meta_set_int(m, "block", 8 + k, &err), &err);
        SF_CHECK_OK(sf_wire_meta_set_int(m, "start_frame", 40 + k, &err), &err);
        SF_CHECK_OK(sf_wire_meta_set_double(m, "gen_fps", badv[k], &err), &err);
        SF_CHECK_OK(sf_view_play(v, m, px, &err), &err);
        free(px);
    }
    js = sf_view_status_json(v);
    j = cJSON_Parse(js);
    SF_CHECK_MSG(j && cJSON_GetObjectItem(j, "gen_fps")->valuedouble == 48.5, "%s", js);
    cJSON_Delete(j);
    free(js);
    sf_view_destroy(&v);
}

/* A feeder of noise frames while the stream tests run (the view's frame-reading side). */
typedef struct feeder {
    sf_view *v;
    volatile int stop;
} feeder;

static void *feed_main(void *arg) {
    feeder *f = arg;
    unsigned char *px = NULL;
    sf_wire_msg *m = frames_msg(4, 64, 0, NULL, &px);
    sf_wire_msg mm = *m;
    sf_err err;
    while (!f->stop && px && !sf_view_play(f->v, &mm, px, &err)) {}
    free(px);
    return NULL;
}

typedef struct reader {
    int fd;
    double secs;
    size_t got;
    int closed;
} reader;

static void *read_main(void *arg) { /* a page that watches: reads for secs */
    reader *r = arg;
    char buf[65536];
    double t_end = sf_now() + r->secs;
    while (sf_now() < t_end) {
        ssize_t k = recv(r->fd, buf, sizeof buf, 0);
        if (k <= 0) {
            r->closed = 1;
            break;
        }
        r->got += (size_t)k;
    }
    return NULL;
}

/* --max-viewers, the stream's headers, viewers that never read, two Host headers. */
static void test_viewers(void) {
    sf_err err = {{0}};
    sf_view *v = NULL;
    const int port = test_port(2);
    sf_view_opts o = {"127.0.0.1", port, NULL, 512, 85, 200, 3, 1.0, NULL, 0, 1}; /* 3 viewers, 1 s stall */
    SF_CHECK_OK(sf_view_new(&o, &v, &err), &err);
    if (!v) return;
    feeder f = {v, 0};
    pthread_t ft, rt;
    pthread_create(&ft, NULL, feed_main, &f);
    char head[4096], body[4096];
    /* A reads the head, then never again; B never reads at all; R is a page that watches for 3 s */
    int a = http_open(port, GET_STREAM, 4096), code = http_head(a, head, sizeof head);
    SF_CHECK_MSG(code == 200, "stream: %d", code);
    SF_CHECK_MSG(strstr(head, "Cross-Origin-Resource-Policy: same-origin") && strstr(head, "X-Content-Type-Options: nosniff") &&
                 strstr(head, "X-Frame-Options: DENY"), "stream headers:\n%s", head);
    int b = http_open(port, GET_STREAM, 4096);
    reader r = {http_open(port, GET_STREAM, 0), 3, 0, 0};
    pthread_create(&rt, NULL, read_main, &r);
    double idle, t0;
    for (int i = 0; i < 100 && sf_view_viewers(v, &idle) < 3; i++) nap(0.01);
    SF_CHECK(sf_view_viewers(v, &idle) == 3);
    /* a fourth is told at once; status is still served */
    int c = http_open(port, GET_STREAM, 0);
    t0 = sf_now();
    code = http_head(c, head, sizeof head);
    SF_CHECK_MSG(code == 503 && sf_now() - t0 < 2, "fourth viewer: %d after %.1f s", code, sf_now() - t0);
    if (c >= 0) close(c);
    SF_CHECK(http(port, GET_STATUS, body, sizeof body) == 200 && strstr(body, "\"viewers\":3"));
    /* A and B are dropped within the stall timeout (+ the time their queues take to fill); R stays */
    t0 = sf_now();
    while (sf_now() - t0 < 2.8 && sf_view_viewers(v, &idle) > 1) nap(0.05);
    SF_CHECK_MSG(sf_view_viewers(v, &idle) == 1, "viewers: %d after %.1f s", sf_view_viewers(v, &idle), sf_now() - t0);
    pthread_join(rt, NULL);
    SF_CHECK_MSG(!r.closed && r.got > 100000, "the reading viewer was dropped (%zu bytes, closed %d)", r.got, r.closed);
    if (r.fd >= 0) close(r.fd);
    for (int i = 0; i < 200 && sf_view_viewers(v, &idle) > 0; i++) nap(0.01);
    SF_CHECK(sf_view_viewers(v, &idle) == 0 && idle >= 0); /* --idle-exit can fire */
    if (a >= 0) close(a);
    if (b >= 0) close(b);
    /* two Host headers (RFC 9112: 400), whichever comes first */
    SF_CHECK(http(port, "GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
                  body, sizeof body) == 400);
    SF_CHECK(http(port, "GET /status HTTP/1.1\r\nHost: evil.example\r\nhost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                  body, sizeof body) == 400);
    f.stop = 1;
    pthread_join(ft, NULL);
    sf_view_destroy(&v);
}

/* Idle connections: a client that sends nothing is dropped after the stall timeout, and a full house of
 * them cannot lock others out (the oldest idle one makes room); a stream viewer that waits longer than
 * the stall timeout for the next frame is not idle. */
static void test_idle(void) {
    sf_err err = {{0}};
    sf_view *v = NULL;
    const int port = test_port(4);
    sf_view_opts o = {"127.0.0.1", port, NULL, 512, 85, 200, 2, 1.0, NULL, 0, 1}; /* 2 viewers, 1 s stall */
    SF_CHECK_OK(sf_view_new(&o, &v, &err), &err);
    if (!v) return;
    unsigned char *px = NULL;
    sf_wire_msg *m = frames_msg(1, 16, 0, NULL, &px);
    SF_CHECK_OK(sf_view_play(v, m, px, &err), &err);
    char head[4096], body[4096], buf[65536];
    /* a viewer gets the frame there is, then none for 2.5 s (a slow block), then the next one */
    int r = http_open(port, GET_STREAM, 0), code = http_head(r, head, sizeof head);
    SF_CHECK_MSG(code == 200, "stream: %d", code);
    SF_CHECK(r >= 0 && recv(r, buf, sizeof buf, 0) > 0);
    nap(2.5);
    SF_CHECK_OK(sf_view_play(v, m, px, &err), &err);
    ssize_t k = r >= 0 ? recv(r, buf, sizeof buf, 0) : -1;
    SF_CHECK_MSG(k > 0, "the waiting viewer was dropped (recv %zd)", k);
    /* every connection taken by clients that send nothing (the viewer above is one): a request still gets in */
    int idle[10];
    for (int i = 0; i < 10; i++) idle[i] = http_open(port, "", 0);
    nap(0.2);
    double t0 = sf_now();
    code = http(port, GET_STATUS, body, sizeof body);
    SF_CHECK_MSG(code == 200 && sf_now() - t0 < 0.5, "status behind idle connections: %d after %.2f s", code, sf_now() - t0);
    /* and the idle ones are closed within the stall timeout */
    t0 = sf_now();
    int closed = 0;
    for (int i = 0; i < 10; i++) {
        if (idle[i] < 0) continue;
        closed += recv(idle[i], buf, sizeof buf, 0) == 0;
        close(idle[i]);
    }
    SF_CHECK_MSG(closed == 10 && sf_now() - t0 < 2, "%d of 10 idle connections closed after %.1f s", closed, sf_now() - t0);
    if (r >= 0) close(r);
    free(px);
    sf_view_destroy(&v);
}

/* A fake encoder server (ROUTER): prompt requests are answered "fake reply N", except the first, which
 * never is; a stop request is answered "live route stopped" at once. */
typedef struct fake_enc {
    void *sock;
    volatile int stop;
    int prompts, stops;
} fake_enc;

static void *fake_enc_main(void *arg) {
    fake_enc *f = arg;
    while (!f->stop) {
        zmq_pollitem_t it = {f->sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 50) != 1) continue;
        fake_request r;
        if (fake_request_recv(f->sock, &r) < 0) {
            fake_request_release(&r);
            break;
        }
        char text[64];
        if (r.stop) f->stops++;
        else f->prompts++;
        snprintf(text, sizeof text, r.stop ? "live route stopped" : "fake reply %d", f->prompts);
        if (r.stop || f->prompts > 1) fake_reply(f->sock, &r, text);
        fake_request_release(&r);
    }
    return NULL;
}

typedef struct poster {
    int port, code;
    char body[1024];
} poster;

static void *post_main(void *arg) {
    poster *p = arg;
    p->code = post(p->port, "{\"prompt\": \"one\"}", p->body, sizeof p->body);
    return NULL;
}

static void test_encoder_busy(void) {
    char sock_path[128], url[160], body[1024];
    snprintf(sock_path, sizeof sock_path, "/tmp/sf-test-view-enc-%d.sock", (int)getpid());
    snprintf(url, sizeof url, "ipc://%s", sock_path);
    void *ctx = zmq_ctx_new();
    fake_enc f = {zmq_socket(ctx, ZMQ_ROUTER), 0, 0, 0};
    int zero = 0;
    zmq_setsockopt(f.sock, ZMQ_LINGER, &zero, sizeof zero);
    SF_CHECK(zmq_bind(f.sock, url) == 0);
    pthread_t ft, pt;
    pthread_create(&ft, NULL, fake_enc_main, &f);
    sf_err err = {{0}};
    sf_view *v = NULL;
    const int port = test_port(3);
    /* replies within 1.5 s; connections idle for 1 s are dropped, but not one waiting for the encoder */
    sf_view_opts o = {"127.0.0.1", port, url, 16, 85, 20, 4, 1.0, NULL, 1.5, 1};
    SF_CHECK_OK(sf_view_new(&o, &v, &err), &err);
    if (!v) return;
    poster p1 = {port, 0, ""};
    pthread_create(&pt, NULL, post_main, &p1); /* never answered */
    for (int i = 0; i < 200 && f.prompts < 1; i++) nap(0.01);
    /* meanwhile: another prompt is told at once */
    double t0 = sf_now();
    int code = post(port, "{\"prompt\": \"two\"}", body, sizeof body);
    SF_CHECK_MSG(code == 503 && strstr(body, "busy") && sf_now() - t0 < 0.5, "second POST: %d '%s' after %.2f s", code,
                 body, sf_now() - t0);
    /* and the route's stop goes through, not after the prompt's wait */
    t0 = sf_now();
    SF_CHECK_OK(sf_view_stop_route(v, &err), &err);
    SF_CHECK_MSG(sf_now() - t0 < 1 && f.stops == 1, "stop took %.2f s (%d stops)", sf_now() - t0, f.stops);
    pthread_join(pt, NULL);
    SF_CHECK_MSG(p1.code == 502 && strstr(p1.body, "no reply"), "first POST: %d '%s'", p1.code, p1.body);
    /* the next prompt reaches the encoder (the client was reset) */
    code = post(port, "{\"prompt\": \"three\"}", body, sizeof body);
    SF_CHECK_MSG(code == 502 && strstr(body, "fake reply 2"), "third POST: %d '%s'", code, body);
    sf_view_destroy(&v);
    f.stop = 1;
    pthread_join(ft, NULL);
    zmq_close(f.sock);
    zmq_ctx_term(ctx);
    unlink(sock_path);
}

static const sf_test tests[] = {
    {"parse_prompt", test_parse_prompt},
    {"host", test_host},
    {"status_and_frame", test_status_and_frame},
    {"clock", test_clock},
    {"block_lag", test_block_lag},
    {"viewers", test_viewers},
    {"encoder_busy", test_encoder_busy},
    {"idle", test_idle},
};
SF_TEST_MAIN(tests)
