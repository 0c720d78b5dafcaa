/* test_taps_svg.c — sf-taps' SVG figures (tools/taps/svg.c). The round axis ticks
 * (sf_taps_nice_ticks): the exact tick lists and labels of hand-picked ranges (increasing,
 * negative to positive, negative only, tiny, huge, one value, NaN ends, float noise at an end)
 * and invariants over 3000 pseudo-random ranges; the integer tick step; and figures written from
 * hand-made statistics: the zero line iff the y range spans 0 (at the 0 tick), the head grid's
 * panel titles and outer axis labels, escaped text, XML well-formedness (a small checker below)
 * and byte-identical output for the same input. */
#define _POSIX_C_SOURCE 200809L
#include "sf_test.h"
#include "tools/taps/taps_analysis.h"

#include <ctype.h>
#include <stdint.h>
#include <unistd.h>

/* ---- ticks ---------------------------------------------------------------------------- */

/* The ticks of lo..hi (max_ticks) must be exactly want[0..n) (== on doubles: each tick is the
 * double nearest its decimal) with labels lab[0..n). */
static void check_ticks(double lo, double hi, int max_ticks, int n, const double *want, const char *const *lab) {
    sf_taps_ticks t;
    sf_taps_nice_ticks(lo, hi, max_ticks, &t);
    SF_CHECK_MSG(t.n == n, "[%g, %g] max %d: %d ticks, expected %d", lo, hi, max_ticks, t.n, n);
    for (int i = 0; i < n && i < t.n; i++) {
        char buf[64];
        SF_CHECK_MSG(t.v[i] == want[i], "[%g, %g] tick %d = %.17g, expected %.17g", lo, hi, i, t.v[i], want[i]);
        sf_taps_tick_label(&t, t.v[i], buf, sizeof buf);
        SF_CHECK_MSG(!strcmp(buf, lab[i]), "[%g, %g] label %d = '%s', expected '%s'", lo, hi, i, buf, lab[i]);
    }
}

#define TICKS(lo, hi, max, ...)                                                                                  \
    do {                                                                                                         \
        static const double w_[] = {__VA_ARGS__};                                                                \
        check_ticks((lo), (hi), (max), (int)(sizeof w_ / sizeof w_[0]), w_, labels_);                            \
    } while (0)

