/* bench_encode.c — sf-encode figures: tokenizer load + throughput on a real-size (256000-piece)
 * vocabulary, umT5 encoder ms for the tiny golden model and for one umT5-XXL-size layer
 * (dim 4096, 64 heads, ffn 10240, random bf16 weights), and peak RSS.
 *
 * The 256k vocabulary is the golden spiece.model (its 1000 pieces and nmt_nfkc charsmap) with
 * 255000 synthetic NORMAL pieces appended as extra protobuf `pieces` fields, parsed like any
 * spiece.model. Nothing passes or fails on time.
 *   bench_encode            quick: XXL layer on 64 tokens
 *   bench_encode --full     XXL layer on 512 tokens (≈ 200 GFLOP; minutes on 2 cores)
 *   bench_encode --xxl-layer N   only the XXL layer on N tokens (tests/bench/run.sh's CPU mode table)
 * Env: SF_THREADS (default all cores), SF_GOLDEN (default tests/golden). */
#define _POSIX_C_SOURCE 200809L
#include "parallel.h"
#include "spiece.h"
#include "stages/encode/t5.h"
#include "stages/encode/tokenizer.h"
#include "tfile.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static const char *golden(void) {
    const char *g = getenv("SF_GOLDEN");
    return g && *g ? g : "tests/golden";
}

static double peak_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

