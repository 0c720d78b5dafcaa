#!/usr/bin/env bats
# sf-batch --slurm and sf-run's `launcher: srun` on a real one-node Slurm cluster that this file
# starts (slurm_cluster.bash: munge, slurmctld, slurmd, all under its temp folder) and stops in
# teardown_file, failures included. Without the Slurm packages, or where the daemons cannot
# start, every test SKIPs with the reason.
bats_require_minimum_version 1.5.0
load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
load tiny_model
load slurm_cluster

setup_file() {
    export C="$BATS_FILE_TMPDIR/cluster"
    tiny_model_make
    slurm_cluster_start "$C" || true
}

teardown_file() {
    slurm_cluster_stop "$C"
}

setup() {
    [[ "$BATS_TEST_DESCRIPTION" == "no cluster needed:"* ]] || [ ! -f "$C/why" ] || skip "no Slurm cluster: $(cat "$C/why")"
    T="$BATS_TEST_TMPDIR"
    for i in $(seq 0 11); do echo "slurm prompt $i: a lighthouse at dusk"; done >"$T/prompts.txt"
    B=(--data_path "$T/prompts.txt" --output_folder "$T/out" --model-dir "$M" --checkpoint_path "$M/ckpt.pt"
        --use_ema --save_with_index --num_output_frames 3 --height 32 --width 48 --cache-dir "$T/cache" --threads 1)
}

videos() { find "$T/out" -maxdepth 1 -name '*.mp4' | wc -l; }
# wait up to $2 s for command $1 to succeed (a bounded poll, patient under a slow machine)
wait_for() {
    local i
    for ((i = 0; i < $2 * 10; i++)); do eval "$1" && return 0; sleep 0.1; done
    echo "# timed out waiting for: $1" >&2
    return 1
}

@test "a 12-prompt batch as a job array: 12 videos; a rerun with everything done submits nothing" {
    run -0 sf-batch "${B[@]}" --slurm --workers 3 --wait
    assert_output --partial "submitted array job"
    assert_output --partial "summary: 12 videos in $T/out: 12 done, 0 skipped (already there), 0 failed, 0 not done"
    [ "$(videos)" = 12 ]
    [ "$(wc -l <"$T/out/.sf-batch/slurm-jobs")" = 1 ]
    for t in 0 1 2; do grep -q 'finished on .*: 4 done, 0 skipped, 0 failed' "$T/out/.sf-batch/tasks/"*_$t; done
    # the array's tasks sliced the videos: each one has its own log, no temp file is left
    [ "$(ls "$T/out/.sf-batch/logs/"slurm-*.out | wc -l)" = 3 ]
    [ -z "$(ls -A "$T/out/.sf-batch/tmp")" ]
    run -0 sf-batch "${B[@]}" --slurm --workers 3 --wait
    assert_output --partial "nothing to do: all 12 videos are in $T/out"
    [ "$(wc -l <"$T/out/.sf-batch/slurm-jobs")" = 1 ]   # no job submitted
    # sbatch's refusal, several lines of its own, is one line here
    local b2=() a
    for a in "${B[@]}"; do [ "$a" = "$T/out" ] && b2+=("$T/out2") || b2+=("$a"); done
    run -1 --separate-stderr sf-batch "${b2[@]}" --slurm --partition nosuch
    assert_equal "${#stderr_lines[@]}" 1
    assert_regex "$stderr" '^sf-batch: error: sbatch failed: .*[Ii]nvalid partition'
}

@test "scancel of one running task, then a rerun redoes only the missing videos" {
    run -0 sf-batch "${B[@]}" --slurm --workers 3
    jid=$(awk 'END { print $1 }' "$T/out/.sf-batch/slurm-jobs")
    # task 1 has finished one video of its four: cancel it mid-way
    wait_for "grep -q ': [1-3] done' '$T/out/.sf-batch/tasks/${jid}_1' 2>/dev/null" 120
    scancel "${jid}_1"
    wait_for "[ -z \"\$(squeue -h -j $jid)\" ]" 120
    n=$(videos)
    [ "$n" -lt 12 ]
    run -0 sf-batch --status "$T/out"
    assert_line "$T/out: 12 videos: $n done, 0 failed, $((12 - n)) to do"
    assert_output --regexp "task 1: CANCELLED"
    assert_output --regexp "task 0: COMPLETED"
    # the finished videos are kept as they are (same inode and time); only the missing ones run
    stat -c '%n %i %Y' "$T/out/"*.mp4 >"$T/before"
    run -0 sf-batch "${B[@]}" --slurm --workers 3 --wait
    assert_output --partial "summary: 12 videos in $T/out: $((12 - n)) done, $n skipped (already there), 0 failed, 0 not done"
    [ "$(videos)" = 12 ]
    while read -r f rest; do [ "$(stat -c '%n %i %Y' "$f")" = "$f $rest" ]; done <"$T/before"
    [ "$(wc -l <"$T/out/.sf-batch/slurm-jobs")" = 2 ]
    # a rerun while a job of this folder is still queued or running is refused (the job is held: a
    # one-video job finishing before the second sf-batch looks would make it a race)
    echo "one more prompt" >>"$T/prompts.txt"
    run -0 sf-batch "${B[@]}" --slurm --workers 1 --sbatch-arg --hold
    run -1 sf-batch "${B[@]}" --slurm --workers 1
    assert_output --partial "still has tasks queued or running"
    scancel $(squeue -h -o %A | sort -u)
    wait_for "[ -z \"\$(squeue -h)\" ]" 120
}

