/* live.h — sf-denoise's live input: prompt embeddings read from the --in wire stream while the video
 * is generated, and the block-boundary prompt switch (README "Live").
 *
 * The first "prompt_embeds" tensor (a name ending in prompt_embeds, [L, text_dim] or [1, L, text_dim],
 * L <= text_len) conditions the video from block 0. When following, a reader thread keeps receiving:
 * every further prompt_embeds message is queued and taken at the next block boundary (the newest one
 * due wins; meta `at_block` N delays it to block N, for reproducible scripts and tests; meta `recache`
 * true/false overrides --recache for that prompt). The switch replaces the cross-attention context
 * (sf_dit_set_context, on the CPU or the GPU) and, with re-cache, recomputes the window's K/V under the
 * new prompt (sf_dit_recache, LongLive). The stream's "end" stops the reader, not the video; a
 * "stop" message ends an endless video cleanly (end sent downstream).
 * Mirrors no reference module (the reference demo has one prompt per video; LongLive's
 * interactive inference switches prompts the same way). Tested by tests/unit/test_live.c and
 * tests/bats/live.bats. */
#ifndef SF_DENOISE_LIVE_H
#define SF_DENOISE_LIVE_H

#include "stages/denoise/dit.h"
#include "stages/denoise/pace.h"
#include "wire.h"

typedef struct sf_prompt_feed sf_prompt_feed;

/* Open url (bind or connect: errors now, before any waiting); wait for nothing yet. The stage opens its
 * input first, readies the device, then waits (sf_prompt_feed_first). Close with sf_prompt_feed_close. */
sf_status sf_prompt_feed_connect(const char *url, double wire_timeout, int text_dim, int text_len, sf_prompt_feed **out,
                                 sf_err *err);
/* Wait for the first prompt_embeds: *emb (rows, text_dim) f32 malloc'd (caller frees), its meta prompt
 * into prompt (when non-empty there, prompt is kept). follow: keep reading in a thread. Without follow
 * the stream is read on to its `end` (the writer waits for that acknowledgement) and closed. A stream
 * that ends first is SF_E_FORMAT; a wrong shape SF_E_SHAPE. */
sf_status sf_prompt_feed_first(sf_prompt_feed *f, int follow, float **emb, int64_t *rows, char *prompt, size_t pn,
                               sf_err *err);
/* Both at once (wire_timeout: --timeout, 0 waits forever); on failure *out is NULL. */
sf_status sf_prompt_feed_open(const char *url, double wire_timeout, int text_dim, int text_len, int follow,
                              sf_prompt_feed **out, float **emb, int64_t *rows, char *prompt, size_t pn, sf_err *err);
/* The prompt due at block `block`, if any: returns 1 and the newest due entry (borrowed until the next
 * call): emb (rows, text_dim), its prompt text ("" when none) and recache (-1: not given). Older due
 * entries are dropped. Messages of a wrong shape are skipped with a warning (a live run goes on). */
int sf_prompt_feed_take(sf_prompt_feed *f, int block, const float **emb, int64_t *rows, const char **prompt,
                        int *recache);
/* 1 once a "stop" message came on the stream (the live route ends the run: sf-encode's stop request). */
int sf_prompt_feed_stop_requested(const sf_prompt_feed *f);
/* Stop the reader and free everything; *f = NULL. Safe with NULL. A reader still blocked on a silent
 * stream is woken by raising the wire stop flag (sf_wire_request_stop), so call it at the end of a run. */
void sf_prompt_feed_close(sf_prompt_feed **f);

/* The pipeline's live hooks (sf_pipeline_live) over a feed. */
typedef struct sf_denoise_live {
    sf_prompt_feed *feed;
    sf_dit_state *st;
    int recache;          /* --recache: the default for prompts without meta recache */
    char prompt[4096];    /* the prompt in effect (sent with every block) */
    int switches;         /* prompt switches done */
    sf_pace pace;         /* --pace: no faster than it is watched (pace.fps 0: as fast as it can) */
} sf_denoise_live;

/* on_block_start: with --pace, wait until the block is due (pace.h; a stop signal or the route's stop ends
 * the wait at once); then take the prompt due (the feed may be NULL: pacing only), set it as the context,
 * ask for a re-cache when wanted. */
sf_status sf_denoise_live_block_start(void *ctx, int block, int64_t start_frame, int *recache, sf_err *err);
/* A "progress" message (u8 [0], meta block, step, n_steps, t_sent, clock) down out before a forward, for the
 * viewer's generation progress; a failed send is left to the block's own send to report. */
void sf_denoise_live_progress(sf_wire *out, int block, int step, int n_steps);
/* stopped: the wire's stop flag (SIGINT / SIGTERM) or a "stop" message on the stream. */
int sf_denoise_live_stopped(void *ctx);

#endif