static void test_nice_ticks_ranges(void) {
    {   /* the example: 0.2 steps, the top extended to the enclosing tick 1.0 */
        static const char *const labels_[] = {"0.0", "0.2", "0.4", "0.6", "0.8", "1.0"};
        TICKS(0.013, 0.87, 6, 0, 0.2, 0.4, 0.6, 0.8, 1.0);
        TICKS(0.87, 0.013, 6, 0, 0.2, 0.4, 0.6, 0.8, 1.0); /* swapped ends */
        TICKS(NAN, NAN, 6, 0, 0.2, 0.4, 0.6, 0.8, 1.0);     /* nothing finite: 0..1 */
    }
    {   /* negative to positive: 0 is a tick, labels use U+2212 */
        static const char *const labels_[] = {"−0.4", "−0.2", "0.0", "0.2", "0.4", "0.6"};
        TICKS(-0.37, 0.52, 6, -0.4, -0.2, 0, 0.2, 0.4, 0.6);
    }
    {   /* more ticks allowed: 1-steps rather than 2 */
        static const char *const labels_[] = {"−2", "−1", "0", "1", "2", "3"};
        TICKS(-1.3, 2.7, 8, -2, -1, 0, 1, 2, 3);
    }
    {   /* negative only */
        static const char *const labels_[] = {"−10", "−8", "−6", "−4", "−2"};
        TICKS(-8.7, -2.1, 6, -10, -8, -6, -4, -2);
    }
    {   /* 0.05 steps: two decimals on every label, 0.3 not 0.30000000000000004 */
        static const char *const labels_[] = {"0.10", "0.15", "0.20", "0.25", "0.30"};
        TICKS(0.1, 0.3, 6, 0.1, 0.15, 0.2, 0.25, 0.3);
    }
    {   /* 0.1 + 0.2 = 0.30000000000000004 is on the 0.3 tick, not past it */
        static const char *const labels_[] = {"0.0", "0.1", "0.2", "0.3"};
        TICKS(0, 0.1 + 0.2, 6, 0, 0.1, 0.2, 0.3);
    }
    {   /* 0.6/0.2 = 2.9999999999999996: 0.6 is still the first tick, not 0.4 */
        static const char *const labels_[] = {"0.6", "0.8", "1.0", "1.2", "1.4"};
        TICKS(0.6, 1.4, 6, 0.6, 0.8, 1.0, 1.2, 1.4);
    }
    {   /* tiny: ×10⁻⁶ labels with one decimal, zero plain */
        static const char *const labels_[] = {"0", "0.2×10⁻⁶", "0.4×10⁻⁶", "0.6×10⁻⁶", "0.8×10⁻⁶", "1.0×10⁻⁶"};
        TICKS(1.2e-7, 8.9e-7, 6, 0, 2e-7, 4e-7, 6e-7, 8e-7, 1e-6);
    }
    {   /* tiny across zero, whole mantissas */
        static const char *const labels_[] = {"−1×10⁻⁷", "0", "1×10⁻⁷", "2×10⁻⁷", "3×10⁻⁷"};
        TICKS(-1e-7, 3e-7, 6, -1e-7, 0, 1e-7, 2e-7, 3e-7);
    }
    {   /* small but still fixed: 4 decimals */
        static const char *const labels_[] = {"−0.0055", "−0.0050", "−0.0045", "−0.0040", "−0.0035", "−0.0030"};
        TICKS(-0.0042, -0.0042, 6, -0.0055, -0.005, -0.0045, -0.004, -0.0035, -0.003); /* one value */
    }
    {   /* huge */
        static const char *const labels_[] = {"0.2×10¹⁰", "0.4×10¹⁰", "0.6×10¹⁰", "0.8×10¹⁰", "1.0×10¹⁰"};
        TICKS(3.1e9, 9.4e9, 6, 2e9, 4e9, 6e9, 8e9, 1e10);
    }
    {   /* 10^6 and up switch to ×10^k */
        static const char *const labels_[] = {"0", "0.5×10⁶", "1.0×10⁶", "1.5×10⁶", "2.0×10⁶", "2.5×10⁶"};
        TICKS(0, 2.4e6, 6, 0, 5e5, 1e6, 1.5e6, 2e6, 2.5e6);
    }
    {   /* below that, whole numbers */
        static const char *const labels_[] = {"0", "20", "40", "60", "80", "100"};
        TICKS(0, 100, 6, 0, 20, 40, 60, 80, 100);
    }
    {   /* one value: ± its decade */
        static const char *const labels_[] = {"4.0", "4.5", "5.0", "5.5", "6.0"};
        TICKS(5, 5, 6, 4, 4.5, 5, 5.5, 6);
        TICKS(5, 5 + 1e-12, 6, 4, 4.5, 5, 5.5, 6); /* within 1e-9 relative: one value */
    }
    {
        static const char *const labels_[] = {"−1.0", "−0.5", "0.0", "0.5", "1.0"};
        TICKS(0, 0, 6, -1, -0.5, 0, 0.5, 1);
    }
    {   /* one finite end: that value */
        static const char *const labels_[] = {"2.0", "2.5", "3.0", "3.5", "4.0"};
        TICKS(NAN, 3, 6, 2, 2.5, 3, 3.5, 4);
        TICKS(3, INFINITY, 6, 2, 2.5, 3, 3.5, 4);
    }
    sf_taps_ticks t;
    sf_taps_nice_ticks(-1e308, 1e308, 6, &t); /* clamped to ±1e300: finite, ascending */
    SF_CHECK(t.n >= 2 && t.n <= 6 && isfinite(t.v[0]) && isfinite(t.v[t.n - 1]) && t.v[0] <= -1e300 && t.v[t.n - 1] >= 1e300);
    char buf[64];
    sf_taps_tick_label(&t, NAN, buf, sizeof buf);
    SF_CHECK(!strcmp(buf, "nan"));
    sf_taps_nice_ticks(0, 1, 6, &t);
    sf_taps_tick_label(&t, -1e-17, buf, sizeof buf); /* rounding residue: no "−0.0" */
    SF_CHECK_MSG(!strcmp(buf, "0.0"), "'%s'", buf);
    sf_taps_tick_label(&t, -0.04, buf, sizeof buf); /* rounds to zero: no sign either */
    SF_CHECK_MSG(!strcmp(buf, "0.0"), "'%s'", buf);
    sf_taps_nice_ticks(1.2e-7, 8.9e-7, 6, &t);
    sf_taps_tick_label(&t, -1e-22, buf, sizeof buf); /* ×10^k axis: residue is a plain 0 */
    SF_CHECK_MSG(!strcmp(buf, "0"), "'%s'", buf);
}

