/* video.h — writing decoded RGB frames as a video file, frame by frame, atomically.
 *
 * Formats (chosen from the output path):
 *   *.y4m     YUV4MPEG2 written natively: 4:4:4 (C444, no chroma subsampling) with BT.601
 *             full-range ("JPEG") coefficients, header tag XCOLORRANGE=FULL; "-" = y4m on stdout.
 *   *.mp4     raw rgb24 frames piped into `ffmpeg` (found on PATH) → libx264, yuv420p, like the
 *             reference's torchvision write_video; a clear error naming the Debian package
 *             `ffmpeg` when it is missing.
 *   DIR/      (trailing '/' or an existing directory) a folder of frame_00000.png ... (RGB, 8 bit,
 *             our own writer: zlib stored blocks, no compression, no library).
 * Output is atomic: a temp file (or temp folder) next to the target, renamed on sf_video_close;
 * on error or sf_video_abort nothing is left behind. Mirrors inference.py's write_video(fps=16)
 * step. Tested by tests/unit/test_vae_video.c and tests/bats/sf-decode.bats (ffprobe). */
#ifndef SF_VIDEO_H
#define SF_VIDEO_H

#include "sf.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sf_video_kind { SF_VIDEO_Y4M = 1, SF_VIDEO_MP4, SF_VIDEO_PNGDIR } sf_video_kind;

/* A PNG folder's frame n (long long) inside it, as written here and read by sf-taps --frames. */
#define SF_VIDEO_FRAME_NAME "frame_%05lld.png"

typedef struct sf_video_writer sf_video_writer;

/* Format for an output path; SF_E_ARG for an unknown extension. */
sf_status sf_video_kind_of(const char *path, sf_video_kind *kind, sf_err *err);
/* The kind, and whether it can be written: an .mp4 needs ffmpeg on PATH, a PNG folder must not exist
 * or be empty. Run before the VAE loads (and again by sf_video_open). */
sf_status sf_video_check(const char *path, sf_video_kind *kind, sf_err *err);

/* Start writing width×height frames at fps (> 0). Fails early (before any decoding) when the
 * target cannot be created or ffmpeg is missing. Caller ends with sf_video_close or _abort. */
sf_status sf_video_open(const char *path, int width, int height, int fps, sf_video_writer **out, sf_err *err);

/* Append one frame: rgb [height, width, 3] uint8 (borrowed). */
sf_status sf_video_write(sf_video_writer *w, const uint8_t *rgb, sf_err *err);

/* Finish and publish the output (rename into place); frees *w (also on failure, then removes
 * every temporary). */
sf_status sf_video_close(sf_video_writer **w, sf_err *err);

/* Discard the output and free *w (idempotent on NULL). */
void sf_video_abort(sf_video_writer **w);

/* Frames written so far. */
int64_t sf_video_frames(const sf_video_writer *w);

/* Encode one RGB frame (height, width, 3) u8 as a PNG (8-bit RGB, libpng, deflate-compressed)
 * into a malloc'd buffer (caller frees). */
sf_status sf_png_encode(const uint8_t *rgb, int width, int height, uint8_t **png, size_t *len, sf_err *err);
/* The same with an alpha channel: rgba (height, width, 4) u8, straight (not premultiplied) alpha. */
sf_status sf_png_encode_rgba(const uint8_t *rgba, int width, int height, uint8_t **png, size_t *len, sf_err *err);

/* BT.601 full-range RGB → Y'CbCr, rounded and clamped to [0, 255]. */
void sf_rgb_to_ycbcr601(uint8_t r, uint8_t g, uint8_t b, uint8_t *y, uint8_t *cb, uint8_t *cr);

#ifdef __cplusplus
}
#endif
#endif
