/* wire_tfile.h — a wire stream's tensor messages gathered into an in-memory tensor container: what
 * sf-tensor reads a stream as (ls, cat, diff, convert) and what `sf-wire recv --save` writes.
 *
 * Naming: a message's tensor is called by the message's name ("tensor" when empty); a name already
 * taken gets the first free "#k" (k = 1, 2, …): latents, latents#1, latents#2, … — so the container
 * never holds two tensors of one name, whatever names the stream carries. Message meta becomes string
 * metadata "<tensor>.<key>" (ints and floats printed, int arrays as "[a, b]", bools true/false), which a
 * .safetensors file keeps; a name is taken too when one of those keys would be another tensor's (x's
 * meta b.c and x.b's meta c) or it is "__metadata__" (safetensors' own), so a .safetensors file of the
 * container holds each key once. Tested by tests/bats/sf-tensor.bats and sf-wire.bats. */
#ifndef SF_WIRE_TFILE_H
#define SF_WIRE_TFILE_H

#include "tfile.h"
#include "wire.h"

typedef struct sf_wire_gather {
    sf_tfile *tf;      /* owned until taken (g->tf = NULL) or sf_wire_gather_free */
    char prev[128];    /* the previous message's name, and the k it got: a stream of one name stays linear */
    size_t prev_k;
} sf_wire_gather;

/* An empty container named `path` (for messages). */
sf_status sf_wire_gather_init(sf_wire_gather *g, const char *path, sf_err *err);
/* Append one tensor message (payload: sf_wire_msg_nbytes(m) bytes); other message types are ignored. */
sf_status sf_wire_gather_add(sf_wire_gather *g, const sf_wire_msg *m, const void *payload, sf_err *err);
void sf_wire_gather_free(sf_wire_gather *g);

/* A stream read to its `end` into *out (an upstream error or a stream without `end` fails). */
sf_status sf_wire_read_tfile(const char *url, sf_tfile **out, sf_err *err);

/* entries[0..n) with tf's string metadata (safetensors __metadata__ or wire meta; none for a torch
 * file) into a .safetensors file, atomically. */
sf_status sf_tfile_write_safetensors(const sf_tfile *tf, const sf_tensor_entry *entries, size_t n, const char *path,
                                     sf_err *err);

#endif