static void die(const char *what, const sf_err *e) {
    fprintf(stderr, "bench_encode: %s: %s\n", what, e ? e->msg : "");
    exit(1);
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t next(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return rng;
}

static size_t put_varint(uint8_t *p, uint64_t v) {
    size_t n = 0;
    do {
        p[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    return n;
}

static void bench_tokenizer(int threads) {
    (void)threads;
    char path[1024], *data = NULL;
    size_t len = 0;
    sf_err err;
    snprintf(path, sizeof path, "%s/model/google/umt5-xxl/spiece.model", golden());
    if (sf_read_file(path, &data, &len, 1 << 26, &err)) die("read spiece.model", &err);
    const size_t extra = 255000;
    size_t cap = len + extra * 40;
    uint8_t *buf = malloc(cap);
    if (!buf) die("oom", NULL);
    memcpy(buf, data, len);
    size_t n = len;
    for (size_t i = 0; i < extra; i++) {
        char s[32];
        int k = 0;
        if (next() % 3 == 0) memcpy(s, "\xE2\x96\x81", 3), k = 3; /* '▁' word-initial pieces */
        int l = 2 + (int)(next() % 7);
        for (int j = 0; j < l; j++) s[k++] = (char)('a' + next() % 26);
        k += snprintf(s + k, sizeof s - (size_t)k, "%zx", i); /* unique */
        float score = -12.0f - (float)(next() % 1000) / 100.0f;
        uint8_t msg[64];
        size_t m = 0;
        msg[m++] = 0x0a;
        m += put_varint(msg + m, (uint64_t)k);
        memcpy(msg + m, s, (size_t)k), m += (size_t)k;
        msg[m++] = 0x15;
        memcpy(msg + m, &score, 4), m += 4;
        buf[n++] = 0x0a;
        n += put_varint(buf + n, m);
        memcpy(buf + n, msg, m), n += m;
    }
    double t0 = sf_now();
    sf_spiece_model *m = NULL;
    if (sf_spiece_parse(buf, n, &m, &err)) die("parse", &err);
    double t1 = sf_now();
    size_t npieces = m->n_pieces;
    sf_tokenizer *t = NULL;
    if (sf_tokenizer_new(&m, &t, &err)) die("tokenizer", &err);
    double t2 = sf_now();
    printf("tokenizer: %zu pieces (%.1f MB proto): parse %.1f ms, build %.1f ms\n", npieces, (double)n / 1e6,
           (t1 - t0) * 1e3, (t2 - t1) * 1e3);
    /* the 28 golden prompts */
    char *js = NULL;
    size_t jl = 0;
    snprintf(path, sizeof path, "%s/expect/tokens.json", golden());
    if (sf_read_file(path, &js, &jl, 1 << 24, &err)) die("tokens.json", &err);
    cJSON *j = cJSON_ParseWithLength(js, jl);
    cJSON *ps = cJSON_GetObjectItem(j, "prompts");
    int np = cJSON_GetArraySize(ps);
    int64_t ids[512], mask[512];
    size_t bytes = 0, toks = 0, count = 0;
    double b0 = sf_now(), b1;
    do {
        for (int i = 0; i < np; i++) {
            const char *txt = cJSON_GetObjectItem(cJSON_GetArrayItem(ps, i), "text")->valuestring;
            size_t nt = 0, tl = strlen(txt);
            if (sf_tokenizer_prompt(t, txt, tl, 512, ids, mask, &nt, NULL, &err)) die("tokenize", &err);
            bytes += tl, toks += nt, count++;
        }
        b1 = sf_now();
    } while (b1 - b0 < 1.0);
    printf("tokenizer: %.0f prompts/s, %.2f MB/s, %.0f tokens/s (28 golden prompts, 1 thread)\n",
           (double)count / (b1 - b0), (double)bytes / (b1 - b0) / 1e6, (double)toks / (b1 - b0));
    cJSON_Delete(j);
    free(js), free(data), free(buf);
    sf_tokenizer_destroy(&t);
    printf("peak RSS after tokenizer: %.0f MB\n", peak_rss_mb());
}

static double encode_ms(const sf_t5 *m, int64_t L, int reps) {
    int64_t *ids = calloc((size_t)L, sizeof *ids);
    float *out = calloc((size_t)(L * m->cfg.dim), sizeof *out);
    sf_err err;
    if (!ids || !out) die("oom", NULL);
    for (int64_t i = 0; i < L; i++) ids[i] = (int64_t)(next() % (uint64_t)m->cfg.vocab);
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = sf_now();
        if (sf_t5_encode(m, ids, L, L, out, NULL, &err)) die("encode", &err);
        double dt = sf_now() - t0;
        if (dt < best) best = dt;
    }
    free(ids), free(out);
    return best * 1e3;
}

static void bench_xxl_layer(int threads, int64_t L) {
    const int64_t D = 4096, A = 4096, F = 10240, H = 64, V = 1024;
    char path[] = "/tmp/sf-bench-xxl-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) die("mkstemp", NULL);
    close(fd);
    struct {
        const char *name;
        int64_t r, c;
    } ws[] = {{"token_embedding.weight", V, D}, {"blocks.0.norm1.weight", 1, D}, {"blocks.0.attn.q.weight", A, D},
              {"blocks.0.attn.k.weight", A, D}, {"blocks.0.attn.v.weight", A, D}, {"blocks.0.attn.o.weight", D, A},
              {"blocks.0.norm2.weight", 1, D},  {"blocks.0.ffn.gate.0.weight", F, D},
              {"blocks.0.ffn.fc1.weight", F, D}, {"blocks.0.ffn.fc2.weight", D, F},
              {"blocks.0.pos_embedding.embedding.weight", 32, H}, {"norm.weight", 1, D}};
    enum { NW = sizeof ws / sizeof ws[0] };
    sf_tensor_entry ents[NW];
    sf_err err;
    for (int i = 0; i < NW; i++) {
        int64_t shp[2] = {ws[i].r, ws[i].c};
        int nd = ws[i].r == 1 ? 1 : 2;
        if (nd == 1) shp[0] = ws[i].c;
        if (sf_tensor_alloc(&ents[i].t, SF_BF16, nd, shp, &err)) die("alloc", &err);
        ents[i].name = (char *)ws[i].name;
        uint16_t *p = ents[i].t.data;
        int64_t n = sf_tensor_numel(&ents[i].t);
        float scale = nd == 1 ? 1.0f : 1.0f / 64.0f;
        for (int64_t k = 0; k < n; k++)
            p[k] = sf_f32_to_bf16(nd == 1 ? 1.0f : ((float)(next() % 2001) / 1000.0f - 1.0f) * scale);
    }
    if (sf_safetensors_write(path, ents, NW, NULL, 0, &err)) die("write", &err);
    for (int i = 0; i < NW; i++) sf_tensor_free(&ents[i].t);
    sf_t5 *m = NULL;
    if (sf_t5_open(path, threads, &m, &err)) die("open", &err);
    double ms = encode_ms(m, L, 6); /* best of 6: the first builds oneDNN's kernels (fast, bf16 modes) */
    double flop = 2.0 * (double)L * (double)(4 * D * A + 3 * D * F) + 4.0 * (double)L * (double)L * (double)A;
    printf("umT5-XXL layer (dim 4096, 64 heads, ffn 10240, bf16) [%s]: %lld tokens %.1f ms, %.1f GFLOP/s "
           "(x24 layers ≈ %.1f s per prompt)\n",
           sf_cpu_mode_name(sf_cpu_mode_now()), (long long)L, ms, flop / (ms * 1e-3) / 1e9, ms * 24 / 1e3);
    sf_t5_destroy(&m);
    unlink(path);
}

int main(int argc, char **argv) {
    int full = argc > 1 && strcmp(argv[1], "--full") == 0;
    const char *ts = getenv("SF_THREADS");
    int threads = ts && atoi(ts) > 0 ? atoi(ts) : sf_cpu_count();
    if (argc > 2 && strcmp(argv[1], "--xxl-layer") == 0) { /* make bench's mode table: this figure only */
        bench_xxl_layer(threads, atol(argv[2]) > 0 ? atol(argv[2]) : 64);
        return 0;
    }
    printf("threads: %d\n", threads);
    bench_tokenizer(threads);
    char path[1024];
    sf_err err;
    snprintf(path, sizeof path, "%s/model/models_t5_umt5-xxl-enc-bf16.pth", golden());
    sf_t5 *m = NULL;
    if (sf_t5_open(path, threads, &m, &err)) die("open tiny", &err);
    printf("umT5 tiny (dim 64, 3 layers): 512 tokens %.2f ms, 19 tokens %.3f ms\n", encode_ms(m, 512, 5),
           encode_ms(m, 19, 5));
    sf_t5_destroy(&m);
    bench_xxl_layer(threads, full ? 512 : 64);
    printf("peak RSS: %.0f MB\n", peak_rss_mb());
    return 0;
}
