/* fuzz_taps.c — libFuzzer target for sf-taps' readers (tools/taps): arbitrary bytes as a tap file, then what
 * sf-taps makes of one — every source's statistics (summary, table, plot), the tokens maps and the words (SVG and
 * CSV), and compare + report of the file against itself. Tap files are shared between researchers, so a hostile
 * one must be a one-line error, never a crash: the shapes, dtypes and facts (forwards, key frames, token grid,
 * prompt, model_dir) all come from the file. Bytes starting "PK" are read as a torch .pt (the figure-4 and
 * streaming dicts), the rest as .safetensors. The bytes go to a private file under $TMPDIR (compare and report
 * open their runs by path, as sf-taps does). `make fuzz` builds it; seeds in tests/fuzz/seeds/fuzz_taps/. */
#define _POSIX_C_SOURCE 200809L
#include "tfile.h"
#include "tools/taps/compare.h"
#include "tools/taps/taps_analysis.h"
#include "tools/taps/taps_tokens.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[256];

/* The private folder and what the runs left in it, at exit. */
static void cleanup(void) {
    static const char *const names[] = {"taps.safetensors", "taps.pt", "report.html"};
    char p[300];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
}

/* Everything sf-taps computes from the one file at path (tf: it, open). Outputs go to a memory stream. */
static void analyse(const char *path, const sf_tfile *tf) {
    sf_err err;
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (!m) return;
    sf_taps_src *src = NULL;
    size_t n = 0;
    const unsigned sets = SF_TAPS_SET_FIG4 | SF_TAPS_SET_TAPS | SF_TAPS_SET_FRAMES | SF_TAPS_SET_STREAM | SF_TAPS_SET_PROBS;
    if (sf_taps_find_sources(tf, sets, 0, NULL, 0, &src, &n, &err) == SF_OK)
        for (size_t i = 0; i < n && i < 64; i++) {
            sf_taps_stats st;
            if (sf_taps_stats_source(&src[i], NULL, 0, &st, &err) == SF_OK) fprintf(m, "%g %g\n", st.first, st.ratio);
            sf_taps_stats_free(&st);
        }
    free(src);
    const sf_taps_sel sel = {NULL, 0, NULL, 0, -1, -1};
    const sf_taps_tok_opts to = {sel, NULL, 2, 0, 0, NULL, NULL};
    (void)sf_taps_tokens(tf, &to, m, m, &err);
    const sf_taps_words_opts wo = {sel, "/nonexistent/spiece.model", NULL, 0};
    (void)sf_taps_words(tf, &wo, m, m, &err);
    const sf_taps_words_opts wb = {sel, "/nonexistent/spiece.model", "a red fox", 1};
    (void)sf_taps_words(tf, &wb, m, m, &err);
    sf_taps_cmp c;
    const char *paths[2] = {path, path};
    if (sf_taps_cmp_load(&c, paths, 2, NULL, 0, NULL, 0, -1, -1, &err) == SF_OK) {
        char rp[300];
        sf_taps_cmp_csv(m, &c);
        snprintf(rp, sizeof rp, "%s/report.html", dir);
        (void)sf_taps_cmp_report(&c, rp, &err);
    }
    sf_taps_cmp_free(&c);
    fclose(m);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!dir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/sf-fuzz-taps-XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(dir)) abort();
        atexit(cleanup);
        sf_log_set_level(SF_LOG_ERROR); /* quiet: every input's warnings would drown the fuzzer's output */
    }
    char path[300]; /* a zip is a torch .pt (the figure-4 and streaming dicts), anything else a .safetensors */
    snprintf(path, sizeof path, "%s/taps.%s", dir, size >= 2 && data[0] == 'P' && data[1] == 'K' ? "pt" : "safetensors");
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    if (fclose(f)) abort();
    sf_tfile *tf = NULL;
    sf_err err;
    if (sf_tfile_open(path, &tf, &err) == SF_OK) analyse(path, tf);
    sf_tfile_destroy(&tf);
    return 0;
}
