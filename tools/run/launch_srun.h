/* launch_srun.h — sf-run's `launcher: srun` (launch_srun.c): stages on the nodes of a Slurm
 * allocation. Used by runspec.c. */
#ifndef SF_LAUNCH_SRUN_H
#define SF_LAUNCH_SRUN_H

#include "runspec.h"

/* plan->nodes / n_nodes ← the allocation's host names ($SLURM_JOB_NODELIST through
 * `scontrol show hostnames`); an error outside an allocation. */
sf_status sf_run_srun_nodes(sf_run_plan *plan, sf_err *err);
/* Stage i's node into host[n] (kept when the spec names one): the spec's `node: K` (an index into
 * the node list) or node i mod n_nodes. */
sf_status sf_run_srun_place(const sf_run_plan *plan, int i, const char *node, char *host, size_t n, sf_err *err);
/* Replace the stage's argv with `srun --nodes=1 --ntasks=1 --nodelist=HOST --overlap ... -- argv`,
 * pushing words with push (runspec.c's argv append). */
sf_status sf_run_srun_wrap(sf_run_stage *st, int (*push)(sf_run_stage *, const char *), sf_err *err);

#endif
