/* sf-view — watch a live sfpipe video in the browser: reads "frames" messages (sf-decode --out URL)
 * and serves one local page (view.h) with the MJPEG stream, progress and a prompt box that talks to
 * the encoder server of the live route (pipelines/live.yaml, README "Live").
 * Exits 0 at SIGINT/SIGTERM, or with --idle-exit once no page has watched for that long (asking the
 * live route to stop first, so the whole pipeline ends cleanly). Tested by tests/bats/live.bats. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "wire.h"
#include "tools/view/record.h"
#include "tools/view/view.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const sf_opt opts[] = {
    {"in", 0, SF_ARG_VALUE, "URL\twire stream of frames u8 [n,H,W,3] (sf-decode --out URL)"},
    {"port", 0, SF_ARG_VALUE, "N\tHTTP port (default 8080)"},
    {"bind", 0, SF_ARG_VALUE, "ADDR\tIPv4 address to listen on (default 127.0.0.1: this machine only)"},
    {"allow-host", 0, SF_ARG_VALUE, "NAMES\tHost names served besides IP addresses and localhost, comma-separated (others are refused: DNS rebinding)"},
    {"encoder", 0, SF_ARG_VALUE, "URL\tthe live route's encoder server (sf-encode --serve URL --out ...): enables the prompt box"},
    {"text-len", 0, SF_ARG_VALUE, "N\ttext length asked of the encoder (default 512, the model's text_len)"},
    {"fps", 0, SF_ARG_VALUE, "N\tplayback rate (default: the stream's, 16)"},
    {"quality", 0, SF_ARG_VALUE, "N\tJPEG quality 1..100 (default 85)"},
    {"max-viewers", 0, SF_ARG_VALUE, "N\tpages watching at once (default 16); more are answered 503"},
    {"stall-timeout", 0, SF_ARG_VALUE, "SEC\tdrop a viewer that has taken nothing, or a client that has sent nothing, for SEC seconds (default 10)"},
    {"encoder-timeout", 0, SF_ARG_VALUE, "SEC\thow long a prompt may wait for the encoder's reply (default 300: a cold umT5 on a CPU)"},
    {"max-lag", 0, SF_ARG_VALUE, "SEC\tplay faster while frames lag their block by more than SEC (default 1; live, not buffered)"},
    {"idle-exit", 0, SF_ARG_VALUE, "SEC\tend the run once no page has watched for SEC seconds (default 0: never)"},
    {"record", 0, SF_ARG_VALUE, "FILE\tevery frame of the stream into FILE (.y4m, .mp4 via ffmpeg, DIR/ of PNGs), published when the view ends (the stream's end, Ctrl-C, the idle exit)"},
    SF_OPTS_STD,
    {NULL, 0, 0, NULL},
};

#define PROG "sf-view"

/* --idle-exit: no page for that long → stop the live route (or just this program). */
static int idle_over(sf_view *v, double idle_exit) {
    double idle;
    return idle_exit > 0 && sf_view_viewers(v, &idle) == 0 && idle >= idle_exit;
}

