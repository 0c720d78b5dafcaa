/* cli.h — long-flag parsing shared by every program.
 *
 * Every long flag is accepted as --dash-form and as the reference's --underscore_form, with
 * its value as "--flag value" or "--flag=value". SF_ARG_MULTI flags take one or more values
 * (argparse nargs='+': all following words up to the next flag) and may repeat.
 * Tested by tests/unit/test_core.c. */
#ifndef SF_CLI_H
#define SF_CLI_H

#include "sf.h"

typedef enum sf_arg_kind { SF_ARG_FLAG = 0, SF_ARG_VALUE = 1, SF_ARG_MULTI = 2 } sf_arg_kind;

typedef struct sf_opt {
    const char *name;  /* dash form without "--", e.g. "layer-indices" */
    char short_name;   /* 0 or e.g. 'o' */
    sf_arg_kind kind;
    const char *help;  /* "VALUE\tdescription" or "description" */
} sf_opt;

/* One parsed occurrence. */
typedef struct sf_arg {
    int opt;            /* index into the option table, or -1 for a positional */
    const char *value;  /* NULL for flags */
} sf_arg;

typedef struct sf_args {
    sf_arg *v;
    int n;
} sf_args;

/* Parse argv[1..]. Unknown flags and missing values are SF_E_ARG with a one-line message. */
/* opts is terminated by an entry with name == NULL. */
sf_status sf_args_parse(int argc, char **argv, const sf_opt *opts, sf_args *out, sf_err *err);
void sf_args_free(sf_args *a);
/* Last value of option `name` (dash form), or NULL. */
const char *sf_args_get(const sf_args *a, const sf_opt *opts, const char *name);
/* 1 when flag `name` appeared. */
int sf_args_has(const sf_args *a, const sf_opt *opts, const char *name);
/* All values of `name` in order (pointer array, caller frees the array). */
int sf_args_all(const sf_args *a, const sf_opt *opts, const char *name, const char ***vals);
/* Positional arguments in order (caller frees the array). */
int sf_args_positional(const sf_args *a, const char ***vals);
/* Typed value helpers: SF_E_ARG with "--name: ..." on a bad number. */
sf_status sf_arg_long(const char *flag, const char *s, long lo, long hi, long *out, sf_err *err);
sf_status sf_arg_double(const char *flag, const char *s, double *out, sf_err *err);
/* The option-table entries of the flags sf_args_main handles; end every table with them. */
#define SF_OPTS_STD                                                                         \
    {"log-level", 0, SF_ARG_VALUE, "LEVEL\terror|warn|info|debug (default info, env SF_LOG_LEVEL)"}, \
        {"help", 'h', SF_ARG_FLAG, "show this help"}, {"version", 0, SF_ARG_FLAG, "print the version"}

/* ---- the flags the three stages share (sf-encode, sf-denoise, sf-decode): one table entry, one
 * parser, one set of messages. Put the entries in a stage's table; sf_stage_flags_get reads them. */
#define SF_OPTS_DEVICE(what)                                                                        \
    {"device", 0, SF_ARG_VALUE, "DEV\tcpu, cuda or cuda:N (" what "; an NVIDIA GPU, sm_80 or newer)"}, \
        {"gpu-id", 0, SF_ARG_VALUE, "N\talias of --device cuda:N (the reference's --gpu_id)"}
#define SF_OPT_MODEL_DIR                                                                            \
    {"model-dir", 0, SF_ARG_VALUE, "DIR\tmodel folder (default $SF_MODEL_DIR, else wan_models/Wan2.1-T2V-1.3B)"}
#define SF_OPT_PROGRESS                                                                             \
    {"progress", 0, SF_ARG_VALUE,                                                                   \
     "auto|bar|lines|none\tprogress on stderr: bar = one '\\r' line, lines = a plain line per step with "  \
     "elapsed time (default auto: bar on a terminal or with SF_PROGRESS=1, as sf-run on a terminal sets it; lines otherwise)"}

#define SF_OPT_TIMEOUT                                                                              \
    {"timeout", 0, SF_ARG_VALUE,                                                                    \
     "S\ttcp/ipc/shm streams: seconds to wait for the peer stage to connect, or for a vanished one "    \
     "to come back (default 600; 0: forever). A connected peer is watched by heartbeats instead"}
/* The CPU backend's numerics (kernels/parallel.h sf_cpu_mode); every stage's table has them. */
#define SF_OPTS_CPU_MODE                                                                            \
    {"deterministic", 0, SF_ARG_FLAG,                                                               \
     "CPU: the exact kernels (fixed summation order, the same bits for any thread count; slower); "  \
     "env SF_CPU_EXACT=1"},                                                                         \
        {"precision", 0, SF_ARG_VALUE,                                                              \
         "fp32|bf16\tCPU numerics: fp32 (default, oneDNN f32) or bf16 (the GPU's: bf16 products on "  \
         "AMX / AVX512-BF16, f32 sums); env SF_CPU_PRECISION"}

/* NONE prints nothing; BAR rewrites one '\r' line (a terminal, or sf-run's status line); LINES
 * prints plain lines with elapsed time (logs, nohup, Slurm, CI). */
typedef enum sf_progress_mode { SF_PROGRESS_NONE = 0, SF_PROGRESS_BAR = 1, SF_PROGRESS_LINES = 2 } sf_progress_mode;

typedef struct sf_stage_flags {
    int cuda, ordinal;     /* --device cpu|cuda|cuda:N or --gpu-id N: cuda 0 = the CPU */
    const char *model_dir; /* --model-dir, else $SF_MODEL_DIR, else wan_models/Wan2.1-T2V-1.3B */
    sf_progress_mode progress; /* --progress, auto resolved for this stderr and log level */
    double wire_timeout;   /* --timeout S as sf_wire_opts.timeout_s (0: default 600 s; -1: forever) */
    int cpu_mode;          /* sf_cpu_mode after --deterministic / --precision (parallel.h) */
} sf_stage_flags;

/* Read whichever of the shared flags the table has (the others keep their defaults). --device and
 * --gpu-id together must name the same GPU. --deterministic / --precision set SF_CPU_EXACT /
 * SF_CPU_PRECISION in the environment, which the CPU kernels read (and child stages inherit). SF_E_ARG with one line naming the flag. Parsing only:
 * a stage that will use the GPU checks it before any work (sf_device_check, kernels/device.h). */
sf_status sf_stage_flags_get(const sf_args *a, const sf_opt *opts, sf_stage_flags *f, sf_err *err);

/* The start of every program's main(): sf_args_parse plus the flags all programs share.
 * -h/--help prints the usage and --version the version: both return 1 with *a freed (the
 * caller returns 0). --log-level sets the log level. A bad flag or level prints a one-line
 * error and exits 2. Otherwise returns 0 with *a filled (caller frees). */
int sf_args_main(int argc, char **argv, const char *prog, const char *synopsis, const sf_opt *opts, sf_args *a);
/* Print a usage block for the table to stdout. */
void sf_args_usage(const char *prog, const char *synopsis, const sf_opt *opts);

#endif
