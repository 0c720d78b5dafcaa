/* record.h — sf-view --record FILE: every frame of the live stream into a video file (stages/decode/video.h:
 * .y4m, .mp4 through ffmpeg, or DIR/ of PNGs), whatever the page showed or skipped to catch up.
 *
 * The file is opened at the first frames message (its size and the stream's fps, or --fps) and published
 * when the view ends — the stream's end, Ctrl-C / SIGTERM, the idle exit — with the frames it has: a live
 * session has no other end. ffmpeg ignores the terminal's Ctrl-C (video.c), so an .mp4 is finished then, not
 * cut. A recording that fails (a full disk, frames of another size) is dropped with one warning and the
 * view goes on. Tested by tests/bats/live.bats (the same bytes as sf-decode's own y4m of the stream; an .mp4
 * after Ctrl-C; pipelines/live.yaml's record var). */
#ifndef SF_VIEW_RECORD_H
#define SF_VIEW_RECORD_H

#include "sf.h"
#include "wire.h"

typedef struct sf_view_rec sf_view_rec;

/* Check path before anything else runs (its kind; an .mp4 needs ffmpeg): SF_E_ARG / SF_E_IO with the reason.
 * *out: the recorder (nothing opened yet). fps: 0 takes the stream's meta fps (16 when absent). */
sf_status sf_view_rec_new(const char *path, double fps, sf_view_rec **out, sf_err *err);
/* The frames of one "frames" message (u8 [n, H, W, 3], checked by sf_view_play first). On a failure the
 * recording is dropped (one warning, nothing left behind) and later messages are ignored. */
void sf_view_rec_frames(sf_view_rec *r, const sf_wire_msg *m, const void *payload);
/* Frames written so far (-1: no recorder, or the recording was dropped). */
int64_t sf_view_rec_count(const sf_view_rec *r);
/* Publish what was recorded (info line: frames, path) and free *r; a recording without frames leaves no file.
 * Safe with NULL. */
sf_status sf_view_rec_close(sf_view_rec **r, sf_err *err);

#endif
