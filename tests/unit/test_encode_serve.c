/* test_encode_serve.c — the sf-encode server protocol (stages/encode/serve.c) with raw frames.
 *
 * A forked child serves the golden tiny umT5 on an ipc socket; the parent sends malformed
 * requests over a raw ZeroMQ REQ socket (wrong frame counts, garbage header, lying payload
 * length, wrong name/dtype, bad text_len, an `end` message) and checks that each gets a
 * 2-frame `error` reply while the server keeps serving; then a valid request through the
 * client API must equal a local sf_encoder_run bit for bit, and SIGTERM must end the child
 * with exit 0 and remove the socket file. Mirrors no reference module. */
#define _POSIX_C_SOURCE 200809L
#include "sf_test.h"
#include "fake_encoder.h"
#include "stages/encode/serve.h"
#include "wire.h"

#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

static void paths(char *tok, char *w, size_t n) {
    snprintf(tok, n, "%s/model/google/umt5-xxl/spiece.model", sf_test_golden());
    snprintf(w, n, "%s/model/models_t5_umt5-xxl-enc-bf16.pth", sf_test_golden());
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Send nparts frames, receive the reply; returns the number of reply frames and decodes the
 * first one into m (type 0 when it is not a header). */
static int exchange_ms(void *sock, const void *const *parts, const size_t *lens, int nparts, sf_wire_msg *m,
                       long timeout_ms) {
    for (int i = 0; i < nparts; i++)
        if (zmq_send(sock, parts[i], lens[i], i + 1 < nparts ? ZMQ_SNDMORE : 0) < 0) return -1;
    zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&it, 1, timeout_ms) != 1) return -1;
    int n = 0, more = 1;
    memset(m, 0, sizeof *m);
    while (more) {
        zmq_msg_t f;
        zmq_msg_init(&f);
        if (zmq_msg_recv(&f, sock, 0) < 0) return -1;
        sf_err e;
        if (n == 0 && sf_wire_header_decode(zmq_msg_data(&f), zmq_msg_size(&f), m, &e)) m->type = 0;
        more = zmq_msg_more(&f);
        zmq_msg_close(&f);
        n++;
    }
    return n;
}

static int exchange(void *sock, const void *const *parts, const size_t *lens, int nparts, sf_wire_msg *m) {
    return exchange_ms(sock, parts, lens, nparts, m, 5000);
}

/* Header bytes of a tensor message "name" dtype [len] with optional text_len. */
static void *header(const char *name, sf_dtype dt, int64_t len, int64_t text_len, size_t *hl) {
    sf_wire_msg *m = malloc(sizeof *m);
    int64_t shp[1] = {len};
    sf_tensor t = sf_tensor_view(NULL, dt, 1, shp);
    sf_err e;
    void *h = NULL;
    if (!m || sf_wire_msg_tensor(m, name, &t, &e) ||
        (text_len >= 0 && sf_wire_meta_set_int(m, "text_len", text_len, &e)) || sf_wire_header_encode(m, &h, hl, &e))
        h = NULL;
    free(m);
    return h;
}

static void expect_error(void *sock, const void *const *parts, const size_t *lens, int nparts, const char *want,
                         sf_wire_msg *m) {
    int n = exchange(sock, parts, lens, nparts, m);
    SF_CHECK_MSG(n == 2 && m->type == SF_WIRE_ERROR && strstr(m->text, want), "want error '%s': %d frames, '%s'",
                 want, n, m->text);
}

