/* fuzz_wire.c — libFuzzer target for the wire byte-stream decoder (common/wire.c):
 * sf_wire_frame_parse over a whole buffer, frame after frame, plus sf_wire_header_decode on the
 * raw bytes. Must never crash, leak or read out of bounds; every rejection is SF_E_FORMAT.
 * The parsed tensor messages are gathered as sf-tensor and `sf-wire recv --save` gather a stream
 * (common/wire_tfile.c): every message lands under a name no other tensor has, and no meta key repeats.
 * Seeds in tests/fuzz/seeds/fuzz_wire/ (streams written by sf-wire send). Run: make fuzz. */
#include "wire.h"
#include "wire_tfile.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static sf_wire_msg m;
    sf_err err;
    size_t off = 0, n_tensors = 0;
    sf_wire_gather g;
    if (sf_wire_gather_init(&g, "fuzz", &err)) abort();
    while (off < size) {
        const void *payload = NULL;
        size_t used = 0;
        sf_status st = sf_wire_frame_parse(data + off, size - off, &m, &payload, &used, &err);
        if (st) {
            if (st != SF_E_FORMAT) abort();
            break;
        }
        if (used == 0 || used > size - off) abort();
        /* touch what the header promises */
        size_t nb = sf_wire_msg_nbytes(&m);
        if (nb && (!payload || (const uint8_t *)payload + nb > data + size)) abort();
        char line[4096];
        sf_wire_msg_str(&m, line, sizeof line);
        off += used;
        if (m.type == SF_WIRE_END) break;
        if (m.type == SF_WIRE_TENSOR && nb <= (1u << 20)) { /* gathered: a copy of the payload */
            st = sf_wire_gather_add(&g, &m, payload, &err);
            /* the one refusal allowed: a name sf_tfile_add takes for no tensor's (control characters);
               a taken one must have become a free name#k */
            if (st && (st != SF_E_FORMAT || !m.name[0] || sf_utf8_valid(m.name, strlen(m.name), 0))) abort();
            if (!st) n_tensors++;
        }
    }
    if (g.tf->n != n_tensors) abort();
    /* and no meta key "<tensor>.<key>" twice, nor a tensor called __metadata__: a .safetensors file of
       the gather must read back (seed meta_keys.sft: x's b.c, x.b's c) */
    if (sf_tfile_find(g.tf, "__metadata__")) abort();
    for (size_t i = 0; i < g.tf->n_meta; i++)
        for (size_t j = i + 1; j < g.tf->n_meta; j++)
            if (!strcmp(g.tf->meta_keys[i], g.tf->meta_keys[j])) abort();
    sf_wire_gather_free(&g);
    sf_status st = sf_wire_header_decode(data, size, &m, &err);
    if (st && st != SF_E_FORMAT) abort();
    if (!st) { /* a decoded header re-encodes and decodes to the same message */
        void *buf = NULL;
        size_t len = 0;
        if (sf_wire_header_encode(&m, &buf, &len, &err) == SF_OK) {
            static sf_wire_msg m2;
            if (sf_wire_header_decode(buf, len, &m2, &err) != SF_OK) abort();
            if (m2.type != m.type || m2.ndim != m.ndim || m2.n_meta != m.n_meta || strcmp(m2.name, m.name)) abort();
            free(buf);
        }
    }
    return 0;
}
