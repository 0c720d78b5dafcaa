#!/usr/bin/env bash
# tests/bench/batch.sh — `make bench` part: sf-batch throughput with 1, 2, 3 local workers on the
# tiny model (12 prompts, 3 latent frames at 32x48, one thread per worker): videos per second,
# printed as a table and drawn as a bar chart, $BUILD/bench/batch_throughput.svg. Run by
# tests/bench/run.sh; nothing passes or fails on time.
set -uo pipefail
BUILD=${BUILD:-build}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sf-mkmodel tiny "$tmp/model" --seed 5 >/dev/null 2>&1 || { echo "batch bench: sf-mkmodel failed"; exit 1; }
for i in $(seq 0 11); do echo "bench prompt $i: a kite over a beach"; done >"$tmp/prompts.txt"
# fill the embedding cache once, so every run times the same work (denoise + decode + its encode hit)
sf-encode --model-dir "$tmp/model" --prompts "$tmp/prompts.txt" --cache-only --cache-dir "$tmp/cache" 2>/dev/null
svg=$BUILD/bench/batch_throughput.svg
mkdir -p "$(dirname "$svg")"
rates=()
printf '%-8s %10s %12s %8s\n' workers seconds videos/s speedup
for w in 1 2 3; do
    t0=$(date +%s.%N)
    sf-batch --data_path "$tmp/prompts.txt" --output_folder "$tmp/out$w" --model-dir "$tmp/model" --num_output_frames 3 \
        --height 32 --width 48 --cache-dir "$tmp/cache" --workers "$w" --threads 1 2>/dev/null || { echo "batch bench: sf-batch --workers $w failed"; exit 1; }
    t1=$(date +%s.%N)
    rate=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", 12 / (b - a) }')
    rates+=("$rate")
    printf '%-8s %10.2f %12s %7.2fx\n' "$w" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" "$rate" \
        "$(awk -v r="$rate" -v r1="${rates[0]}" 'BEGIN { print r / r1 }')"
done
max=$(printf '%s\n' "${rates[@]}" | sort -g | tail -n1)
{
    echo '<svg xmlns="http://www.w3.org/2000/svg" width="360" height="240" font-family="sans-serif" font-size="12">'
    echo "<text x=\"180\" y=\"18\" text-anchor=\"middle\">sf-batch throughput, tiny model, $(nproc) cores</text>"
    echo '<line x1="50" y1="200" x2="340" y2="200" stroke="black"/><line x1="50" y1="30" x2="50" y2="200" stroke="black"/>'
    echo '<text x="14" y="115" transform="rotate(-90 14 115)" text-anchor="middle">videos / s</text>'
    for i in 0 1 2; do
        awk -v r="${rates[i]}" -v m="$max" -v i="$i" 'BEGIN {
            h = 160 * r / m; x = 70 + i * 90
            printf "<rect x=\"%d\" y=\"%.1f\" width=\"60\" height=\"%.1f\" fill=\"#4a7ab5\"/>\n", x, 200 - h, h
            printf "<text x=\"%d\" y=\"%.1f\" text-anchor=\"middle\">%.2f</text>\n", x + 30, 195 - h, r
            printf "<text x=\"%d\" y=\"216\" text-anchor=\"middle\">%d worker%s</text>\n", x + 30, i + 1, i ? "s" : "" }'
    done
    echo '</svg>'
} >"$svg"
echo "figure: $svg"