static void test_protocol(void) {
    char tok[4096], w[4096], sock_path[256], url[300];
    paths(tok, w, sizeof tok);
    snprintf(sock_path, sizeof sock_path, "/tmp/sf-test-serve-%d.sock", (int)getpid());
    snprintf(url, sizeof url, "ipc://%s", sock_path);
    unlink(sock_path);
    pid_t pid = fork();
    SF_CHECK(pid >= 0);
    if (pid < 0) return;
    if (pid == 0) {
        sf_err err;
        sf_encoder enc;
        sf_log_set_level(SF_LOG_ERROR);
        if (sf_wire_install_signals(&err) || sf_encoder_init(&enc, tok, w, NULL, 0, 1, &err)) _exit(3);
        sf_status st = sf_encode_serve(&enc, url, 512, &err);
        sf_encoder_free(&enc);
        _exit(st ? 1 : 0);
    }
    struct stat sb;
    for (int i = 0; i < 200 && stat(sock_path, &sb) != 0; i++) sleep_ms(25);
    SF_CHECK(stat(sock_path, &sb) == 0 && S_ISSOCK(sb.st_mode));
    void *ctx = zmq_ctx_new(), *sock = zmq_socket(ctx, ZMQ_REQ);
    int zero = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    SF_CHECK(zmq_connect(sock, url) == 0);
    sf_wire_msg *m = malloc(sizeof *m);
    size_t hl = 0;
    void *h;
    {   /* one frame; three frames */
        const void *p[3] = {"hello", "a", "b"};
        size_t l[3] = {5, 1, 1};
        expect_error(sock, p, l, 1, "expected 2 frames", m);
        expect_error(sock, p, l, 3, "expected 2 frames", m);
    }
    {   /* garbage header */
        const void *p[2] = {"\xff\x00garbage", "x"};
        size_t l[2] = {9, 1};
        int n = exchange(sock, p, l, 2, m);
        SF_CHECK(n == 2 && m->type == SF_WIRE_ERROR && m->text[0]);
    }
    h = header("prompt", SF_U8, 5, -1, &hl);
    {   /* payload shorter than the header says */
        const void *p[2] = {h, "abc"};
        size_t l[2] = {hl, 3};
        expect_error(sock, p, l, 2, "payload of message 0 has 3 bytes", m);
    }
    free(h);
    h = header("prompt", SF_F32, 1, -1, &hl);
    {
        const void *p[2] = {h, "abcd"};
        size_t l[2] = {hl, 4};
        expect_error(sock, p, l, 2, "expected tensor 'prompt' u8", m);
    }
    free(h);
    h = header("prompt", SF_U8, 5, 0, &hl);
    {
        const void *p[2] = {h, "a dog"};
        size_t l[2] = {hl, 5};
        expect_error(sock, p, l, 2, "text_len 0 not in 1..", m);
    }
    free(h);
    h = header("prompt", SF_U8, 5, 513, &hl);
    {   /* more tokens than the server's own --text-len (512): refused, not encoded and cached */
        const void *p[2] = {h, "a dog"};
        size_t l[2] = {hl, 5};
        expect_error(sock, p, l, 2, "text_len 513 not in 1..512 (this server's --text-len)", m);
    }
    free(h);
    for (int k = 0; k < 2; k++) { /* a text_len that is not an integer is refused, not replaced by the default */
        int64_t shp[1] = {5};
        sf_tensor t = sf_tensor_view(NULL, SF_U8, 1, shp);
        sf_err e;
        h = NULL;
        SF_CHECK_OK(sf_wire_msg_tensor(m, "prompt", &t, &e), &e);
        SF_CHECK_OK(k ? sf_wire_meta_set_str(m, "text_len", "512", &e) : sf_wire_meta_set_double(m, "text_len", 3.7, &e), &e);
        SF_CHECK_OK(sf_wire_header_encode(m, &h, &hl, &e), &e);
        const void *p[2] = {h, "a dog"};
        size_t l[2] = {hl, 5};
        expect_error(sock, p, l, 2, "text_len must be an integer", m);
        free(h);
    }
    static char big[100 << 10];
    memset(big, 'a', sizeof big);
    h = header("prompt", SF_U8, 20 << 10, 16, &hl);
    {   /* a prompt somewhat over 16 KiB is read and refused with the limit */
        const void *p[2] = {h, big};
        size_t l[2] = {hl, 20 << 10};
        expect_error(sock, p, l, 2, "at most 16384", m);
    }
    free(h);
    h = header("prompt", SF_U8, 3, 16, &hl);
    {   /* a NUL byte inside the prompt is the tokenizer's error, passed back */
        const void *p[2] = {h, "a\0b"};
        size_t l[2] = {hl, 3};
        expect_error(sock, p, l, 2, "NUL", m);
    }
    free(h);
    {   /* an end message is not a request */
        sf_wire_msg_init(m, SF_WIRE_END, "");
        sf_err e;
        h = NULL;
        SF_CHECK_OK(sf_wire_header_encode(m, &h, &hl, &e), &e);
        const void *p[2] = {h, ""};
        size_t l[2] = {hl, 0};
        expect_error(sock, p, l, 2, "expected tensor 'prompt'", m);
        free(h);
    }
    h = header("prompt", SF_U8, 5, 16, &hl);
    {   /* a valid raw request: 6 frames, embeds first */
        const void *p[2] = {h, "a dog"};
        size_t l[2] = {hl, 5};
        int n = exchange(sock, p, l, 2, m);
        SF_CHECK(n == 6 && m->type == SF_WIRE_TENSOR && strcmp(m->name, "prompt_embeds") == 0);
        SF_CHECK(m->dtype == SF_F32 && m->ndim == 2 && m->shape[0] == 16 && m->shape[1] == 64);
        SF_CHECK(sf_wire_meta_int(m, "n_tokens", 0) == 3 && sf_wire_meta_str(m, "prompt") &&
                 strcmp(sf_wire_meta_str(m, "prompt"), "a dog") == 0);
    }
    free(h);
    h = header("prompt", SF_U8, sizeof big, 16, &hl);
    {   /* far over (100 KiB): libzmq drops the frame (ZMQ_MAXMSGSIZE) before buffering it; no reply */
        const void *p[2] = {h, big};
        size_t l[2] = {hl, sizeof big};
        SF_CHECK(exchange_ms(sock, p, l, 2, m, 1000) == -1);
    }
    free(h);
    zmq_close(sock); /* a strict REQ socket without its reply is stuck: the client API's is not */
    zmq_ctx_term(ctx);
    /* the client API against a local run: bit-identical */
    sf_err err;
    sf_encode_client *cl = NULL;
    sf_encoder enc;
    sf_encoded a = {0}, b = {0};
    SF_CHECK_OK(sf_encode_client_open(url, 10, &cl, &err), &err);
    SF_CHECK_OK(sf_encoder_init(&enc, tok, w, NULL, 0, 1, &err), &err);
    if (cl) SF_CHECK_OK(sf_encode_client_run(cl, "  a red  fox ", 13, 32, 7, &a, &err), &err);
    SF_CHECK_OK(sf_encoder_run(&enc, "  a red  fox ", 13, 32, &b, &err), &err);
    SF_CHECK(a.emb && b.emb && a.dim == b.dim && a.n_tokens == b.n_tokens && a.n_tokens == 6);
    if (a.emb && b.emb && a.dim == b.dim) {
        SF_CHECK(memcmp(a.emb, b.emb, (size_t)(32 * a.dim) * sizeof(float)) == 0);
        SF_CHECK(memcmp(a.ids, b.ids, 32 * 8) == 0 && memcmp(a.mask, b.mask, 32 * 8) == 0);
        SF_CHECK(strcmp(a.cleaned, "a red fox") == 0);
    }
    /* an error reply through the client */
    sf_encoded c = {0};
    if (cl) {
        SF_CHECK(sf_encode_client_run(cl, "x\xff", 2, 32, 0, &c, &err) == SF_E_FORMAT);
        SF_CHECK(strstr(err.msg, "encode server: ") && strstr(err.msg, "UTF-8"));
        SF_CHECK(sf_encode_client_run(cl, "ok", 2, 0, 0, &c, &err) == SF_E_ARG);
    }
    sf_encoded_free(&a);
    sf_encoded_free(&b);
    sf_encoder_free(&enc);
    sf_encode_client_close(&cl);
    free(m);
    /* SIGTERM: exit 0 within a second, socket file gone */
    kill(pid, SIGTERM);
    int status = -1;
    pid_t r = 0;
    for (int i = 0; i < 100 && (r = waitpid(pid, &status, WNOHANG)) == 0; i++) sleep_ms(10);
    if (r == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    SF_CHECK_MSG(r == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0, "server status %d", status);
    SF_CHECK(stat(sock_path, &sb) != 0);
}

/* A fake server (ROUTER) that leaves the first request unanswered and, once the second arrives, answers
 * the first late and then the second, each with an error reply naming it. */
typedef struct fake_server {
    void *sock;
    int requests;
} fake_server;

static void *fake_server_main(void *arg) {
    fake_server *f = arg;
    fake_request req[2] = {{.nenv = 0}, {.nenv = 0}};
    for (int r = 0; r < 2; r++) {
        zmq_pollitem_t it = {f->sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 5000) != 1) break;
        if (fake_request_recv(f->sock, &req[r]) < 0) break;
        f->requests++;
    }
    if (f->requests == 2) {
        fake_reply(f->sock, &req[0], "late reply to the first request");
        fake_reply(f->sock, &req[1], "answer to the second request");
    }
    for (int r = 0; r < 2; r++) fake_request_release(&req[r]);
    return NULL;
}

