/* test_view.c — sf-view's pieces (tools/view/view.h): the POST /prompt parser's
 * refusals, a served server's /status JSON (escaping through cJSON) and a frame going through the
 * JPEG encoder to /frame.jpg. The page in a browser: tests/bats/live.bats. */
#define _POSIX_C_SOURCE 200809L
#include "sf_test.h"
#include "tools/view/view.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <unistd.h>

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
    sf_view_opts o = {"127.0.0.1", 20000 + (int)(getpid() % 20000), NULL, 512, 85, 1000, 4, 1.0, NULL};
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
    }
    cJSON_Delete(j);
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

static const sf_test tests[] = {
    {"parse_prompt", test_parse_prompt},
    {"host", test_host},
    {"status_and_frame", test_status_and_frame},
};
SF_TEST_MAIN(tests)
