/* runspec.h — pipeline specs for sf-run: YAML → the command line of every stage, with the
 * transport URLs that connect neighbours. Tested by tests/unit/test_runspec.c. */
#ifndef SF_RUNSPEC_H
#define SF_RUNSPEC_H

#include "config.h"

#define SF_RUN_MAX_STAGES 16

typedef enum sf_run_transport { SF_RUN_PIPE = 0, SF_RUN_IPC, SF_RUN_TCP, SF_RUN_SHM } sf_run_transport;

typedef struct sf_run_stage {
    char name[64];
    char program[256];   /* resolved program (sf-encode, ...) */
    char host[256];      /* "" = local; else started with ssh */
    char device[32];     /* "" = program default */
    char **argv;         /* NULL-terminated, owned (program first); for remote stages the ssh argv */
    int argc;
    char in_url[512];    /* "" for the first stage */
    char out_url[512];   /* "" for the last stage */
} sf_run_stage;

typedef enum sf_run_launcher { SF_RUN_SSH = 0, SF_RUN_SRUN } sf_run_launcher;

typedef struct sf_run_plan {
    char name[128];
    sf_run_transport transport;
    int n;
    sf_run_stage stages[SF_RUN_MAX_STAGES];
    sf_run_launcher launcher; /* how stages with a host start: ssh (default) or srun (launch_srun.c) */
    char **nodes;             /* launcher srun: the allocation's host names, owned */
    int n_nodes;
} sf_run_plan;

/* Build a plan from a spec file and "key=value" / "stage.key=value" overrides.
 * run_id makes ipc/shm names unique (e.g. the pid); tcp_port0 is the first tcp port. */
sf_status sf_run_plan_load(const char *spec_path, const char *const *overrides, int n_overrides, const char *run_id,
                           int tcp_port0, sf_run_plan *plan, sf_err *err);
void sf_run_plan_free(sf_run_plan *plan);
/* Shell-quoted command line of a stage into buf (for --dry-run and logs). */
const char *sf_run_stage_cmdline(const sf_run_stage *st, char *buf, size_t n);

#endif