/* After a request without a reply, the client's next request reaches the server, and a late reply to
 * the old one is never taken for the new one's. */
static void test_client_reset(void) {
    char sock_path[256], url[300];
    snprintf(sock_path, sizeof sock_path, "/tmp/sf-test-fake-%d.sock", (int)getpid());
    snprintf(url, sizeof url, "ipc://%s", sock_path);
    void *ctx = zmq_ctx_new();
    fake_server f = {zmq_socket(ctx, ZMQ_ROUTER), 0};
    int zero = 0;
    zmq_setsockopt(f.sock, ZMQ_LINGER, &zero, sizeof zero);
    SF_CHECK(zmq_bind(f.sock, url) == 0);
    pthread_t th;
    SF_CHECK(pthread_create(&th, NULL, fake_server_main, &f) == 0);
    sf_err err;
    sf_encode_client *cl = NULL;
    sf_encoded res;
    SF_CHECK_OK(sf_encode_client_open(url, 0.5, &cl, &err), &err);
    if (cl) {
        SF_CHECK(sf_encode_client_run(cl, "first", 5, 16, -1, &res, &err) == SF_E_IO);
        SF_CHECK_MSG(strstr(err.msg, "no reply from encode server"), "%s", err.msg);
        SF_CHECK(sf_encode_client_run(cl, "second", 6, 16, -1, &res, &err) == SF_E_FORMAT);
        SF_CHECK_MSG(strstr(err.msg, "answer to the second request"), "%s", err.msg);
    }
    pthread_join(th, NULL);
    SF_CHECK(f.requests == 2);
    sf_encode_client_close(&cl);
    zmq_close(f.sock);
    zmq_ctx_term(ctx);
    unlink(sock_path);
}

static void test_urls(void) {
    sf_err err;
    SF_CHECK(sf_encode_url_check("tcp://127.0.0.1:5555", &err) == SF_OK);
    SF_CHECK(sf_encode_url_check("ipc:///tmp/x.sock", &err) == SF_OK);
    SF_CHECK(sf_encode_url_check("shm://x", &err) == SF_E_ARG);
    SF_CHECK(sf_encode_url_check("tcp://", &err) == SF_E_ARG);
    SF_CHECK(sf_encode_url_check("-", &err) == SF_E_ARG);
    sf_encode_client *cl = NULL;
    SF_CHECK(sf_encode_client_open("ipc:///nonexistent/dir/x.sock", 1, &cl, &err) == SF_E_IO && !cl);
    SF_CHECK(strstr(err.msg, "no encode server"));
}

static const sf_test tests[] = {{"urls", test_urls}, {"protocol", test_protocol}, {"client_reset", test_client_reset}};
SF_TEST_MAIN(tests)
