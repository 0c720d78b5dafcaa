/* video.c — frame writers for sf-decode: y4m (native, 4:4:4 BT.601 full range), mp4 (through
 * ffmpeg on PATH), a folder of PNG frames (libpng). See video.h.
 *
 * Mirrors inference.py's torchvision.io.write_video(path, frames, fps=16) (libx264, yuv420p)
 * for mp4. Tested by tests/unit/test_vae_video.c (PNG decoded back with libpng, colour
 * conversion, atomic abort) and tests/bats/sf-decode.bats (ffprobe reads the y4m/mp4 with the
 * right frame count, size and rate). */
#define _POSIX_C_SOURCE 200809L
#include "video.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <png.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

struct sf_video_writer {
    sf_video_kind kind;
    int width, height, fps;
    int64_t frames;
    char path[4096];
    /* y4m */
    sf_atomic_file af;
    FILE *out;         /* af.fp or stdout */
    int to_stdout;
    uint8_t *planes;   /* Y, Cb, Cr planes of one frame */
    /* mp4 */
    char tmp[4200];
    pid_t pid;
    int pipe_fd;
    FILE *ff_err;      /* ffmpeg's stderr (an unlinked tmpfile): it can exit 0 after "Error writing trailer" */
    /* png dir */
    char tmpdir[4200];
};

/* ---- helpers ----------------------------------------------------------------------------- */

static int ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    if (n < m) return 0;
    for (size_t i = 0; i < m; i++) {
        char a = s[n - m + i], b = suf[i];
        if (a >= 'A' && a <= 'Z') a = (char)(a - 'A' + 'a');
        if (a != b) return 0;
    }
    return 1;
}

sf_status sf_video_kind_of(const char *path, sf_video_kind *kind, sf_err *err) {
    struct stat sb;
    if (!path || !*path) return sf_fail(err, SF_E_ARG, "empty output path");
    if (!strcmp(path, "-") || ends_with(path, ".y4m")) *kind = SF_VIDEO_Y4M;
    else if (ends_with(path, ".mp4")) *kind = SF_VIDEO_MP4;
    else if (path[strlen(path) - 1] == '/' || (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))) *kind = SF_VIDEO_PNGDIR;
    else
        return sf_fail(err, SF_E_ARG,
                       "output %s: unknown format (use .y4m, .mp4, '-' for y4m on stdout, or DIR/ for PNG frames)",
                       path);
    return SF_OK;
}

/* A PNG folder may exist only empty (sf_video_close renames the frames folder onto it). */
static sf_status pngdir_free(const char *base, sf_err *err) {
    struct stat sb;
    if (stat(base, &sb) != 0) return SF_OK;
    if (!S_ISDIR(sb.st_mode))
        return sf_fail(err, SF_E_IO, "output folder %s exists and is not a folder (remove it, or pick another name)", base);
    DIR *d = opendir(base);
    int nonempty = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) nonempty = 1;
    if (d) closedir(d);
    if (nonempty) return sf_fail(err, SF_E_IO, "output folder %s exists and is not empty (remove it first)", base);
    return SF_OK;
}

/* The folder's path without its trailing slashes, into base[cap]. */
static void pngdir_base(const char *path, char *base, size_t cap) {
    snprintf(base, cap, "%s", path);
    size_t n = strlen(base);
    while (n > 1 && base[n - 1] == '/') base[--n] = 0;
}

static int find_on_path(const char *prog, char *out, size_t cap);

/* sf_video_check; ff[4096]: ffmpeg's path for an .mp4 */
static sf_status video_check(const char *path, sf_video_kind *kind, char *ff, sf_err *err) {
    sf_status s = sf_video_kind_of(path, kind, err);
    if (s) return s;
    if (*kind == SF_VIDEO_MP4) {
        if (!find_on_path("ffmpeg", ff, 4096))
            return sf_fail(err, SF_E_UNSUPPORTED,
                           "writing %s needs ffmpeg on PATH (Debian/Ubuntu: apt-get install ffmpeg); or write .y4m", path);
    } else if (*kind == SF_VIDEO_PNGDIR) {
        char base[4096];
        pngdir_base(path, base, sizeof base);
        return pngdir_free(base, err);
    }
    return SF_OK;
}

sf_status sf_video_check(const char *path, sf_video_kind *kind, sf_err *err) {
    char ff[4096];
    return video_check(path, kind, ff, err);
}

