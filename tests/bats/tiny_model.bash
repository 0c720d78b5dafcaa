# tiny_model.bash — the model the pipeline suites run on, made once per file: sf-mkmodel's tiny
# model (seed 5) with a generator checkpoint at $M/ckpt.pt. `load tiny_model`, then call
# tiny_model_make in setup_file: it exports M, or fails the file's setup with sf-mkmodel's message.
tiny_model_make() {
    export M="$BATS_FILE_TMPDIR/model"
    local out
    out=$(sf-mkmodel tiny "$M" --seed 5 --checkpoint "$M/ckpt.pt" 2>&1) || {
        echo "sf-mkmodel tiny failed: $out" >&2
        return 1
    }
}