static uint64_t lcg(uint64_t *s) {
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return *s >> 11;
}
static double urand(uint64_t *s) { return (double)lcg(s) / 9007199254740992.0; } /* [0, 1) */

/* A label back to its value: U+2212 → '-', "m×10ᵉ" → m·10^e. */
static double parse_label(const char *lab) {
    static const char *const sup[10] = {"⁰", "¹", "²", "³", "⁴", "⁵", "⁶", "⁷", "⁸", "⁹"};
    char a[128];
    size_t n = 0;
    const char *p = lab;
    if (!strncmp(p, "−", strlen("−"))) {
        a[n++] = '-';
        p += strlen("−");
    }
    while (*p && *p != '\xc3' && n + 1 < sizeof a) a[n++] = *p++; /* '×' is C3 97 */
    a[n] = 0;
    double m = strtod(a, NULL);
    if (!*p) return m;
    p += strlen("×10");
    int neg = 0, e = 0;
    if (!strncmp(p, "⁻", strlen("⁻"))) neg = 1, p += strlen("⁻");
    while (*p) {
        int d = -1;
        for (int i = 0; i < 10; i++)
            if (!strncmp(p, sup[i], strlen(sup[i]))) d = i;
        if (d < 0) return NAN;
        e = 10 * e + d;
        p += strlen(sup[d]);
    }
    return m * pow(10, neg ? -e : e);
}

/* Digits after the point in a label's number part (-1: none). */
static int label_decimals(const char *lab) {
    const char *dot = strchr(lab, '.');
    if (!dot) return 0;
    int d = 0;
    for (dot++; *dot >= '0' && *dot <= '9'; dot++) d++;
    return d;
}

static void test_nice_ticks_invariants(void) {
    uint64_t seed = 12345;
    int bad = 0;
    for (int it = 0; it < 3000 && bad < 10; it++) {
        double scale = pow(10, (int)(lcg(&seed) % 25) - 12);
        double lo = (urand(&seed) * 2 - 1) * scale * (1 + (double)(lcg(&seed) % 100));
        double hi = lo + (lcg(&seed) % 8 == 0 ? 0 : urand(&seed) * scale * 10);
        int max = 3 + (int)(lcg(&seed) % 8);
        sf_taps_ticks t;
        sf_taps_nice_ticks(lo, hi, max, &t);
        int ok = t.n >= 2 && t.n <= max && (t.mant == 1 || t.mant == 2 || t.mant == 5);
        ok = ok && t.v[0] <= lo + 1e-9 * t.step && t.v[t.n - 1] >= hi - 1e-9 * t.step; /* encloses */
        int has_zero = 0;
        char prev[64] = "";
        for (int i = 0; i < t.n && ok; i++) {
            if (i) ok = fabs(t.v[i] - t.v[i - 1] - t.step) <= 1e-9 * t.step;
            has_zero |= t.v[i] == 0;
            char lab[64];
            sf_taps_tick_label(&t, t.v[i], lab, sizeof lab);
            double back = parse_label(lab);
            ok = ok && strcmp(lab, prev) && !strchr(lab, 'e') && fabs(back - t.v[i]) <= 1e-6 * t.step + 4e-16 * fabs(t.v[i]);
            if (!(t.sci && t.v[i] == 0)) ok = ok && label_decimals(lab) == t.decimals; /* one format */
            if (!ok) fprintf(stderr, "# label %d '%s' (back %.17g) of %.17g\n", i, lab, back, t.v[i]);
            snprintf(prev, sizeof prev, "%s", lab);
        }
        if (t.v[0] < 0 && t.v[t.n - 1] > 0) ok = ok && has_zero;
        /* the smallest round step that fits: the next smaller one needs more than max ticks */
        if (ok && hi > lo) {
            double ps = t.mant == 1 ? t.step / 2 : t.mant == 2 ? t.step / 2 : t.step * 0.4;
            double k0 = floor(lo / ps + 1e-6), k1 = ceil(hi / ps - 1e-6);
            ok = k1 - k0 + 1 > max;
        }
        if (!ok) {
            bad++;
            SF_CHECK_MSG(0, "[%.17g, %.17g] max %d: %d ticks %g..%g step %g", lo, hi, max, t.n, t.v[0], t.v[t.n - 1], t.step);
        }
    }
}