void sf_rgb_to_ycbcr601(uint8_t r, uint8_t g, uint8_t b, uint8_t *y, uint8_t *cb, uint8_t *cr) {
    /* JPEG / BT.601 full range: Y in [0,255], Cb/Cr centred on 128 (ITU-T T.871). */
    double R = r, G = g, B = b;
    double Y = 0.299 * R + 0.587 * G + 0.114 * B;
    double U = 128.0 - 0.168735892 * R - 0.331264108 * G + 0.5 * B;
    double V = 128.0 + 0.5 * R - 0.418687589 * G - 0.081312411 * B;
    int yi = (int)(Y + 0.5), ui = (int)(U + 0.5), vi = (int)(V + 0.5);
    *y = (uint8_t)(yi < 0 ? 0 : yi > 255 ? 255 : yi);
    *cb = (uint8_t)(ui < 0 ? 0 : ui > 255 ? 255 : ui);
    *cr = (uint8_t)(vi < 0 ? 0 : vi > 255 ? 255 : vi);
}

/* Find an executable `name` on $PATH into buf; 0 when absent. */
static int find_on_path(const char *name, char *buf, size_t n) {
    const char *p = getenv("PATH");
    if (!p) return 0;
    while (*p) {
        const char *e = strchr(p, ':');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len > 0 && (size_t)snprintf(buf, n, "%.*s/%s", (int)len, p, name) < n && access(buf, X_OK) == 0)
            return 1;
        p += len;
        if (*p == ':') p++;
    }
    return 0;
}

static sf_status write_all(int fd, const uint8_t *p, size_t n, const char *what, sf_err *err) {
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return sf_fail(err, SF_E_IO, "%s: %s", what, k < 0 ? strerror(errno) : "short write");
        p += k;
        n -= (size_t)k;
    }
    return SF_OK;
}

/* ---- PNG --------------------------------------------------------------------------------- */

/* libpng's simplified API, written into a buffer of the worst-case size in one pass, with
 * libpng's default filtering and compression: an 832×480 frame takes ~70 ms and about a
 * quarter of its raw size (PNG_IMAGE_FLAG_FAST: ~20 ms but 2.6× larger files). */
static sf_status png_encode(const uint8_t *px, png_uint_32 format, int width, int height, uint8_t **png, size_t *len,
                            sf_err *err) {
    *png = NULL;
    *len = 0;
    if (width <= 0 || height <= 0 || width > 65535 || height > 65535)
        return sf_fail(err, SF_E_ARG, "png: bad size %dx%d", width, height);
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    im.width = (png_uint_32)width;
    im.height = (png_uint_32)height;
    im.format = format;
    png_alloc_size_t cap = PNG_IMAGE_PNG_SIZE_MAX(im), n = cap;
    uint8_t *o = cap ? malloc(cap) : NULL;
    if (!o) return sf_fail(err, SF_E_NOMEM, "png: out of memory");
    if (!png_image_write_to_memory(&im, o, &n, 0, px, 0, NULL) || n > cap) {
        sf_status s = sf_fail(err, SF_E_IO, "png: %s", im.message[0] ? im.message : "libpng could not encode the frame");
        png_image_free(&im);
        free(o);
        return s;
    }
    *png = o;
    *len = (size_t)n;
    return SF_OK;
}

sf_status sf_png_encode(const uint8_t *rgb, int width, int height, uint8_t **png, size_t *len, sf_err *err) {
    return png_encode(rgb, PNG_FORMAT_RGB, width, height, png, len, err);
}

sf_status sf_png_encode_rgba(const uint8_t *rgba, int width, int height, uint8_t **png, size_t *len, sf_err *err) {
    return png_encode(rgba, PNG_FORMAT_RGBA, width, height, png, len, err);
}

static void rm_tree_flat(const char *dir) {
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char f[4400];
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            snprintf(f, sizeof f, "%s/%s", dir, e->d_name);
            unlink(f);
        }
        closedir(d);
    }
    rmdir(dir);
}

/* ---- writer ------------------------------------------------------------------------------ */

