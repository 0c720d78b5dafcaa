#!/usr/bin/env bats
# Configs through the programs: reference YAML merge reaches sf-denoise; bad YAML and bad
# config.json are one-line errors with exit 1 — never a crash.
bats_require_minimum_version 1.5.0
load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'

setup() {
    T="$BATS_TEST_TMPDIR"
    EMB="$SF_GOLDEN/expect/dit_pipeline_base.safetensors:context.prompt_embeds"
    ARGS=(--prompt-embeds "$EMB" --num_frames 3 --height 64 --width 96 --progress none --save-latents "$T/lat.safetensors")
}

one_line_error() { # $1 expected substring; uses $status/$stderr from run --separate-stderr
    [ "${#stderr_lines[@]}" -eq 1 ] || { printf '%s\n' "$stderr"; return 1; }
    [[ "$stderr" == *error:* && "$stderr" == *"$1"* ]] || { printf '%s\n' "$stderr"; return 1; }
}

@test "bad YAML configs: one line, exit 1, no output" {
    printf 'denoising_step_list: [1000, 750\n' >"$T/unclosed.yaml"
    printf 'num_frame_per_block: three\n' >"$T/word.yaml"
    printf 'a: &x 1\nb: *x\n' >"$T/alias.yaml"
    printf -- '- just\n- a list\n' >"$T/list.yaml"
    head -c 3000 /dev/urandom >"$T/noise.yaml"
    for f in unclosed word alias list noise; do
        run -1 --separate-stderr sf-denoise --model-dir "$SF_GOLDEN/model" --config_path "$T/$f.yaml" "${ARGS[@]}"
        one_line_error "$f.yaml"
        [ ! -e "$T/lat.safetensors" ]
    done
    run -1 --separate-stderr sf-denoise --model-dir "$SF_GOLDEN/model" --config_path "$T/missing.yaml" "${ARGS[@]}"
    one_line_error "missing.yaml"
    run -1 --separate-stderr sf-run "$T/unclosed.yaml"
    one_line_error "unclosed.yaml"
}

@test "bad config.json: one line, exit 1" {
    mkdir -p "$T/m"
    cp "$SF_GOLDEN/model/diffusion_pytorch_model.safetensors" "$T/m/"
    for bad in '{"dim": 256' '{"dim": 250, "num_heads": 3}' '[1, 2]' '{"patch_size": [1, 2]}' '{"dim": -5}'; do
        printf '%s' "$bad" >"$T/m/config.json"
        run -1 --separate-stderr sf-denoise --model-dir "$T/m" "${ARGS[@]}"
        one_line_error "config.json"
    done
}

@test "the reference default+specific merge reaches the pipeline: sid and dmd configs give identical latents" {
    run -0 sf-denoise --model-dir "$SF_GOLDEN/model" --config_path configs/self_forcing_dmd.yaml "${ARGS[@]}" --seed 3
    mv "$T/lat.safetensors" "$T/dmd.safetensors"
    run -0 sf-denoise --model-dir "$SF_GOLDEN/model" --config_path configs/self_forcing_sid.yaml "${ARGS[@]}" --seed 3
    cmp "$T/dmd.safetensors" "$T/lat.safetensors"
    # a config that changes the schedule (no warping) changes the result
    printf 'denoising_step_list: [1000, 750, 500, 250]\nwarp_denoising_step: false\nnum_frame_per_block: 3\nmodel_kwargs:\n  timestep_shift: 5.0\n' >"$T/nowarp.yaml"
    run -0 sf-denoise --model-dir "$SF_GOLDEN/model" --config_path "$T/nowarp.yaml" "${ARGS[@]}" --seed 3
    run ! cmp -s "$T/dmd.safetensors" "$T/lat.safetensors"
}

@test "shared flags: sf-encode, sf-denoise and sf-decode read --device/--gpu-id/--progress one way" {
    for p in sf-encode sf-denoise sf-decode; do
        run -2 --separate-stderr "$p" --progress verbose
        one_line_error "--progress: expected auto, bar, lines or none, got 'verbose'"
        run -2 --separate-stderr "$p" --device cuda:0 --gpu-id 1
        one_line_error "--device cuda:0 and --gpu-id 1 name different devices: give one of them"
        run -2 --separate-stderr "$p" --gpu_id cuda:1
        one_line_error "--gpu-id: expected a GPU number"
    done
    # and document them with the same words
    for f in progress gpu-id model-dir; do
        a=$(sf-encode --help | grep -- "^ *--$f"); b=$(sf-denoise --help | grep -- "^ *--$f"); c=$(sf-decode --help | grep -- "^ *--$f")
        [ -n "$a" ] && [ "$a" = "$b" ] && [ "$b" = "$c" ] || { printf '%s\n%s\n%s\n' "$a" "$b" "$c"; false; }
    done
}