static void test_int_tick_step(void) {
    SF_CHECK(sf_taps_int_tick_step(9, 11) == 1);   /* 0..8: every frame */
    SF_CHECK(sf_taps_int_tick_step(21, 11) == 2);  /* 0, 2, …, 20: 11 labels */
    SF_CHECK(sf_taps_int_tick_step(21, 10) == 5);  /* 0, 5, 10, 15, 20 */
    SF_CHECK(sf_taps_int_tick_step(81, 11) == 10); /* 5 would be 17 labels */
    SF_CHECK(sf_taps_int_tick_step(100, 24) == 5);
    SF_CHECK(sf_taps_int_tick_step(10, 1) == 10);  /* just 0 */
    SF_CHECK(sf_taps_int_tick_step(1, 5) == 1 && sf_taps_int_tick_step(0, 5) == 1);
    SF_CHECK(sf_taps_int_tick_step(INT64_MAX, 2) > 0);
}

/* ---- figures ---------------------------------------------------------------------------- */

/* Minimal XML well-formedness: one prolog, one root, tags nest and match, attributes quoted,
 * no raw '<' or stray '&' in text or values, only the predefined entities. */
static int xml_well_formed(const char *s, char *why, size_t nwhy) {
    const char *stack[64];
    size_t lens[64], depth = 0;
    int roots = 0;
    const char *p = s;
    if (strncmp(p, "<?xml ", 6)) return snprintf(why, nwhy, "no prolog"), 0;
    p = strstr(p, "?>");
    if (!p) return snprintf(why, nwhy, "unterminated prolog"), 0;
    p += 2;
    while (*p) {
        if (*p == '<') {
            int close = p[1] == '/';
            const char *nm = p + 1 + close, *q = nm;
            while (*q && (isalnum((unsigned char)*q) || *q == '-' || *q == ':' || *q == '_')) q++;
            size_t nl = (size_t)(q - nm);
            if (!nl) return snprintf(why, nwhy, "bad tag at %zu", (size_t)(p - s)), 0;
            if (close) {
                if (!depth || lens[depth - 1] != nl || strncmp(stack[depth - 1], nm, nl))
                    return snprintf(why, nwhy, "mismatched </%.*s> at %zu", (int)nl, nm, (size_t)(p - s)), 0;
                depth--;
                if (*q != '>') return snprintf(why, nwhy, "bad close tag"), 0;
                p = q + 1;
                continue;
            }
            if (!depth && roots++) return snprintf(why, nwhy, "second root"), 0;
            for (;;) { /* attributes */
                while (*q == ' ' || *q == '\n') q++;
                if (*q == '>' || (q[0] == '/' && q[1] == '>')) break;
                const char *an = q;
                while (*q && (isalnum((unsigned char)*q) || *q == '-' || *q == ':' || *q == '_')) q++;
                if (q == an || *q != '=' || q[1] != '"') return snprintf(why, nwhy, "bad attribute at %zu", (size_t)(q - s)), 0;
                q += 2;
                while (*q && *q != '"') {
                    if (*q == '<') return snprintf(why, nwhy, "'<' in a value at %zu", (size_t)(q - s)), 0;
                    q++;
                }
                if (!*q) return snprintf(why, nwhy, "unterminated value"), 0;
                q++;
            }
            if (*q == '/') {
                p = q + 2;
                if (!depth) return snprintf(why, nwhy, "empty root"), 0;
                continue;
            }
            if (depth == 64) return snprintf(why, nwhy, "too deep"), 0;
            stack[depth] = nm;
            lens[depth++] = nl;
            p = q + 1;
        } else if (*p == '&') {
            static const char *const ent[] = {"&lt;", "&gt;", "&amp;", "&quot;", "&apos;"};
            int ok = 0;
            for (int i = 0; i < 5; i++)
                if (!strncmp(p, ent[i], strlen(ent[i]))) ok = (int)strlen(ent[i]);
            if (!ok) return snprintf(why, nwhy, "stray '&' at %zu", (size_t)(p - s)), 0;
            p += ok;
        } else {
            if (!depth && !isspace((unsigned char)*p)) return snprintf(why, nwhy, "text outside the root"), 0;
            p++;
        }
    }
    if (depth || roots != 1) return snprintf(why, nwhy, "unclosed <%.*s>", depth ? (int)lens[depth - 1] : 0, depth ? stack[depth - 1] : ""), 0;
    return 1;
}

