/* runspec.h — pipeline specs for sf-run: YAML → the command line of every stage, with the
 * transport URLs that connect neighbours. Tested by tests/unit/test_runspec.c. */
#ifndef SF_RUNSPEC_H
#define SF_RUNSPEC_H

#include "config.h"

#define SF_RUN_MAX_STAGES 16

typedef enum sf_run_transport { SF_RUN_PIPE = 0, SF_RUN_IPC, SF_RUN_TCP, SF_RUN_SHM } sf_run_transport;

typedef struct sf_run_stage {
    char name[64];
    char program[1024];  /* resolved program: sf-encode, ..., or a path (relative ones made the spec folder's) */
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
    int curve;           /* tcp with CURVE: every stage gets the run's key (tools/run/keys.c) */
    int n;
    sf_run_stage stages[SF_RUN_MAX_STAGES];
    sf_run_launcher launcher; /* how stages with a host start: ssh (default) or srun (launch_srun.c) */
    char **nodes;             /* launcher srun: the allocation's host names, owned */
    int n_nodes;
} sf_run_plan;

/* Build a plan from a spec file and "key=value" / "stage.key=value" overrides.
 * run_id makes ipc/shm names unique (e.g. the pid). tcp: link i (stage i → i+1) uses port
 * tcp_port0 + i; tcp_port0 = 0 picks free ports (sf_run_free_ports) for links with both ends
 * on this machine and 47600 + i for links between hosts. */
sf_status sf_run_plan_load(const char *spec_path, const char *const *overrides, int n_overrides, const char *run_id,
                           int tcp_port0, sf_run_plan *plan, sf_err *err);
void sf_run_plan_free(sf_run_plan *plan);
/* ports.c: n distinct tcp ports free on 127.0.0.1 now, drawn below the kernel's ephemeral
 * range (sf_run_port_range: [lo, hi)), where outgoing connections never take them. */
sf_status sf_run_free_ports(int n, int *ports, sf_err *err);
void sf_run_port_range(int *lo, int *hi);
/* validate.c: spec values are data. SF_E_ARG with one line naming `what`. text: newlines and
 * tabs allowed (a prompt); other control characters never. */
sf_status sf_run_check_value(const char *what, const char *v, int text, sf_err *err);
/* A stage argument value: sf_run_check_value(text) and not something a stage reads as a flag. */
sf_status sf_run_check_arg(const char *what, const char *v, sf_err *err);
/* "[user@]host" with host a DNS name, an IPv4 address or [IPv6]; never an ssh option. */
sf_status sf_run_check_host(const char *what, const char *host, sf_err *err);
/* "key=value" overrides: key of [A-Za-z0-9_.-], no control character anywhere. */
sf_status sf_run_check_override(const char *ov, sf_err *err);

/* keys.c: CURVE keys for a run (sf-run generates one key pair per run). */
typedef struct sf_run_keys {
    int on;
    char secret[41]; /* Z85 */
} sf_run_keys;
/* A fresh key pair when plan->curve; else k->on = 0. from_env (--curve-key-env): $SF_WIRE_CURVE_KEY
 * instead of a fresh key (a tcp run only; the variable must hold a Z85 secret). */
sf_status sf_run_keys_new(const sf_run_plan *plan, int from_env, sf_run_keys *k, sf_err *err);
/* In a stage's child process, before exec: hand it the key. Never on a command line (ps
 * shows those): local stages get $SF_WIRE_CURVE_KEY, remote ones (ssh) read it from stdin,
 * one line, before exec'ing the stage (sf_run_remote_stdin, runspec.c). Returns 0, or -1 with errno. */
int sf_run_keys_child(const sf_run_keys *k, const sf_run_stage *st);
/* The stdin of a stage started over ssh, made in sf-run before the fork: a pipe (both ends
 * close-on-exec) holding the key line when k->on. sf-run keeps fds[1] open while the stage runs
 * and closes it when the stage ends or the run stops; the remote shell reads the key, then
 * watches its stdin and stops the stage (SIGTERM) at EOF — sf-run closed it, or died, or the ssh
 * connection dropped — since no signal crosses ssh without a tty. Returns 0, or -1 with errno. */
int sf_run_remote_stdin(const sf_run_keys *k, int fds[2]);
void sf_run_keys_wipe(sf_run_keys *k);

/* Shell-quoted command line of a stage into buf (for --dry-run and logs). */
const char *sf_run_stage_cmdline(const sf_run_stage *st, char *buf, size_t n);

#endif
