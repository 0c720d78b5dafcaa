/* launch_srun.c — sf-run's `launcher: srun`: a spec's stages placed on the nodes of the Slurm
 * allocation sf-run runs in (salloc, sbatch), each started as a one-task job step on its node,
 * the data between them over tcp (the receiver binds, the sender connects to the receiver's node),
 * as the ssh launcher does for named hosts. The node list is $SLURM_JOB_NODELIST expanded by
 * `scontrol show hostnames`. Tested by tests/bats/sf-batch-slurm.bats (a real one-node cluster). */
#define _POSIX_C_SOURCE 200809L
#include "launch_srun.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* a hostlist expression ("gpu[01-04],cpu7") or host name: nothing a shell or srun would read
 * as more than one word or an option */
static int hostlist_ok(const char *s) {
    if (!*s || *s == '-') return 0;
    for (; *s; s++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.,[]", *s)) return 0;
    return 1;
}

sf_status sf_run_srun_nodes(sf_run_plan *plan, sf_err *err) {
    const char *nl = getenv("SLURM_JOB_NODELIST");
    if (!nl || !*nl) nl = getenv("SLURM_NODELIST");
    if (!nl || !*nl)
        return sf_fail(err, SF_E_ARG, "launcher: srun needs a Slurm allocation (SLURM_JOB_NODELIST is not set): run "
                       "sf-run inside salloc or an sbatch job");
    if (!hostlist_ok(nl)) return sf_fail(err, SF_E_ARG, "SLURM_JOB_NODELIST '%s' is not a host list", nl);
    int fd[2];
    if (pipe(fd) != 0) return sf_fail(err, SF_E_IO, "pipe() failed: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]);
        close(fd[1]);
        return sf_fail(err, SF_E_IO, "fork() failed: %s", strerror(errno));
    }
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        execlp("scontrol", "scontrol", "show", "hostnames", nl, (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    FILE *f = fdopen(fd[0], "r");
    char line[256];
    sf_status s = SF_OK;
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0]) continue;
        char **nv = realloc(plan->nodes, (size_t)(plan->n_nodes + 1) * sizeof *nv);
        if (!nv || !(nv[plan->n_nodes] = strdup(line))) {
            if (nv) plan->nodes = nv;
            s = sf_fail(err, SF_E_NOMEM, "out of memory");
            break;
        }
        plan->nodes = nv;
        plan->n_nodes++;
    }
    if (f) fclose(f);
    else close(fd[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    if (!s && (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || plan->n_nodes == 0))
        s = sf_fail(err, SF_E_IO, "'scontrol show hostnames %s' failed%s", nl,
                    WIFEXITED(st) && WEXITSTATUS(st) == 127 ? " (scontrol not found: install slurm-client)" : "");
    return s;
}

sf_status sf_run_srun_place(const sf_run_plan *plan, int i, const char *node, char *host, size_t n, sf_err *err) {
    if (host[0]) return hostlist_ok(host) ? SF_OK : sf_fail(err, SF_E_FORMAT, "stage %d: host '%s' is not a node name", i, host);
    long k = i % plan->n_nodes;
    if (node) {
        char *e;
        errno = 0;
        k = strtol(node, &e, 10);
        if (errno || *e || e == node || k < 0 || k >= plan->n_nodes)
            return sf_fail(err, SF_E_ARG, "stage %d: node '%s' is not an index into the allocation's %d node(s)", i,
                           node, plan->n_nodes);
    }
    snprintf(host, n, "%s", plan->nodes[k]);
    return SF_OK;
}

sf_status sf_run_srun_wrap(sf_run_stage *st, int (*push)(sf_run_stage *, const char *), sf_err *err) {
    /* srun runs the stage where the nodes see the same files (a cluster's shared home): a program
     * next to this sf-run is named by its full path */
    char exe[4096], nodelist[300], name[96];
    const char *prog = sf_find_program(st->argv[0], exe, sizeof exe);
    char **old = st->argv;
    int oldc = st->argc;
    st->argv = NULL;
    st->argc = 0;
    snprintf(nodelist, sizeof nodelist, "--nodelist=%s", st->host);
    snprintf(name, sizeof name, "--job-name=%s", st->name);
    /* --overlap: the stages of one pipeline share the allocation's CPUs (they run at once);
     * --kill-on-bad-exit: a failing stage ends its step, and sf-run's fail-fast does the rest */
    const char *pre[] = {"srun", "--nodes=1", "--ntasks=1", nodelist, "--overlap", "--kill-on-bad-exit=1", "--quiet",
                         name, "--", prog ? prog : old[0]};
    int ok = 1;
    for (size_t k = 0; ok && k < sizeof pre / sizeof *pre; k++) ok = push(st, pre[k]);
    for (int k = 1; ok && k < oldc; k++) ok = push(st, old[k]);
    for (int k = 0; k < oldc; k++) free(old[k]);
    free(old);
    return ok ? SF_OK : sf_fail(err, SF_E_NOMEM, "out of memory");
}