static char *slurp(const char *path) {
    char *d = NULL;
    size_t n = 0;
    sf_err err = {0};
    SF_CHECK_OK(sf_read_file(path, &d, &n, (size_t)64 << 20, &err), &err);
    return d;
}

static int count_of(const char *s, const char *needle) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

/* Hand-made statistics: nh heads (ids) × K frames of F; the rest from sf_taps_stats_finish. */
static void make_stats(sf_taps_stats *s, int nh, const int *ids, int64_t K, const double *F) {
    memset(s, 0, sizeof *s);
    s->nh = nh;
    s->nkf = K;
    s->heads = malloc(sizeof(int) * (size_t)nh);
    s->F = malloc(sizeof(double) * (size_t)nh * (size_t)K);
    s->delta = calloc((size_t)nh, sizeof(double));
    s->spread = calloc((size_t)nh, sizeof(double));
    s->sink = calloc((size_t)nh, sizeof(double));
    s->mean = calloc((size_t)K, sizeof(double));
    s->std = calloc((size_t)K, sizeof(double));
    SF_CHECK(s->heads && s->F && s->delta && s->spread && s->sink && s->mean && s->std);
    memcpy(s->heads, ids, sizeof(int) * (size_t)nh);
    memcpy(s->F, F, sizeof(double) * (size_t)nh * (size_t)K);
    sf_taps_stats_finish(s);
}

/* The texts of the elements of class cls in s[0..n), '|'-joined, into out. */
static void texts_of(const char *s, size_t n, const char *cls, char *out, size_t nout) {
    char key[64];
    snprintf(key, sizeof key, "<text class=\"%s\"", cls);
    out[0] = 0;
    for (const char *p = s; (p = strstr(p, key)) && p < s + n; p++) {
        const char *a = strchr(p, '>') + 1, *b = strstr(a, "</text>");
        size_t l = strlen(out);
        snprintf(out + l, nout - l, "%s%.*s", l ? "|" : "", (int)(b - a), a);
    }
}

/* y attribute of the first element of class cls in s[0..n) (NAN: none). */
static double attr_y(const char *s, size_t n, const char *elem_cls, const char *attr) {
    const char *p = strstr(s, elem_cls);
    if (!p || p >= s + n) return NAN;
    const char *a = strstr(p, attr);
    return a ? strtod(a + strlen(attr), NULL) : NAN;
}

