#!/usr/bin/env bats
# sf-vae-encode: images, PNG folders and pixel videos → latents for sf-denoise --initial-latents; the
# reference's i2v data folder listed for sf-batch --i2v; bad input. The encoder's numbers are
# test_vae_encode's (against the reference), the image loading's test_image's (against PIL); here the
# program around them: sources, causality end to end, resizing, refusals, nothing half-written.
# Frames come from the golden latents decoded by sf-decode (tests/golden/expect/vae.safetensors).

bats_require_minimum_version 1.5.0
load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'

setup_file() {
    G="${SF_GOLDEN:-$BATS_TEST_DIRNAME/../golden}"
    F="$BATS_FILE_TMPDIR"
    # 33 frames of 96x64: as PNGs and as the f32 video
    sf-decode --latents "$G/expect/vae.safetensors:z" --vae "$G/model/Wan2.1_VAE.pth" -o "$F/frames/" \
        --save-video "$F/video.safetensors" --progress none --log-level error --threads 2
}

setup() {
    G="${SF_GOLDEN:-$BATS_TEST_DIRNAME/../golden}"
    F="$BATS_FILE_TMPDIR"
    VAE="$G/model/Wan2.1_VAE.pth"
    T="$BATS_TEST_TMPDIR"
    E=(sf-vae-encode --vae "$VAE" --threads 2 --log-level error)
    export SF_LOG_LEVEL=warn
}

st_frames() { python3 "$BATS_TEST_DIRNAME/st_frames.py" "$@"; }

@test "one image: one latent frame [1,1,16,h,w], the first latent frame of the video it starts (causal, frame by frame)" {
    run -0 "${E[@]}" --image "$F/frames/frame_00000.png" --height 64 --width 96 --out "$T/img.safetensors"
    run -0 sf-tensor ls "$T/img.safetensors"
    assert_output $'latents\tf32\t[1, 1, 16, 8, 12]'
    # 5 frames from the folder's first five: 2 latent frames; the first is the image's, bit for bit
    mkdir "$T/five"
    for i in 0 1 2 3 4; do cp "$F/frames/frame_0000$i.png" "$T/five/"; done
    run -0 "${E[@]}" --frames "$T/five" --height 64 --width 96 --out "$T/five.safetensors"
    run -0 sf-tensor ls "$T/five.safetensors"
    assert_output $'latents\tf32\t[1, 2, 16, 8, 12]'
    st_frames "$T/five0.safetensors" "latents=$T/five.safetensors:latents@0-1"
    run -0 sf-tensor diff "$T/five0.safetensors" "$T/img.safetensors"
    assert_output --partial "1 compared, 0 mismatched"
    # the second latent frame depends on frames 1-4: another fourth frame changes it
    cp "$F/frames/frame_00010.png" "$T/five/frame_00004.png"
    run -0 "${E[@]}" --frames "$T/five" --height 64 --width 96 --out "$T/five_b.safetensors"
    run -1 sf-tensor diff "$T/five.safetensors" "$T/five_b.safetensors"
    # --image with the same files in the same order is --frames
    run -0 "${E[@]}" --image "$F/frames/frame_0000"{0,1,2,3}.png "$F/frames/frame_00010.png" --height 64 --width 96 \
        --out "$T/five_c.safetensors"
    run -0 sf-tensor diff "$T/five_b.safetensors" "$T/five_c.safetensors"
    assert_output --partial "1 compared, 0 mismatched"
}

@test "--video: a pixel video as is (sf-decode --save-video); 33 frames → 9 latent frames; --name; metadata" {
    run -0 "${E[@]}" --video "$F/video.safetensors" --out "$T/v.safetensors" --name init
    run -0 sf-tensor ls "$T/v.safetensors"
    assert_output $'init\tf32\t[1, 9, 16, 8, 12]'
    # the video's frame 0 alone is the same first latent frame
    st_frames "$T/v1.safetensors" "video=$F/video.safetensors:video@0-1"
    run -0 "${E[@]}" --video "$T/v1.safetensors" --out "$T/one.safetensors"
    st_frames "$T/v0.safetensors" "latents=$T/v.safetensors:init@0-1"
    run -0 sf-tensor diff "$T/v0.safetensors" "$T/one.safetensors"
    assert_output --partial "1 compared, 0 mismatched"
    run -0 python3 -c 'import json,struct,sys; b=open(sys.argv[1],"rb").read(); m=json.loads(b[8:8+struct.unpack("<Q",b[:8])[0]])["__metadata__"]; print(m["sf.size"], m["sf.producer"].split()[0])' "$T/v.safetensors"
    assert_output "96x64 sf-vae-encode"
}

