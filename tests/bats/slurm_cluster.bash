# slurm_cluster.bash — a one-node Slurm cluster for the tests (Debian's munge, slurmctld, slurmd),
# all of it under one folder: config, munge key and socket, state, spool, logs. Loaded by
# tests/bats/sf-batch-slurm.bats; slurm_cluster_start DIR exports SLURM_CONF, slurm_cluster_stop DIR
# ends the daemons it started (by their saved PIDs), so teardown_file can always call it.
# No cgroups needed: proctrack/linuxproc, task/none, no accounting (sacct is disabled; sf-batch
# --status then reads scontrol and its tasks' own records).

# slurm_cluster_start DIR → 0 with SLURM_CONF exported and the node idle, or 1 with the reason in
# DIR/why (a missing program, a daemon that would not start)
slurm_cluster_start() {
    local d=$1 h p i
    mkdir -p "$d/state" "$d/spool" "$d/log"
    for p in munged slurmctld slurmd sbatch squeue scancel scontrol; do
        command -v "$p" >/dev/null || { echo "$p not installed (apt-get install munge slurmctld slurmd slurm-client)" >"$d/why"; return 1; }
    done
    chmod 700 "$d"
    head -c 1024 /dev/urandom >"$d/munge.key" && chmod 600 "$d/munge.key"
    # --force: munged refuses to run as root or with a key under /tmp otherwise
    munged --force --key-file="$d/munge.key" --socket="$d/munge.sock" --pid-file="$d/munged.pid" \
        --log-file="$d/log/munged.log" --seed-file="$d/munge.seed" 2>"$d/log/munged.err" ||
        { echo "munged would not start: $(tail -n1 "$d/log/munged.err")" >"$d/why"; return 1; }
    h=$(hostname -s)
    p=$((20000 + RANDOM % 6000)) # below the ephemeral range (32768..), apart from the tests' --tcp-port (26000..31999)
    cat >"$d/slurm.conf" <<EOF
ClusterName=sfpipe-test
SlurmctldHost=$h(127.0.0.1)
SlurmctldPort=$p
SlurmdPort=$((p + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$d/munge.sock
CredType=cred/munge
StateSaveLocation=$d/state
SlurmdSpoolDir=$d/spool
SlurmctldPidFile=$d/slurmctld.pid
SlurmdPidFile=$d/slurmd.pid
SlurmctldLogFile=$d/log/slurmctld.log
SlurmdLogFile=$d/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=1
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
MessageTimeout=10
KillWait=2
MinJobAge=600
NodeName=$h NodeAddr=127.0.0.1 CPUs=4 RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=$h Default=YES MaxTime=INFINITE State=UP
EOF
    export SLURM_CONF=$d/slurm.conf
    slurmctld -D -i -f "$SLURM_CONF" >"$d/log/slurmctld.out" 2>&1 3>&- &
    echo $! >"$d/daemons"
    slurmd -D -f "$SLURM_CONF" >"$d/log/slurmd.out" 2>&1 3>&- &
    echo $! >>"$d/daemons"
    for ((i = 0; i < 150; i++)); do
        [ "$(sinfo -h -o %t 2>/dev/null)" = idle ] && return 0
        sleep 0.2
    done
    echo "the node did not come up in 30 s: $(tail -n1 "$d/log/slurmctld.log" "$d/log/slurmd.log" 2>/dev/null | tr '\n' ' ')" >"$d/why"
    return 1
}

slurm_cluster_stop() {
    local d=$1 p i
    if [ -f "$d/daemons" ]; then   # the jobs first, while slurmd can still end their processes
        scancel --full -u "$(id -un)" 2>/dev/null
        for ((i = 0; i < 50; i++)); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.2; done
    fi
    [ -f "$d/daemons" ] && while read -r p; do kill "$p" 2>/dev/null; done <"$d/daemons"
    for ((i = 0; i < 50; i++)); do
        local left=0
        [ -f "$d/daemons" ] && while read -r p; do kill -0 "$p" 2>/dev/null && left=1; done <"$d/daemons"
        [ "$left" = 0 ] && break
        sleep 0.1
    done
    [ -f "$d/daemons" ] && while read -r p; do kill -9 "$p" 2>/dev/null; done <"$d/daemons"
    [ -f "$d/munged.pid" ] && kill "$(cat "$d/munged.pid")" 2>/dev/null
    rm -f "$d/daemons"
    return 0
}