static void test_heads_grid(void) {
    char dir[] = "/tmp/sf_svg_XXXXXX", p1[64], p2[64], why[128];
    SF_CHECK(mkdtemp(dir) != NULL);
    snprintf(p1, sizeof p1, "%s/a.svg", dir);
    snprintf(p2, sizeof p2, "%s/b.svg", dir);
    /* 6 heads → 4 + 2 panels; the y range of each panel includes 0 (bars from 0) */
    const int ids[6] = {0, 2, 3, 5, 7, 11};
    const double F[6][5] = {
        {0.5, 0.2, 0.3, 0.1, 0.4},     /* 0..0.5: no zero line */
        {0.3, -0.2, 0.1, -0.1, 0.2},   /* −0.2..0.3: zero line */
        {-0.5, -1, -2, -1.5, -0.7},    /* −2..0: 0 is the top edge, no line */
        {2e-7, -1e-7, 0, 3e-7, 1e-7},  /* tiny, spans 0 */
        {0, 0, 0, 0, 0},               /* one value 0: −1..1, spans 0 */
        {NAN, 1, 2, 3, 4},             /* 0..4 */
    };
    const int want_zero[6] = {0, 1, 0, 1, 1, 0};
    /* Δ = F[0] − mean(F[1..3]) in the panel's label format with two more decimals */
    const char *const want_delta[6] = {"0.300", "0.367", "1.000", "1.33×10⁻⁷", "0.000", "nan"};
    const char *const want_ticks[6] = {
        "0.0|0.1|0.2|0.3|0.4|0.5",
        "−0.2|−0.1|0.0|0.1|0.2|0.3",
        "−2.0|−1.5|−1.0|−0.5|0.0",
        "−1×10⁻⁷|0|1×10⁻⁷|2×10⁻⁷|3×10⁻⁷",
        "−1.0|−0.5|0.0|0.5|1.0",
        "0|1|2|3|4",
    };
    sf_taps_stats s;
    make_stats(&s, 6, ids, 5, &F[0][0]);
    sf_taps_src src = {.layer = 3};
    snprintf(src.label, sizeof src.label, "L3<&\"x\">"); /* escaped in the title */
    sf_err err = {0};
    SF_CHECK_OK(sf_taps_svg_heads(p1, &src, &s, &err), &err);
    SF_CHECK_OK(sf_taps_svg_heads(p2, &src, &s, &err), &err);
    char *a = slurp(p1), *b = slurp(p2);
    if (a && b) {
        SF_CHECK_MSG(!strcmp(a, b), "same input, different bytes");
        SF_CHECK_MSG(xml_well_formed(a, why, sizeof why), "%s", why);
        SF_CHECK(strstr(a, "Layer 3 (L3&lt;&amp;&quot;x&quot;&gt;)"));
        SF_CHECK(count_of(a, "<g class=\"panel\">") == 6);
        SF_CHECK(count_of(a, "class=\"zero-line\"") == 3);
        /* outer axis labels: x under the bottom panel of each of the 4 columns (heads 2..5 in
         * grid order: 2 and 3 have none below), y left of the 2 rows */
        SF_CHECK(count_of(a, ">Key frame</text>") == 4);
        SF_CHECK(count_of(a, ">Mean attention logit</text>") == 2);
        SF_CHECK(count_of(a, "transform=\"rotate(-90") == 2);
        const char *panel = a;
        for (int h = 0; h < 6; h++) {
            panel = strstr(panel, "<g class=\"panel\">");
            if (!panel) break;
            const char *end = strstr(panel + 1, "<g class=\"panel\">");
            size_t n = end ? (size_t)(end - panel) : strlen(panel);
            char got[512], want[96];
            texts_of(panel, n, "panel-title", got, sizeof got);
            snprintf(want, sizeof want, "head %d (Δ = %s)", ids[h], want_delta[h]);
            SF_CHECK_MSG(!strcmp(got, want), "panel %d title '%s', expected '%s'", h, got, want);
            texts_of(panel, n, "y-tick", got, sizeof got);
            SF_CHECK_MSG(!strcmp(got, want_ticks[h]), "panel %d y ticks '%s', expected '%s'", h, got, want_ticks[h]);
            texts_of(panel, n, "x-tick", got, sizeof got);
            SF_CHECK_MSG(!strcmp(got, "0|1|2|3|4"), "panel %d x ticks '%s'", h, got);
            texts_of(panel, n, "axis-label", got, sizeof got);
            const char *wl = h == 4 ? "Key frame|Mean attention logit" : h == 0 ? "Mean attention logit"
                                                                    : h >= 2 ? "Key frame" : "";
            SF_CHECK_MSG(!strcmp(got, wl), "panel %d axis labels '%s', expected '%s'", h, got, wl);
            const char *z = strstr(panel, "class=\"zero-line\"");
            int has = z && z < panel + n;
            SF_CHECK_MSG(has == want_zero[h], "panel %d zero line %d, expected %d", h, has, want_zero[h]);
            if (has) { /* on the 0 tick: its label sits fsize/3 = 2.7 px below the line */
                const char *zl = h == 3 ? ">0</text>" : ">0.0</text>";
                const char *t0 = strstr(panel, zl);
                SF_CHECK(t0 && t0 < panel + n);
                const char *ty = t0;
                while (ty > panel && strncmp(ty, " y=\"", 4)) ty--;
                double y_line = attr_y(panel, n, "class=\"zero-line\"", "y1=\""), y_lab = strtod(ty + 4, NULL);
                SF_CHECK_MSG(fabs(y_lab - 2.7 - y_line) < 0.11, "panel %d zero line at %g, 0 label at %g", h, y_line, y_lab);
            }
            panel += 1;
        }
    }
    free(a);
    free(b);
    sf_taps_stats_free(&s);
    unlink(p1);
    unlink(p2);
    rmdir(dir);
}