sf_status sf_video_open(const char *path, int width, int height, int fps, sf_video_writer **out, sf_err *err) {
    sf_status s;
    *out = NULL;
    sf_video_kind kind;
    char ff[4096];
    if ((s = video_check(path, &kind, ff, err)) != SF_OK) return s; /* again: the folder may have filled since */
    if (width <= 0 || height <= 0 || width > 16384 || height > 16384 || fps <= 0 || fps > 1000)
        return sf_fail(err, SF_E_ARG, "video: bad size %dx%d or fps %d", width, height, fps);
    if (strlen(path) >= 4000) return sf_fail(err, SF_E_ARG, "output path too long");
    sf_video_writer *w = calloc(1, sizeof *w);
    if (!w) return sf_fail(err, SF_E_NOMEM, "out of memory");
    w->kind = kind, w->width = width, w->height = height, w->fps = fps, w->pipe_fd = -1, w->pid = -1;
    snprintf(w->path, sizeof w->path, "%s", path);
    if (kind == SF_VIDEO_Y4M) {
        if (!(w->planes = malloc((size_t)width * (size_t)height * 3))) {
            s = sf_fail(err, SF_E_NOMEM, "out of memory");
            goto fail;
        }
        if (!strcmp(path, "-")) {
            w->to_stdout = 1;
            w->out = stdout;
        } else {
            if ((s = sf_atomic_open(&w->af, path, err)) != SF_OK) goto fail;
            w->out = w->af.fp;
        }
        fprintf(w->out, "YUV4MPEG2 W%d H%d F%d:1 Ip A1:1 C444 XCOLORRANGE=FULL\n", width, height, fps);
    } else if (kind == SF_VIDEO_MP4) {
        /* ffmpeg writes the (seekable) mp4 into sf_atomic_open's file: the anonymous O_TMPFILE
         * through /proc/self/fd/3, or the named fallback; sf_atomic_commit links it into place */
        if ((s = sf_atomic_open(&w->af, path, err)) != SF_OK) goto fail;
        int ofd = fileno(w->af.fp);
        if (w->af.tmp[0]) snprintf(w->tmp, sizeof w->tmp, "%s", w->af.tmp);
        else snprintf(w->tmp, sizeof w->tmp, "/proc/self/fd/3");
        if (!(w->ff_err = tmpfile())) {
            s = sf_fail(err, SF_E_IO, "tmpfile: %s", strerror(errno));
            goto fail;
        }
        int efd = fileno(w->ff_err);
        int pfd[2];
        if (pipe(pfd) != 0) {
            s = sf_fail(err, SF_E_IO, "pipe: %s", strerror(errno));
            goto fail;
        }
        char size[32], rate[16];
        snprintf(size, sizeof size, "%dx%d", width, height);
        snprintf(rate, sizeof rate, "%d", fps);
        pid_t pid = fork();
        if (pid < 0) {
            close(pfd[0]), close(pfd[1]);
            s = sf_fail(err, SF_E_IO, "fork: %s", strerror(errno));
            goto fail;
        }
        if (pid == 0) {
            /* ffmpeg finishes when its pipe closes and is stopped by sf_video_abort's SIGTERM: a terminal's
             * Ctrl-C (or a kill of our process group) must not cut it while this process publishes what it has
             * (sf-view --record on Ctrl-C). The ignored SIGINT survives the exec. */
            signal(SIGINT, SIG_IGN);
            setpgid(0, 0);
            dup2(pfd[0], 0);
            if (pfd[0] != 3 && pfd[0] != 0) close(pfd[0]);
            if (pfd[1] != 3) close(pfd[1]);
            if (ofd != 3) dup2(ofd, 3); /* the output file as fd 3 (dup2 clears close-on-exec) */
            else fcntl(3, F_SETFD, 0);
            int nul = open("/dev/null", O_WRONLY);
            if (nul >= 0) dup2(nul, 1);
            dup2(efd, 2);
            /* yuv420p needs even sizes: pad odd ones by one pixel */
            char *argv[] = {ff, "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
                            "-s", size, "-r", rate, "-i", "pipe:0", "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2",
                            "-c:v", "libx264", "-pix_fmt", "yuv420p", "-f", "mp4", w->tmp, NULL};
            execv(ff, argv);
            _exit(127);
        }
        close(pfd[0]);
        w->pid = pid;
        w->pipe_fd = pfd[1];
    } else {
        char base[4096];
        pngdir_base(path, base, sizeof base);
        snprintf(w->path, sizeof w->path, "%s", base);
        sf_tmp_sweep(base); /* the frames folder a killed sf-decode left */
        snprintf(w->tmpdir, sizeof w->tmpdir, "%s.tmp.%ld", base, (long)getpid());
        if (mkdir(w->tmpdir, 0755) != 0) {
            /* name the output the user asked for, not the temp folder beside it */
            s = sf_fail(err, SF_E_IO, "cannot create output folder %s: %s", base, strerror(errno));
            w->tmpdir[0] = 0;
            goto fail;
        }
    }
    *out = w;
    return SF_OK;
fail:
    sf_video_abort(&w);
    return s;
}

/* The last line ffmpeg wrote to its stderr (-loglevel error: errors only), "" when none. */
static const char *ffmpeg_said(sf_video_writer *w, char *buf, size_t n) {
    buf[0] = 0;
    if (!w->ff_err || fseek(w->ff_err, 0, SEEK_SET) != 0) return buf;
    char line[1024];
    while (fgets(line, sizeof line, w->ff_err)) {
        line[strcspn(line, "\r\n")] = 0;
        if (line[0]) snprintf(buf, n, "%.500s", line);
    }
    return buf;
}