@test "images of another size are resized to --height x --width (default 480x832, the reference's i2v transform); JPEG reads too" {
    run -0 "${E[@]}" --image "$F/frames/frame_00000.png" --height 32 --width 48 --out "$T/small.safetensors"
    run -0 sf-tensor ls "$T/small.safetensors"
    assert_output $'latents\tf32\t[1, 1, 16, 4, 6]'
    command -v ffmpeg >/dev/null || skip "ffmpeg not installed (apt-get install ffmpeg)"
    ffmpeg -v error -i "$F/frames/frame_00000.png" "$T/f.jpg"
    run -0 "${E[@]}" --image "$T/f.jpg" --height 64 --width 96 --out "$T/jpg.safetensors"
    run -0 sf-tensor ls "$T/jpg.safetensors"
    assert_output $'latents\tf32\t[1, 1, 16, 8, 12]'
}

@test "the latents start a video: sf-denoise --initial-latents takes the file as is" {
    run -0 "${E[@]}" --image "$F/frames/frame_00000.png" --height 64 --width 96 --out "$T/img.safetensors"
    printf '%s\n' "denoising_step_list: [1000, 750, 500, 250]" "warp_denoising_step: true" "num_frame_per_block: 3" \
        "independent_first_frame: true" >"$T/i2v.yaml"
    run -0 sf-denoise --model-dir "$G/model" --config_path "$T/i2v.yaml" --no_checkpoint --num_frames 3 --height 64 --width 96 \
        --prompt-embeds "$G/expect/dit_pipeline_base.safetensors:context.prompt_embeds" --initial-latents "$T/img.safetensors" \
        --save-latents "$T/out.safetensors" --threads 2 --progress none
    run -0 sf-tensor ls "$T/out.safetensors"
    assert_output --partial $'latents\tf32\t[1, 4, 16, 8, 12]'
    st_frames "$T/out0.safetensors" "latents=$T/out.safetensors:latents@0-1"
    run -0 sf-tensor diff "$T/out0.safetensors" "$T/img.safetensors"
    assert_output --partial "1 compared, 0 mismatched"
}

@test "bad input: one line, exit 2 (flags) or 1, nothing written" {
    run -2 --separate-stderr "${E[@]}" --out "$T/x.safetensors"
    assert_equal "$stderr" "sf-vae-encode: error: give one of --image FILE..., --frames DIR or --video FILE (see --help)"
    run -2 --separate-stderr "${E[@]}" --image "$F/frames/frame_00000.png" --frames "$F/frames" --out "$T/x.safetensors"
    assert_equal "$stderr" "sf-vae-encode: error: give one of --image FILE..., --frames DIR or --video FILE (see --help)"
    run -2 --separate-stderr "${E[@]}" --image "$F/frames/frame_00000.png"
    assert_equal "$stderr" "sf-vae-encode: error: --out FILE is required (the latents' safetensors file)"
    run -2 --separate-stderr "${E[@]}" --image "$F/frames/frame_0000"{0,1}.png --out "$T/x.safetensors"
    assert_equal "$stderr" "sf-vae-encode: error: --image gives 2 frames; the VAE encodes 1 + 4k (1 image, or 5, 9, 13, ...): drop the last 1 or add 3"
    run -2 --separate-stderr "${E[@]}" --image "$F/frames/frame_00000.png" --height 60 --out "$T/x.safetensors"
    assert_equal "$stderr" "sf-vae-encode: error: --height 60: must be a multiple of 8 (the VAE's latent is 1/8)"
    mkdir "$T/empty"
    run -2 --separate-stderr "${E[@]}" --frames "$T/empty" --out "$T/x.safetensors"
    assert_equal "$stderr" "sf-vae-encode: error: --frames $T/empty: no .png, .jpg or .jpeg files in it"
    echo "not an image" >"$T/text.png"
    run -1 --separate-stderr "${E[@]}" --image "$T/text.png" --out "$T/x.safetensors"
    [[ "$stderr" == "sf-vae-encode: error: "*"$T/text.png"* ]]
    head -c 200 "$F/frames/frame_00000.png" >"$T/cut.png"
    run -1 --separate-stderr "${E[@]}" --image "$T/cut.png" --out "$T/x.safetensors"
    [[ "$stderr" == "sf-vae-encode: error: "*"$T/cut.png"* ]]
    # a video that is not one: the golden latents have 16 channels
    run -2 --separate-stderr "${E[@]}" --video "$G/expect/vae.safetensors:z" --out "$T/x.safetensors"
    assert_equal "$stderr" "sf-vae-encode: error: --video $G/expect/vae.safetensors:z has 16 channels; a pixel video has 3 (RGB)"
    run -2 --separate-stderr "${E[@]}" --video "$F/video.safetensors" --height 32 --out "$T/x.safetensors"
    assert_equal "$stderr" "sf-vae-encode: error: --video $F/video.safetensors has frames of 64x96 (HxW), not --height 32 --width 96 (it is not resized)"
    run -1 --separate-stderr "${E[@]}" --image "$F/frames/frame_00000.png" --out "$T/no/such/x.safetensors"
    [[ "$stderr" == *"mkdir -p $T/no/such"* ]]
    # a VAE file without the encoder (the DiT's weights): refused when it opens, no output
    run -1 --separate-stderr sf-vae-encode --vae "$G/model/diffusion_pytorch_model.safetensors" --image "$F/frames/frame_00000.png" \
        --height 64 --width 96 --out "$T/x.safetensors"
    [[ "$stderr" == "sf-vae-encode: error: "* ]]
    [ "$(printf '%s\n' "$stderr" | wc -l)" -eq 1 ]
    [ ! -e "$T/x.safetensors" ]
    [ -z "$(ls "$T" | grep tmp)" ]
}