static void test_other_figures(void) {
    char dir[] = "/tmp/sf_svg_XXXXXX", p[96], why[128];
    SF_CHECK(mkdtemp(dir) != NULL);
    const int ids[2] = {0, 1};
    const double Fpos[2][3] = {{3, 1, 2}, {2, 2, 2}};     /* mean ± std within 1..3 */
    const double Fneg[2][3] = {{0.4, -0.3, 0.1}, {0.2, 0.1, -0.5}};
    sf_taps_stats st[2];
    make_stats(&st[0], 2, ids, 3, &Fpos[0][0]);
    make_stats(&st[1], 2, ids, 3, &Fneg[0][0]);
    st[0].sink[0] = 1.7, st[0].sink[1] = 0.4, st[1].sink[0] = 1.2, st[1].sink[1] = NAN;
    sf_taps_src src[2] = {{.layer = 0}, {.layer = 5}};
    snprintf(src[0].label, sizeof src[0].label, "L0");
    snprintf(src[1].label, sizeof src[1].label, "L5");
    sf_err err = {0};
    struct { const char *name; int zero; } want[] = {{"layers_pos", 0}, {"layers_both", 1}, {"sink", 0}, {"heatmap", 0}};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s.svg", dir, want[i].name);
        if (i == 0) SF_CHECK_OK(sf_taps_svg_layers(p, src, st, 1, &err), &err);
        if (i == 1) SF_CHECK_OK(sf_taps_svg_layers(p, src, st, 2, &err), &err);
        if (i == 2) SF_CHECK_OK(sf_taps_svg_sink(p, src, st, 2, &err), &err);
        if (i == 3) SF_CHECK_OK(sf_taps_svg_heatmap(p, &src[1], &st[1], &err), &err);
        char *a = slurp(p);
        if (!a) continue;
        size_t n = strlen(a);
        SF_CHECK_MSG(xml_well_formed(a, why, sizeof why), "%s: %s", want[i].name, why);
        SF_CHECK_MSG(count_of(a, "class=\"zero-line\"") == want[i].zero, "%s", want[i].name);
        char got[512];
        texts_of(a, n, "y-tick", got, sizeof got);
        const char *wt = i == 0 ? "1.0|1.5|2.0|2.5|3.0"                  /* mean ± std: 1.5 − 0.5 .. 2.5 + 0.5 */
                       : i == 1 ? "−0.5|0.0|0.5|1.0|1.5|2.0|2.5|3.0"     /* and −0.2 − 0.3 */
                       : i == 2 ? "0.0|0.5|1.0|1.5|2.0"                  /* 0 .. sink 1.7 */
                                : "H0|H1";
        SF_CHECK_MSG(!strcmp(got, wt), "%s y ticks '%s', expected '%s'", want[i].name, got, wt);
        texts_of(a, n, "axis-label", got, sizeof got);
        const char *wl = i < 2 ? "Key frame|Mean attention logit" : i == 2 ? "Head|Sink ratio"
                                                                          : "Head|Key frame|Mean attention logit";
        SF_CHECK_MSG(!strcmp(got, wl), "%s axis labels '%s'", want[i].name, got);
        if (i == 3) { /* colour bar: round ticks inside the exact range −0.5..0.4 */
            texts_of(a, n, "c-tick", got, sizeof got);
            SF_CHECK_MSG(!strcmp(got, "−0.4|−0.2|0.0|0.2|0.4"), "colour bar ticks '%s'", got);
        }
        free(a);
        unlink(p);
    }
    rmdir(dir);
    sf_taps_stats_free(&st[0]);
    sf_taps_stats_free(&st[1]);
}