int main(int argc, char **argv) {
    sf_err err = {{0}};
    sf_args a = {0};
    sf_status s;
    if (sf_args_main(argc, argv, PROG, "--in URL [--port N] [--encoder URL] [options]", opts, &a)) return 0;
    const char *in = sf_args_get(&a, opts, "in"), *v_;
    long port = 8080, tl = 512, quality = 85, maxv = 16;
    double fps = 0, idle_exit = 0, max_lag = 1.0, enc_timeout = 300, stall = 10;
    if ((v_ = sf_args_get(&a, opts, "port")) && (s = sf_arg_long("--port", v_, 1, 65535, &port, &err))) sf_die(PROG, s, &err);
    if ((v_ = sf_args_get(&a, opts, "text-len")) && (s = sf_arg_long("--text-len", v_, 1, 65536, &tl, &err)))
        sf_die(PROG, s, &err);
    if ((v_ = sf_args_get(&a, opts, "quality")) && (s = sf_arg_long("--quality", v_, 1, 100, &quality, &err)))
        sf_die(PROG, s, &err);
    if ((v_ = sf_args_get(&a, opts, "max-viewers")) && (s = sf_arg_long("--max-viewers", v_, 1, 1024, &maxv, &err)))
        sf_die(PROG, s, &err);
    if ((v_ = sf_args_get(&a, opts, "fps")) && ((s = sf_arg_double("--fps", v_, &fps, &err)) || !(fps >= 0 && fps <= 1000)))
        sf_die(PROG, s ? s : SF_E_ARG, s ? &err : &(sf_err){"--fps must be in 0..1000"});
    if ((v_ = sf_args_get(&a, opts, "idle-exit")) &&
        ((s = sf_arg_double("--idle-exit", v_, &idle_exit, &err)) || !(idle_exit >= 0)))
        sf_die(PROG, s ? s : SF_E_ARG, s ? &err : &(sf_err){"--idle-exit must be >= 0"});
    if ((v_ = sf_args_get(&a, opts, "max-lag")) && ((s = sf_arg_double("--max-lag", v_, &max_lag, &err)) || !(max_lag >= 0)))
        sf_die(PROG, s ? s : SF_E_ARG, s ? &err : &(sf_err){"--max-lag must be >= 0"});
    if ((v_ = sf_args_get(&a, opts, "encoder-timeout")) &&
        ((s = sf_arg_double("--encoder-timeout", v_, &enc_timeout, &err)) || !(enc_timeout > 0 && enc_timeout <= 86400)))
        sf_die(PROG, s ? s : SF_E_ARG, s ? &err : &(sf_err){"--encoder-timeout must be in (0, 86400] seconds"});
    if ((v_ = sf_args_get(&a, opts, "stall-timeout")) &&
        ((s = sf_arg_double("--stall-timeout", v_, &stall, &err)) || !(stall > 0 && stall <= 86400)))
        sf_die(PROG, s ? s : SF_E_ARG, s ? &err : &(sf_err){"--stall-timeout must be in (0, 86400] seconds"});
    if (!in) {
        sf_fail(&err, SF_E_ARG, "give --in URL (the frames stream of sf-decode --out URL)");
        sf_die(PROG, SF_E_ARG, &err);
    }
    const char *bind = sf_args_get(&a, opts, "bind");
    if (bind && strcmp(bind, "127.0.0.1") != 0)
        sf_warn("listening on %s: other machines can watch and send prompts (there is no login)", bind);
    sf_view_opts o = {bind ? bind : "127.0.0.1", (int)port, sf_args_get(&a, opts, "encoder"), tl, (int)quality, fps,
                      (int)maxv, max_lag, sf_args_get(&a, opts, "allow-host"), enc_timeout, stall};
    if ((s = sf_wire_install_signals(&err))) sf_die(PROG, s, &err);
    sf_view_rec *rec = NULL; /* --record: checked before the server starts */
    if ((v_ = sf_args_get(&a, opts, "record")) && (s = sf_view_rec_new(v_, fps, &rec, &err))) sf_die(PROG, s, &err);
    sf_view *v = NULL;
    if ((s = sf_view_new(&o, &v, &err))) sf_die(PROG, s, &err);
    if (rec) sf_view_set_recorded(v, 0);
    sf_info("open http://%s:%ld/ to watch%s", o.bind, port, o.encoder ? " and steer" : "");
    sf_wire *r = NULL;
    sf_wire_msg *m = malloc(sizeof *m);
    if (!m) s = sf_fail(&err, SF_E_NOMEM, "out of memory");
    if (!s) s = sf_wire_open_reader(in, &r, &err);
    int asked_stop = 0;
    while (!s) {
        const void *payload;
        if ((s = sf_wire_recv(r, m, &payload, &err))) break;
        if (m->type == SF_WIRE_END) break;
        if (!strcmp(m->name, "progress")) sf_view_progress(v, m);
        if (!strcmp(m->name, "frames") && (s = sf_view_play(v, m, payload, &err))) break;
        if (!strcmp(m->name, "frames") && rec) {
            sf_view_rec_frames(rec, m, payload);
            sf_view_set_recorded(v, sf_view_rec_count(rec));
        }
        if (!asked_stop && idle_over(v, idle_exit) && o.encoder) { /* the page was closed: end the run */
            sf_info("no viewer for %.0f s: stopping the live run", idle_exit);
            asked_stop = 1;
            sf_view_stop_route_async(v); /* frames are read on meanwhile: the server may be busy encoding */
        }
    }
    sf_view_mark_ended(v);
    if (!s) sf_info("the stream ended; the page stays up%s", idle_exit > 0 ? " until no one watches" : " (Ctrl-C ends)");
    while (!s && !sf_wire_stopped() && !(idle_exit > 0 && (idle_over(v, idle_exit) || asked_stop))) sf_sleep(0.1);
    if (s == SF_E_STOPPED && sf_wire_stopped()) s = SF_OK; /* Ctrl-C: a clean exit */
    sf_err e2 = {{0}};
    if (sf_view_rec_close(&rec, &e2) && !s) s = sf_fail(&err, SF_E_IO, "--record: %s", e2.msg); /* what was recorded */
    sf_wire_close(&r, NULL);
    free(m);
    sf_view_destroy(&v);
    sf_args_free(&a);
    if (s) sf_die(PROG, s, &err);
    return 0;
}
