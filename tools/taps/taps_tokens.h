/* taps_tokens.h — `sf-taps tokens` (tokens.c): the per-token mass of the sink frames from a --tap-mode tokens
 * file, as CSV and/or an SVG of one heatmap per layer and key slot. */
#ifndef SF_TAPS_TOKENS_H
#define SF_TAPS_TOKENS_H

#include "taps_analysis.h"

#include <stdio.h>

/* layers[nl] (nl 0: all) and heads[nh] (nh 0: all); fb ≥ 0: that forward (block fb, step fs) of every layer, else
 * each layer's latest block's first step. svg non-NULL: the figure (an <svg> element, no XML prolog) to it; csv
 * non-NULL: the rows to it. Bad input (not a tokens file, nothing selected): one-line error, nothing written. */
sf_status sf_taps_tokens(const sf_tfile *tf, const int *layers, int nl, const int *heads, int nh, int fb, int fs,
                         FILE *svg, FILE *csv, sf_err *err);

/* The same maps of tf minus base's (the same selection; grids, layers and key slots must match, else SF_E_SHAPE) as
 * an SVG of differences on a diverging scale: how a run's sink moved against another's (report --tokens). */
sf_status sf_taps_tokens_diff(const sf_tfile *tf, const sf_tfile *base, const int *layers, int nl, int fb, int fs, FILE *svg,
                              sf_err *err);

#endif