static void test_well_formed_checker(void) { /* the checker itself rejects what it should */
    char why[128];
    SF_CHECK(xml_well_formed("<?xml version=\"1.0\"?>\n<a x=\"1\"><b/>t &amp; u</a>\n", why, sizeof why));
    SF_CHECK(!xml_well_formed("<?xml version=\"1.0\"?><a><b></a></b>", why, sizeof why));
    SF_CHECK(!xml_well_formed("<?xml version=\"1.0\"?><a>x & y</a>", why, sizeof why));
    SF_CHECK(!xml_well_formed("<?xml version=\"1.0\"?><a t=\"<\"></a>", why, sizeof why));
    SF_CHECK(!xml_well_formed("<?xml version=\"1.0\"?><a></a><a></a>", why, sizeof why));
    SF_CHECK(!xml_well_formed("<?xml version=\"1.0\"?><a>", why, sizeof why));
}

/* sf_taps_xml_text: markup escaped, control characters but newline and tab dropped, UTF-8 kept, and each byte that is not UTF-8 (a stray
 * continuation byte, a truncated sequence, an overlong form, a surrogate) one U+FFFD */
static void test_xml_text(void) {
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"a<b>&\"c'", "a&lt;b&gt;&amp;&quot;c&#39;"},
        {"\xe2\x96\x81red \xc3\xa9t\xc3\xa9 \xf0\x9f\x8e\xa5", "\xe2\x96\x81red \xc3\xa9t\xc3\xa9 \xf0\x9f\x8e\xa5"},
        {"x\x01\x1f\x7f\xc2\x85y\tz\n", "xy\tz\n"},
        {"\xff", "\xef\xbf\xbd"},
        {"a\x80" "b", "a\xef\xbf\xbd" "b"},
        {"\xe2\x96", "\xef\xbf\xbd\xef\xbf\xbd"},
        {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},
        {"\xed\xa0\x80!", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd!"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *buf = NULL;
        size_t n = 0;
        FILE *f = open_memstream(&buf, &n);
        SF_CHECK(f != NULL);
        if (!f) return;
        sf_taps_xml_text(f, cases[i].in);
        fclose(f);
        SF_CHECK_MSG(!strcmp(buf, cases[i].want), "case %zu: got '%s', expected '%s'", i, buf, cases[i].want);
        free(buf);
    }
}

static const sf_test tests[] = {
    {"nice_ticks_ranges", test_nice_ticks_ranges},
    {"nice_ticks_invariants", test_nice_ticks_invariants},
    {"int_tick_step", test_int_tick_step},
    {"well_formed_checker", test_well_formed_checker},
    {"heads_grid", test_heads_grid},
    {"other_figures", test_other_figures},
    {"xml_text", test_xml_text},
};
SF_TEST_MAIN(tests)
