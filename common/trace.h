/* trace.h — SF_TRACE: a wall-clock timeline of a run across its stage processes.
 *
 * With SF_TRACE=FILE in the environment, every stage appends one line per event to FILE:
 *     <unix time, ns> <stage> <event> <block> <count>
 * e.g. "1796000000123456789 denoise block_out 0 3" (block 0 handed out, 3 latent frames).
 * Each line is one O_APPEND write(), so the processes of one run (sf-run, a shell pipe, hosts
 * sharing a clock) interleave whole lines. The clock is CLOCK_REALTIME because the events of
 * different processes are compared; tests/gpu/timeline.sh turns a trace into the figures of
 * issue 13 (DiT time, first frames on screen, steady block, end to end).
 *
 * Events: encode  embeds_out  <prompt index> <tokens>
 *         denoise ready       -1 <blocks>          (weights and state on the device, its plans made:
 *                                                   before it waits for the embedding)
 *                 embeds_in   0 <rows>             (the first embedding in hand)
 *                 start       -1 <blocks>          (before the first forward of a video)
 *                 block_out   <block> <latent frames>
 *         decode  ready       -1 0                 (VAE loaded, plans made: with --height/--width,
 *                                                   before its input is read)
 *                 latent_out  <latent frame> <video frames written so far> (its frames emitted)
 *                 frames_out  <block> <video frames written so far>       (the block's last)
 *                 end         -1 <video frames>
 * Off (no SF_TRACE) every call is one getenv-free branch. A trace that cannot be written is
 * reported once and then ignored: tracing never fails a run. */
#ifndef SF_TRACE_H
#define SF_TRACE_H

#include <stdint.h>

void sf_trace(const char *stage, const char *event, int64_t block, int64_t count);

#endif
