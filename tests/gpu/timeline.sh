#!/usr/bin/env bash
# timeline.sh TRACE — the figures of a run's SF_TRACE timeline (common/trace.h), measured from
# t0, the moment the embedding is ready and the stages are ready for it: the latest of sf-encode's first
# embeds_out (else sf-denoise's embeds_in), sf-denoise's ready (weights on the device, plans made) and
# sf-decode's ready when it loaded up front (--height/--width; capped at the first forward), as the
# reference's figures start with its models loaded; traces without those events: sf-denoise's first
# forward (start). An sf-decode that loads on its first latents has that in its figures. Figures:
#   dit        last block handed out by sf-denoise
#   first      first decoded frames written by sf-decode ("first frames on screen": its first
#              latent_out, the first latent frame's frames, else its first block's frames_out)
#   steady     median interval between consecutive decoded blocks after the first (DiT and decode
#              pipelined: the rate a viewer sees)
#   e2e        the video finished (sf-decode's end, else its last frames)
#   lag        from t0 to sf-denoise's first forward (receiving the embedding, the cross-attention's
#              K/V, whatever one-time work was left after ready)
# Prints one line of key=value pairs (seconds; steady in ms), for check.sh / e2e.sh and the
# bench table; exits 1 with a one-line reason when the trace lacks the events.
set -euo pipefail
trace=${1:?usage: timeline.sh TRACE}
[ -r "$trace" ] || { echo "timeline: cannot read $trace" >&2; exit 1; }
sort -n "$trace" | awk '
    $2 == "encode" && $3 == "embeds_out" && !eo { eo = $1 }
    $2 == "denoise" && $3 == "embeds_in" && !ei { ei = $1 }
    $2 == "denoise" && $3 == "ready" && !rd { rd = $1 }
    $2 == "decode" && $3 == "ready" && !dr { dr = $1 }
    $2 == "denoise" && $3 == "start" && !st {
        st = $1; e = eo ? eo : ei
        t0 = (e && rd) ? (e > rd ? e : rd) : st
        if (dr > t0) t0 = dr < st ? dr : st   # sf-decode loaded up front (--height/--width), capped at the first forward
    }
    $2 == "denoise" && $3 == "block_out" && st { dit = $1; blocks++ }
    $2 == "decode" && $3 == "latent_out" && st { if (!first) first = $1 }
    $2 == "decode" && $3 == "frames_out" && st { if (!first) first = $1; fo[nfo++] = $1; frames = $5 }
    $2 == "decode" && $3 == "end" && st { end = $1; frames = $5 }
    END {
        if (!st) { print "timeline: no denoise start event" > "/dev/stderr"; exit 1 }
        if (!nfo) { print "timeline: no decode frames_out event after the denoise start" > "/dev/stderr"; exit 1 }
        if (!end) end = fo[nfo - 1]
        n = 0
        for (i = 2; i < nfo; i++) d[n++] = fo[i] - fo[i - 1]   # skip the first interval (no pipeline yet)
        if (!n && nfo > 1) d[n++] = fo[1] - fo[0]
        for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (d[j] < d[i]) { x = d[i]; d[i] = d[j]; d[j] = x }
        steady = n ? (n % 2 ? d[int(n / 2)] : (d[n / 2 - 1] + d[n / 2]) / 2) : 0
        e2e = (end - t0) / 1e9
        printf "dit=%.3f first=%.3f steady_ms=%.1f e2e=%.3f blocks=%d decoded_blocks=%d frames=%d fps=%.1f lag=%.3f\n", \
            (dit - t0) / 1e9, (first - t0) / 1e9, steady / 1e6, e2e, blocks, nfo, frames, (e2e > 0 ? frames / e2e : 0),
            (st - t0) / 1e9
    }'
