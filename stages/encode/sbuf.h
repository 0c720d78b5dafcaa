/* sbuf.h — the small growable NUL-terminated byte buffer of the prompt code (clean.c, tokenizer.c).
 * b->p stays a C string after every append; the functions return 0 when out of memory (b unchanged). */
#ifndef SF_ENCODE_SBUF_H
#define SF_ENCODE_SBUF_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct sbuf {
    char *p;
    size_t n, cap;
} sbuf;

static inline int sb_put(sbuf *b, const void *s, size_t n) {
    if (n > SIZE_MAX - b->n - 1) return 0;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1) {
            if (cap > SIZE_MAX / 2) return 0;
            cap *= 2;
        }
        char *np = realloc(b->p, cap);
        if (!np) return 0;
        b->p = np, b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return 1;
}

static inline int sb_cp(sbuf *b, uint32_t c) { /* append code point as UTF-8 */
    char u[4];
    size_t n;
    if (c < 0x80) u[0] = (char)c, n = 1;
    else if (c < 0x800) u[0] = (char)(0xc0 | c >> 6), u[1] = (char)(0x80 | (c & 63)), n = 2;
    else if (c < 0x10000)
        u[0] = (char)(0xe0 | c >> 12), u[1] = (char)(0x80 | ((c >> 6) & 63)), u[2] = (char)(0x80 | (c & 63)), n = 3;
    else
        u[0] = (char)(0xf0 | c >> 18), u[1] = (char)(0x80 | ((c >> 12) & 63)), u[2] = (char)(0x80 | ((c >> 6) & 63)),
        u[3] = (char)(0x80 | (c & 63)), n = 4;
    return sb_put(b, u, n);
}

#endif