int64_t sf_video_frames(const sf_video_writer *w) { return w ? w->frames : 0; }

sf_status sf_video_write(sf_video_writer *w, const uint8_t *rgb, sf_err *err) {
    const size_t P = (size_t)w->width * (size_t)w->height;
    sf_status s = SF_OK;
    if (w->kind == SF_VIDEO_Y4M) {
        uint8_t *Y = w->planes, *U = Y + P, *V = U + P;
        for (size_t i = 0; i < P; i++) sf_rgb_to_ycbcr601(rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2], Y + i, U + i, V + i);
        if (fputs("FRAME\n", w->out) == EOF || fwrite(w->planes, 1, 3 * P, w->out) != 3 * P)
            return sf_fail(err, SF_E_IO, "writing %s: %s", w->path, strerror(errno));
    } else if (w->kind == SF_VIDEO_MP4) {
        if ((s = write_all(w->pipe_fd, rgb, 3 * P, "ffmpeg pipe (ffmpeg failed?)", err)) != SF_OK) {
            char said[512];
            if (*ffmpeg_said(w, said, sizeof said)) sf_fail(err, s, "ffmpeg failed writing %s: %s", w->path, said);
            return s;
        }
    } else {
        uint8_t *png = NULL;
        size_t len = 0;
        char f[4400], what[4400];
        if ((s = sf_png_encode(rgb, w->width, w->height, &png, &len, err)) != SF_OK) return s;
        snprintf(f, sizeof f, "%s/" SF_VIDEO_FRAME_NAME, w->tmpdir, (long long)w->frames);
        /* errors name the output folder and frame, not the temp folder the frames go to first */
        snprintf(what, sizeof what, "cannot write %s/" SF_VIDEO_FRAME_NAME, w->path, (long long)w->frames);
        int fd = open(f, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) s = sf_fail(err, SF_E_IO, "%s: %s", what, strerror(errno));
        else {
            s = write_all(fd, png, len, what, err);
            if (close(fd) != 0 && s == SF_OK) s = sf_fail(err, SF_E_IO, "%s: %s", what, strerror(errno));
        }
        free(png);
        if (s != SF_OK) return s;
    }
    w->frames++;
    return SF_OK;
}

static int wait_child(pid_t pid) {
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

sf_status sf_video_close(sf_video_writer **wp, sf_err *err) {
    sf_video_writer *w = *wp;
    sf_status s = SF_OK;
    if (!w) return SF_OK;
    if (w->kind == SF_VIDEO_Y4M) {
        if (w->to_stdout) {
            if (fflush(stdout) != 0) s = sf_fail(err, SF_E_IO, "writing stdout: %s", strerror(errno));
        } else {
            s = sf_atomic_commit(&w->af, err);
        }
        w->af.fp = NULL;
        w->af.tmp[0] = 0;
    } else if (w->kind == SF_VIDEO_MP4) {
        close(w->pipe_fd);
        w->pipe_fd = -1;
        int rc = wait_child(w->pid);
        w->pid = -1;
        char said[512];
        if (rc != 0 || *ffmpeg_said(w, said, sizeof said))
            s = sf_fail(err, SF_E_IO, "ffmpeg failed (exit %d) writing %s%s%s", rc, w->path,
                        rc == 127 ? " (could not run ffmpeg)" : said[0] ? ": " : "", rc == 127 ? "" : said);
        else
            s = sf_atomic_commit(&w->af, err);
        w->af.fp = NULL;
        w->af.tmp[0] = 0;
    } else {
        if (rename(w->tmpdir, w->path) != 0)
            s = sf_fail(err, SF_E_IO, "cannot create output folder %s (moving the frames into place): %s",
                        w->path, strerror(errno));
        else
            w->tmpdir[0] = 0;
    }
    sf_video_abort(wp); /* frees; removes temporaries that are still there */
    return s;
}

void sf_video_abort(sf_video_writer **wp) {
    sf_video_writer *w = wp ? *wp : NULL;
    if (!w) return;
    if (w->kind != SF_VIDEO_PNGDIR && !w->to_stdout) sf_atomic_abort(&w->af);
    if (w->pipe_fd >= 0) close(w->pipe_fd);
    if (w->pid > 0) { /* the output is dropped: ffmpeg need not finish it (a stop stays under 1 s) */
        kill(w->pid, SIGTERM);
        wait_child(w->pid);
    }
    if (w->ff_err) fclose(w->ff_err);
    if (w->tmpdir[0]) rm_tree_flat(w->tmpdir);
    free(w->planes);
    free(w);
    *wp = NULL;
}
