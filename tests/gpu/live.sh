#!/usr/bin/env bash
# tests/gpu/live.sh MODEL DEVICE [var=value ...] — issue 15's live figures: `sf-run pipelines/live.yaml`
# (encoder server → endless sf-denoise → sf-decode → sf-view) on MODEL and DEVICE; once frames play,
# it watches for SF_LIVE_PLAY seconds, posts a new prompt to the page's /prompt as a browser would,
# waits for the view to report the switch, watches again, then stops the run with SIGINT (every stage
# must exit). Prints one line:
#   live: fps F (video V, generated at G), frame latency L ms, prompt switch S ms (post -> first frame of the new
#   prompt on the page), start T s, stop ok|FAILED
# (pipelines/live.yaml paces the generator to the video's rate: F stays at V while the device keeps up, and G
# is the generator's own rate, its blocks' video frames over their generation time)
# fps / latency / switch come from sf-view's /status (frames shown per second, denoise -> screen per
# frame, post -> first frame generated under the new prompt). Run by tests/gpu/e2e.sh on the full
# random model (device=cuda:0); tests/bats/gpu-tools.bats runs it on the tiny model on the CPU.
# Exit 1 (with the log's tail) when the run fails, never plays, or does not switch in time.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
model=${1:?usage: live.sh MODEL DEVICE [var=value ...]}
device=${2:?usage: live.sh MODEL DEVICE [var=value ...]}
shift 2
W=$(mktemp -d /tmp/sf-live.XXXXXX)
port=$((20000 + RANDOM % 12000)) # below the ephemeral range (32768 on)
play=${SF_LIVE_PLAY:-8}     # seconds watched before and after the switch
wait_s=${SF_LIVE_WAIT:-240} # for the first frame (process start, weights, plans) and for the switch
# HTTP through curl, or python3's urllib where there is no working curl (the GPU machine's image may lack
# it; SF_LIVE_HTTP=python forces it). Both with the machine's own library path (check.sh's SF_LD0), not the
# bundle's libraries that sfpipe's programs need.
ld0=${SF_LD0-${LD_LIBRARY_PATH:-}}
curl() { LD_LIBRARY_PATH="$ld0" command curl "$@"; }
python3() { LD_LIBRARY_PATH="$ld0" command python3 "$@"; }
if curl --version >/dev/null 2>&1 && [ "${SF_LIVE_HTTP:-}" != python ]; then
    status() { curl -s --max-time 2 "http://127.0.0.1:$port/status" 2>/dev/null; }
    post() { curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X POST -H 'Content-Type: application/json' -d "$2" "$1"; }
else
    status() {
        python3 -c 'import sys, urllib.request as u
try: sys.stdout.write(u.urlopen(sys.argv[1], timeout=2).read().decode())
except Exception: pass' "http://127.0.0.1:$port/status" 2>/dev/null
    }
    post() { # prints the status code (000: no answer), like curl -w
        python3 -c 'import sys, urllib.request as u, urllib.error as e
r = u.Request(sys.argv[1], data=sys.argv[2].encode(), headers={"Content-Type": "application/json"}, method="POST")
try: print(u.urlopen(r, timeout=10).status)
except e.HTTPError as x: print(x.code)
except Exception: print("000")' "$1" "$2"
    }
fi
field() { sed -n "s/.*\"$1\":\\([-0-9.e+]*\\).*/\\1/p" <<<"$2"; }
now() { date +%s.%N; }

t0=$(now)
sf-run pipelines/live.yaml model_dir="$model" device="$device" port="$port" checkpoint= idle_exit=0 \
    encoder_socket="$W/enc" cache_dir="$W/cache" "$@" >"$W/run.log" 2>&1 3>&- &
pid=$!
# the run's whole log is kept where SF_LIVE_LOG says (e2e.sh: for check.sh's logs.tar.gz)
keep() { [ -z "${SF_LIVE_LOG:-}" ] || cp "$W/run.log" "$SF_LIVE_LOG" 2>/dev/null; }
fail() {
    echo "live: FAILED ($1)"
    tail -n 12 "$W/run.log" >&2
    kill -INT "$pid" 2>/dev/null
    sleep 2
    kill -KILL "$pid" 2>/dev/null
    keep
    rm -rf "$W"
    exit 1
}
# stopped from outside (e2e.sh's timeout sends TERM): said, the run stopped and its log kept, as on a failure
trap 'fail "stopped by a signal (a timeout around live.sh)"' TERM HUP
started=
for _ in $(seq $((wait_s * 10))); do
    kill -0 "$pid" 2>/dev/null || fail "the run exited before any frame"
    f=$(field frame "$(status)")
    if [ -n "$f" ] && [ "$f" != 0 ]; then started=$(now); break; fi
    sleep 0.1
done
[ -n "$started" ] || fail "no frame within $wait_s s"
sleep "$play"
s1=$(status)
code=$(post "http://127.0.0.1:$port/prompt" '{"prompt": "A lighthouse on a cliff at night, waves crashing, cinematic"}')
[ "$code" = 200 ] || fail "POST /prompt answered $code"
switched=
for _ in $(seq $((wait_s * 10))); do
    s2=$(status)
    [ "$(field switches "$s2")" = 1 ] && { switched=1; break; }
    kill -0 "$pid" 2>/dev/null || fail "the run exited before the switch"
    sleep 0.1
done
[ -n "$switched" ] || fail "no switch reported within $wait_s s"
sleep "$play"
s3=$(status)
kill -INT "$pid"
stop=FAILED
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || { stop=ok; break; }; sleep 0.1; done
[ "$stop" = ok ] || kill -KILL "$pid" 2>/dev/null # not stopped in 10 s: never wait on it
wait "$pid" 2>/dev/null
awk -v t0="$t0" -v t1="$started" -v f1="$(field fps "$s1")" -v f3="$(field fps "$s3")" -v v="$(field video_fps "$s3")" \
    -v g="$(field gen_fps "$s3")" -v l="$(field latency_ms "$s3")" -v sw="$(field switch_latency_ms "$s2")" -v stop="$stop" 'BEGIN {
    printf "live: fps %.1f before / %.1f after the switch (video %.0f, generated at %.1f), frame latency %.0f ms, prompt switch %.0f ms (post -> first frame of the new prompt on the page), start %.1f s, stop %s\n",
        f1, f3, v, g, l, sw, t1 - t0, stop }'
keep
rm -rf "$W"
[ "$stop" = ok ]