@test "--device cuda without a usable GPU: one-line error, exit 1, nothing written (with one: encodes)" {
    mkdir "$T/out"
    if nvidia-smi >/dev/null 2>&1; then
        run -0 "${E[@]}" --video "$F/video.safetensors" --device cuda --out "$T/out/x.safetensors"
        [ -s "$T/out/x.safetensors" ]
        skip "a GPU is present: the refusal is not testable here"
    fi
    run -1 --separate-stderr "${E[@]}" --video "$F/video.safetensors" --device cuda --out "$T/out/x.safetensors"
    [ "${#stderr_lines[@]}" -eq 1 ]
    [[ "$stderr" == "sf-vae-encode: error: "*"--device cpu"* ]]
    [ -z "$(ls "$T/out")" ]
    run -1 --separate-stderr "${E[@]}" --image "$F/frames/frame_00000.png" --gpu-id 0 --out "$T/out/x.safetensors"
    [ "${#stderr_lines[@]}" -eq 1 ]
    [ -z "$(ls "$T/out")" ]
    # a device that is not one: a flag error
    run -2 --separate-stderr "${E[@]}" --image "$F/frames/frame_00000.png" --device tpu --out "$T/out/x.safetensors"
    [ "${#stderr_lines[@]}" -eq 1 ]
    [[ "$stderr" == "sf-vae-encode: error: "*"tpu"* ]]
    [ -z "$(ls "$T/out")" ]
}

@test "--list-dataset: the reference's i2v folder (target_crop_info_<ratio>.json + <ratio>/) as IMAGE<tab>CAPTION lines; its refusals" {
    mkdir -p "$T/ds/26-15"
    cp "$F/frames/frame_00000.png" "$T/ds/26-15/a.png"
    cp "$F/frames/frame_00001.png" "$T/ds/26-15/b.png"
    printf '%s' '[{"file_name": "a.png", "caption": "a red kite", "type": "x"}, {"file_name": "b.png", "caption": "über dem Meer"}]' \
        >"$T/ds/target_crop_info_26-15.json"
    run -0 --separate-stderr sf-vae-encode --list-dataset "$T/ds"
    assert_equal "$output" "$(printf '%s\t%s\n' "$T/ds/26-15/a.png" "a red kite" "$T/ds/26-15/b.png" "über dem Meer")"
    printf '%s' '[{"file_name": "a.png", "caption": "x"}, {"file_name": "c.png", "caption": "y"}]' >"$T/ds/target_crop_info_26-15.json"
    run -1 --separate-stderr sf-vae-encode --list-dataset "$T/ds"
    assert_equal "$stderr" "sf-vae-encode: error: $T/ds/target_crop_info_26-15.json: item 1: image not found: $T/ds/26-15/c.png"
    assert_equal "$output" ""
    printf '%s' '[{"file_name": "a.png", "caption": "two\nlines"}]' >"$T/ds/target_crop_info_26-15.json"
    run -1 --separate-stderr sf-vae-encode --list-dataset "$T/ds"
    assert_equal "$stderr" "sf-vae-encode: error: $T/ds/target_crop_info_26-15.json: item 0: the caption holds a tab or line break, which a prompt list cannot carry"
    printf '%s' '[{"file_name": "a.png"}]' >"$T/ds/target_crop_info_26-15.json"
    run -1 --separate-stderr sf-vae-encode --list-dataset "$T/ds"
    assert_equal "$stderr" "sf-vae-encode: error: $T/ds/target_crop_info_26-15.json: item 0 has no string \"caption\""
    printf '%s' '{"file_name": "a.png"}' >"$T/ds/target_crop_info_26-15.json"
    run -1 --separate-stderr sf-vae-encode --list-dataset "$T/ds"
    assert_equal "$stderr" "sf-vae-encode: error: $T/ds/target_crop_info_26-15.json: not a JSON list of items"
    cp "$T/ds/target_crop_info_26-15.json" "$T/ds/target_crop_info_16-9.json"
    run -2 --separate-stderr sf-vae-encode --list-dataset "$T/ds"
    assert_equal "$stderr" "sf-vae-encode: error: --list-dataset $T/ds: more than one target_crop_info_*.json file"
    rm "$T/ds/"*.json
    run -1 --separate-stderr sf-vae-encode --list-dataset "$T/ds"
    assert_equal "$stderr" "sf-vae-encode: error: --list-dataset $T/ds: no target_crop_info_<ratio>.json metadata file (the reference's i2v data layout)"
    echo '[]' >"$T/ds/target_crop_info_4-3.json"
    run -1 --separate-stderr sf-vae-encode --list-dataset "$T/ds"
    assert_equal "$stderr" "sf-vae-encode: error: --list-dataset $T/ds: no image folder 4-3/ (named after target_crop_info_4-3.json)"
}
