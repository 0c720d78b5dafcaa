/* deviceless_test.h — the harness of the tests that build cuDNN execution plans without a GPU
 * (test_sdpa_plans, test_conv_plans): the test re-runs its own binary as a child with
 * "--deviceless-child" and the libcuda.so.1 stand-in (build/tests/cudnn_stub/, built by make from
 * tests/gpu/cudnn_stub/stub.c) first on LD_LIBRARY_PATH; the child (the including test's
 * deviceless_child(), dispatched from its main) builds the plans and exits 0 when all finalized.
 * SKIPs when this build has no CUDA or cuDNN 9 cannot be loaded. Include after sf_test.h. */
#ifndef SF_DEVICELESS_TEST_H
#define SF_DEVICELESS_TEST_H

#include "sdpa_cuda.h"

#include <sys/wait.h>
#include <unistd.h>

static void sf_test_run_deviceless_child(void) {
    sf_err err = {{0}};
    int version = 0;
    sf_status st = sf_sdpa_cudnn_version(&version, &err);
    if (st == SF_E_DEVICE) {
        SF_TEST_SKIP("this build has no CUDA support");
        return;
    }
    if (st != SF_OK) {
        SF_TEST_SKIP("libcudnn.so.9 cannot be loaded (cuDNN 9 not installed)");
        fprintf(stderr, "# %s\n", err.msg);
        return;
    }
    printf("# cuDNN %d\n", version);
    char exe[4096], stub[4200], lib[4300];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    SF_CHECK(n > 0);
    if (n <= 0) return;
    exe[n] = 0;
    snprintf(stub, sizeof stub, "%.*s/cudnn_stub", (int)(strrchr(exe, '/') - exe), exe);
    snprintf(lib, sizeof lib, "%s/libcuda.so.1", stub);
    SF_CHECK_MSG(access(lib, R_OK) == 0, "%s missing (make builds it from tests/gpu/cudnn_stub/stub.c)", lib);
    if (access(lib, R_OK) != 0) return;
    const char *old = getenv("LD_LIBRARY_PATH");
    char *path = malloc(strlen(stub) + (old ? strlen(old) : 0) + 2);
    SF_CHECK(path != NULL);
    if (!path) return;
    sprintf(path, "%s%s%s", stub, old && *old ? ":" : "", old && *old ? old : "");
    fflush(stdout), fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        setenv("LD_LIBRARY_PATH", path, 1);
        execl(exe, exe, "--deviceless-child", (char *)NULL);
        _exit(127);
    }
    free(path);
    int status = 0;
    SF_CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    SF_CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "deviceless child: status %d", status);
}

#endif
