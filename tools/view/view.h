/* view.h — sf-view's server: decoded frames from a wire stream played as an MJPEG stream on one local
 * web page, with the prompt in effect, progress, FPS and latency, and a text box that sends a new
 * prompt through the live route (sf-encode --serve … --out → sf-denoise --in).
 *
 * HTTP (libmicrohttpd, one thread per connection, bound to 127.0.0.1 by default; a connection that
 * sends nothing for stall_timeout is closed, and when all are taken the one idle longest makes room):
 *   GET  /             the page (tools/view/page.c)
 *   GET  /stream.mjpg  multipart/x-mixed-replace JPEG frames (libjpeg-turbo) at the video's frame rate;
 *                      at most max_viewers at once (503 past it: the other 8 connections stay for the
 *                      rest); a viewer that takes no byte for stall_timeout is dropped
 *   GET  /frame.jpg    the latest frame
 *   GET  /status       JSON: prompt, pending, block, frame, gen_block, gen_step, n_steps (the
 *                      generator's position: sf-denoise's "progress" messages), fps, video_fps, gen_fps (the
 *                      generator's own rate), recorded (--record's frames, -1: none), latency_ms, switches,
 *                      switch_latency_ms, viewers, ended, can_prompt (latency_ms -1: unknown, e.g. frames
 *                      generated on another host, whose clock is not ours)
 *   POST /prompt       JSON {"prompt": TEXT, "recache": BOOL}: TEXT valid UTF-8, 1..2000 bytes, no
 *                      control characters (C0, DEL, C1, bidi controls; tab allowed), nothing after the
 *                      object; a cross-origin Origin header is refused (403); while one prompt waits for
 *                      the encoder (up to encoder_timeout) another is 503 "busy"
 * Any request whose Host is a name other than localhost / *.localhost / --allow-host's is 403 (a page
 * that re-points its own name at this machine — DNS rebinding — cannot read frames or send prompts).
 * Anything else is 404 / 405; request bodies over 16 KiB are 413; two Host headers are 400. Every response
 * has nosniff, CSP, X-Frame-Options and Cross-Origin-Resource-Policy: same-origin (no other site may
 * embed the stream). All JSON is built with cJSON.
 * Mirrors the reference's demo.py (Flask + Socket.IO) in spirit, not in code. Tested by
 * tests/unit/test_view.c (input validation, JSON, JPEG) and tests/bats/live.bats (the page in
 * headless Chromium). */
#ifndef SF_VIEW_H
#define SF_VIEW_H

#include "sf.h"
#include "wire.h"

#include <stddef.h>
#include <stdint.h>

#define SF_VIEW_MAX_PROMPT 2000

typedef struct sf_view sf_view;

typedef struct sf_view_opts {
    const char *bind;      /* IPv4 address, default 127.0.0.1 */
    int port;
    const char *encoder;   /* encode server URL (the live route) or NULL: prompts cannot be sent */
    int64_t text_len;      /* for encoder requests (512) */
    int quality;           /* JPEG quality 1..100 */
    double fps;            /* playback rate; 0: the stream's meta fps (16 when absent) */
    int max_viewers;       /* stream viewers at once, 503 past it (0: 16); 8 more connections serve the rest */
    double max_lag;        /* seconds a frame may lag its block's departure before playback catches up */
    const char *allow_hosts; /* comma-separated Host names served besides IP literals and localhost, or NULL */
    double encoder_timeout;  /* seconds one encoder request may wait for its reply (0: 300) */
    double stall_timeout;    /* a stream viewer that takes no byte, or a client that sends none, for this
                              * long is dropped (0: 10) */
} sf_view_opts;

/* Start the HTTP server (and connect to the encoder). Caller destroys. */
sf_status sf_view_new(const sf_view_opts *o, sf_view **out, sf_err *err);
/* Stop the server and free; *v = NULL. */
void sf_view_destroy(sf_view **v);

/* Play one "frames" message: u8 [n, H, W, 3] with meta block, prompt, t_sent, fps. Each frame is
 * JPEG-encoded and published at the playback rate (this call sleeps between frames). */
sf_status sf_view_play(sf_view *v, const sf_wire_msg *m, const void *payload, sf_err *err);
/* A "progress" message (meta block, step, n_steps): the generator's position, shown on the page. */
void sf_view_progress(sf_view *v, const sf_wire_msg *m);
/* The stream ended (no more frames will come). */
void sf_view_mark_ended(sf_view *v);
/* What --record has written (frames; -1: not recording, the default), for /status ("recorded") and the page. */
void sf_view_set_recorded(sf_view *v, int64_t frames);
/* Viewers connected to the stream now, and seconds since the last one left (-1: none ever came). */
int sf_view_viewers(sf_view *v, double *idle_s);
/* Ask the encoder server to end the live run (sf_encode_client_stop_route), on a connection of its own:
 * a prompt request in flight does not hold it up. Waits up to encoder_timeout for the reply. */
sf_status sf_view_stop_route(sf_view *v, sf_err *err);
/* The same on a thread of its own (once; a failure is a warning), so the caller goes on reading frames.
 * sf_view_destroy joins it. */
void sf_view_stop_route_async(sf_view *v);

/* ---- pieces, exposed for tests ---- */
/* A prompt from a POST body: SF_OK and the text copied into out (n ≥ SF_VIEW_MAX_PROMPT + 1), recache
 * (-1 absent); SF_E_ARG with a one-line reason otherwise. */
sf_status sf_view_parse_prompt(const char *body, size_t len, char *out, size_t n, int *recache, sf_err *err);
/* 1 when a request's Host header may be served (DNS rebinding guard): absent, an IP literal (port
 * optional, IPv6 in brackets), localhost or *.localhost, or one of the comma-separated names in allow. */
int sf_view_host_ok(const char *host, const char *allow);
/* The status JSON (malloc'd, caller frees). */
char *sf_view_status_json(sf_view *v);

/* The page (page.c). */
extern const char sf_view_page[];

#endif
