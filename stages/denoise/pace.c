/* pace.c — a live video generated no faster than it is watched (pace.h). */
#include "stages/denoise/pace.h"

int64_t sf_pace_pixel_frames(int64_t start_frame, int F) {
    if (F <= 0) return 0;
    return start_frame == 0 ? 1 + 4 * (int64_t)(F - 1) : 4 * (int64_t)F;
}

void sf_pace_started(sf_pace *p, double now) {
    p->t_start = now;
}

void sf_pace_sent(sf_pace *p, double now, int64_t start_frame, int F) {
    if (!(p->fps > 0)) return;
    if (p->t_start > 0 && now >= p->t_start) p->gen = now - p->t_start;
    p->t_start = 0;
    const double from = p->play_end > now ? p->play_end : now;
    p->play_end = from + (double)sf_pace_pixel_frames(start_frame, F) / p->fps;
}

double sf_pace_wait(const sf_pace *p, double now) {
    if (!(p->fps > 0) || !(p->play_end > 0)) return 0;
    const double due = p->play_end - p->gen - p->ahead;
    return due > now ? due - now : 0;
}