@test "sf-run launcher: srun inside an allocation gives the one-host video; node: K picks a node" {
    local vars=(model_dir="$M" checkpoint="$M/ckpt.pt" num_frames=3 height=32 width=48 cache_dir="$T/cache")
    port=$((26000 + RANDOM % 6000)) # apart from the cluster's daemons (slurm_cluster.bash)
    run -0 sbatch --wait -N1 -o "$T/job.out" --wrap \
        "sf-run '$SF_ROOT/pipelines/t2v_slurm.yaml' $(printf "'%s' " "${vars[@]}") output='$T/srun.y4m' --tcp-port $port"
    cat "$T/job.out"
    grep -q "pipeline 't2v_slurm' finished" "$T/job.out"
    sf-run "$SF_ROOT/pipelines/t2v.yaml" "${vars[@]}" output="$T/local.y4m" 2>/dev/null
    cmp "$T/srun.y4m" "$T/local.y4m"
    # the plan: one srun step per stage on the allocation's nodes, tcp between them
    run -0 env SLURM_JOB_NODELIST="$(hostname -s)" sf-run --dry-run --tcp-port 41000 "$SF_ROOT/pipelines/t2v_slurm.yaml"
    assert_line --index 0 --regexp "^srun --nodes=1 --ntasks=1 --nodelist=$(hostname -s) --overlap .* -- .*/sf-encode .* --out '>tcp://$(hostname -s):41000'$"
    assert_line --index 2 --regexp "^srun .* -- .*/sf-decode .* --in @tcp://route=$(hostname -s):41001$"
    # node: K indexes the allocation's node list (two nodes here, expanded by scontrol); t2v_slurm.yaml
    # extends t2v.yaml, so the stage list to edit is t2v.yaml's, with t2v_slurm's launcher and transport
    slurm_with_node() {
        { echo "launcher: srun"; sed -e "s/^    program: sf-decode/    program: sf-decode\n    node: $1/" \
            -e 's/^transport: .*/transport: tcp/' "$SF_ROOT/pipelines/t2v.yaml"; } >"$T/k.yaml"
    }
    slurm_with_node 0
    run -0 env SLURM_JOB_NODELIST='gpu[7-8]' sf-run --dry-run --tcp-port 41000 "$T/k.yaml"
    assert_line --index 0 --partial "--nodelist=gpu7 "
    assert_line --index 1 --partial "--nodelist=gpu8 "
    assert_line --index 1 --partial "--out '>tcp://gpu7:41001'"
    assert_line --index 2 --partial "--nodelist=gpu7 "
    slurm_with_node 2
    run -2 --separate-stderr env SLURM_JOB_NODELIST='gpu[7-8]' sf-run --dry-run "$T/k.yaml"
    assert_equal "$stderr" "sf-run: error: stage 2: node '2' is not an index into the allocation's 2 node(s)"
}

@test "no cluster needed: launcher srun outside an allocation, or an unknown launcher, is one line, exit 2" {
    run -2 --separate-stderr env -u SLURM_JOB_NODELIST -u SLURM_NODELIST sf-run --dry-run "$SF_ROOT/pipelines/t2v_slurm.yaml"
    assert_equal "$stderr" "sf-run: error: launcher: srun needs a Slurm allocation (SLURM_JOB_NODELIST is not set): run sf-run inside salloc or an sbatch job"
    sed -e 's/^launcher: srun/launcher: pbs/' -e "s|^extends: |extends: $SF_ROOT/pipelines/|" "$SF_ROOT/pipelines/t2v_slurm.yaml" >"$T/x.yaml"
    run -1 --separate-stderr sf-run --dry-run "$T/x.yaml"
    assert_equal "$stderr" "sf-run: error: $T/x.yaml: unknown launcher 'pbs' (ssh or srun)"
    run -2 --separate-stderr env SLURM_JOB_NODELIST='node[1-2]; rm -rf /' sf-run --dry-run "$SF_ROOT/pipelines/t2v_slurm.yaml"
    assert_equal "$stderr" "sf-run: error: SLURM_JOB_NODELIST 'node[1-2]; rm -rf /' is not a host list"
}
