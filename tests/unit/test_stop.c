/* test_stop.c — common/stop.c (stop flag, exit codes, names removed at exit, the watchdog) and
 * common/outfile.c (anonymous output invisible before commit, nothing after a kill, the sweep of a
 * dead writer's named temp files). Each signal case runs in a forked child. */
#define _GNU_SOURCE
#include "sf_test.h"
#include "stop.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int entries(const char *dir) { /* files in dir, . and .. aside */
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    if (d) closedir(d);
    return n;
}

static int wait_status(pid_t pid, double *secs) {
    int st = 0;
    double t0 = sf_now();
    while (waitpid(pid, &st, 0) < 0) {
    }
    if (secs) *secs = sf_now() - t0;
    return st;
}

/* A signal sets the flag; long work that checks it returns SF_E_STOPPED "interrupted by
 * SIGTERM"; sf_exit_code is 128 + signal for any failure after it. */
static void test_flag_and_exit_codes(void) {
    SF_CHECK(sf_exit_code(SF_E_IO) == 1 && sf_exit_code(SF_E_ARG) == 2); /* no signal yet */
    int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (int i = 0; i < 3; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            sf_err err = {{0}};
            if (sf_stop_install(&err) || sf_stopped()) _exit(10);
            kill(getpid(), sigs[i]);
            if (!sf_stopped() || sf_stop_signal() != sigs[i]) _exit(11);
            if (sf_stop_check(&err) != SF_E_STOPPED || !strstr(err.msg, "interrupted by SIG")) _exit(12);
            char b;
            if (read(sf_stop_fd(), &b, 1) != 1) _exit(13); /* the self-pipe woke */
            _exit(sf_exit_code(SF_E_IO));                   /* a read cut short: still 128 + sig */
        }
        int st = wait_status(pid, NULL);
        SF_CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 128 + sigs[i], "signal %d: status %d", sigs[i], st);
    }
    /* sf_stop_request: stopped, but no signal, so exit codes stay */
    pid_t pid = fork();
    if (pid == 0) {
        sf_stop_request();
        sf_err err;
        _exit(sf_stopped() && !sf_stop_signal() && sf_stop_check(&err) == SF_E_STOPPED ? sf_exit_code(SF_E_STOPPED) : 9);
    }
    int st = wait_status(pid, NULL);
    SF_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1);
}

/* Registered names go at exit() but not when forgotten; a forked child never removes its
 * parent's. */
/* A stop signal taken while rsp points into heap memory — what some of oneDNN's JIT kernels do, using
 * rsp as a general register — must not write there: the handlers run on their own stack (SA_ONSTACK).
 * Before, the kernel put the signal frame below that rsp, into the heap (a Ctrl-C mid-GEMM corrupted
 * malloc's chunks). Here rsp points into a patterned buffer while a raw kill(2) delivers SIGINT. */
#if defined(__x86_64__) && defined(__linux__)
#include <sys/syscall.h>
static long kill_on_stack(void *sp, long pid, long sig) {
    long ret;
    __asm__ volatile("mov %%rsp, %%r12\n\t"
                     "mov %[sp], %%rsp\n\t"
                     "syscall\n\t"
                     "mov %%r12, %%rsp\n\t"
                     : "=a"(ret)
                     : "0"((long)SYS_kill), "D"(pid), "S"(sig), [sp] "r"(sp)
                     : "rcx", "r11", "r12", "memory");
    return ret;
}
#endif
static void test_signal_off_heap(void) {
#if defined(__x86_64__) && defined(__linux__)
    pid_t pid = fork();
    if (pid == 0) {
        enum { N = 128 << 10 };
        sf_err err = {{0}};
        unsigned char *buf = malloc(N);
        if (!buf || sf_stop_install(&err)) _exit(10);
        memset(buf, 0xA5, N);
        void *top = (void *)(((uintptr_t)(buf + N - 256)) & ~(uintptr_t)63);
        if (kill_on_stack(top, getpid(), SIGINT) != 0 || !sf_stopped()) _exit(11);
        size_t changed = 0;
        for (size_t i = 0; i < N - 512; i++) changed += buf[i] != 0xA5;
        _exit(changed ? 12 : 0);
    }
    int st = wait_status(pid, NULL);
    SF_CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) != 12, "the signal frame was written into the heap below rsp");
    SF_CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
#else
    SF_TEST_SKIP("x86-64 Linux only (raw syscall with a borrowed rsp)");
#endif
}

static void test_unlink_at_exit(void) {
    char dir[] = "/tmp/sf_stop_XXXXXX";
    SF_CHECK(mkdtemp(dir) != NULL);
    char a[300], b[300], c[300];
    snprintf(a, sizeof a, "%s/a", dir), snprintf(b, sizeof b, "%s/b", dir), snprintf(c, sizeof c, "%s/c", dir);
    pid_t pid = fork();
    if (pid == 0) {
        close(open(a, O_CREAT | O_WRONLY, 0600));
        close(open(b, O_CREAT | O_WRONLY, 0600));
        close(open(c, O_CREAT | O_WRONLY, 0600));
        sf_stop_unlink_at_exit(a);
        sf_stop_unlink_at_exit(b);
        sf_stop_unlink_at_exit(c);
        sf_stop_forget(b);
        pid_t g = fork(); /* a child exiting does not remove the parent's names */
        if (g == 0) exit(0);
        int gs;
        waitpid(g, &gs, 0);
        if (access(a, F_OK) != 0) _exit(7);
        exit(0);
    }
    int st = wait_status(pid, NULL);
    SF_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    SF_CHECK(access(a, F_OK) != 0 && access(b, F_OK) == 0 && access(c, F_OK) != 0);
    unlink(b);
    rmdir(dir);
}

/* Work that never checks the flag: the watchdog ends it SF_STOP_GRACE_MS after the signal with
 * 128 + signal, removing the registered names; a second signal ends it at once — unless it comes
 * within SF_STOP_SAME_MS of the first (a terminal's Ctrl-C, then sf-run's SIGTERM: one request). */
static void test_watchdog(void) {
    char path[] = "/tmp/sf_stop_wd_XXXXXX";
    int fd = mkstemp(path);
    SF_CHECK(fd >= 0);
    close(fd);
    for (int second = 0; second < 3; second++) { /* 0: one signal; 1: a second 0.4 s later; 2: a second at once */
        int ready[2];
        SF_CHECK(pipe(ready) == 0);
        pid_t pid = fork();
        if (pid == 0) {
            sf_err err;
            if (sf_stop_install(&err)) _exit(3);
            sf_stop_unlink_at_exit(path);
            if (write(ready[1], "r", 1) != 1) _exit(4);
            for (;;) { /* busy, never checks */
            }
        }
        char r;
        SF_CHECK(read(ready[0], &r, 1) == 1);
        close(ready[0]), close(ready[1]);
        kill(pid, SIGTERM);
        if (second == 1) nanosleep(&(struct timespec){0, 400 * 1000000L}, NULL);
        if (second) kill(pid, SIGINT);
        double secs;
        int st = wait_status(pid, &secs);
        SF_CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 143, "case %d: status %d", second, st);
        /* one signal, or the same request twice: the 0.7 s grace, then the watchdog (the upper bound leaves a
           loaded machine's wake-ups room); a later second signal: at once */
        if (second == 1) SF_CHECK_MSG(secs < 0.2, "case 1: stopped %.2f s after the second signal", secs);
        else SF_CHECK_MSG(secs > 0.5 && secs < 2.0, "case %d: stopped after %.2f s", second, secs);
        SF_CHECK(access(path, F_OK) != 0); /* removed on the way out */
        fd = open(path, O_CREAT | O_WRONLY, 0600);
        close(fd);
    }
    unlink(path);
}

/* The output is anonymous until commit (nothing in the folder, even the temp name), a killed
 * writer leaves nothing, and an existing output is replaced only at commit. */
static void test_outfile_anonymous(void) {
    char dir[] = "/tmp/sf_out_XXXXXX";
    SF_CHECK(mkdtemp(dir) != NULL);
    char path[300];
    snprintf(path, sizeof path, "%s/o.bin", dir);
    sf_atomic_file af;
    sf_err err = {{0}};
    SF_CHECK_OK(sf_atomic_open(&af, path, &err), &err);
    fputs("one", (FILE *)af.fp);
    fflush((FILE *)af.fp);
    SF_CHECK_MSG(af.anon && entries(dir) == 0, "anon %d, %d entries", af.anon, entries(dir)); /* tmpfs/ext4 have O_TMPFILE */
    SF_CHECK_OK(sf_atomic_commit(&af, &err), &err);
    SF_CHECK(entries(dir) == 1);
    SF_CHECK_OK(sf_atomic_open(&af, path, &err), &err);
    fputs("second", (FILE *)af.fp);
    SF_CHECK_OK(sf_atomic_commit(&af, &err), &err); /* over an existing file: link beside + rename */
    char *data;
    size_t len;
    SF_CHECK_OK(sf_read_file(path, &data, &len, 100, &err), &err);
    SF_CHECK(len == 6 && !strcmp(data, "second") && entries(dir) == 1);
    free(data);
    pid_t pid = fork();
    if (pid == 0) {
        sf_atomic_file k;
        sf_err e;
        if (sf_atomic_open(&k, path, &e)) _exit(3);
        fputs("killed", (FILE *)k.fp);
        fflush((FILE *)k.fp);
        raise(SIGKILL);
    }
    wait_status(pid, NULL);
    SF_CHECK(entries(dir) == 1);
    unlink(path);
    rmdir(dir);
}

/* sf_tmp_sweep: the dead writer's temp files and folders of this output go, a live writer's and
 * other outputs' stay. */
static void test_sweep(void) {
    char dir[] = "/tmp/sf_sweep_XXXXXX";
    SF_CHECK(mkdtemp(dir) != NULL);
    pid_t dead = fork();
    if (dead == 0) _exit(0);
    wait_status(dead, NULL);
    char f[400];
    const char *make[] = {"o.bin.tmp.%d.0", "o.bin.tmp.%d.7.mp4", "o.bin.tmp.%d", "p.bin.tmp.%d.0", "o.binx.tmp.%d.0"};
    for (int i = 0; i < 5; i++) {
        char nm[64];
        snprintf(nm, sizeof nm, make[i], (int)dead);
        snprintf(f, sizeof f, "%s/%s", dir, nm);
        if (i == 2) { /* a PNG frames folder */
            SF_CHECK(mkdir(f, 0755) == 0);
            char g[500];
            snprintf(g, sizeof g, "%s/frame_00000.png", f);
            close(open(g, O_CREAT | O_WRONLY, 0600));
        } else {
            close(open(f, O_CREAT | O_WRONLY, 0600));
        }
    }
    snprintf(f, sizeof f, "%s/o.bin.tmp.%d.0", dir, (int)getppid()); /* alive */
    close(open(f, O_CREAT | O_WRONLY, 0600));
    char out[300];
    snprintf(out, sizeof out, "%s/o.bin", dir);
    SF_CHECK(sf_tmp_sweep(out) == 3);
    SF_CHECK(entries(dir) == 3);
    DIR *d = opendir(dir);
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') {
            snprintf(f, sizeof f, "%s/%s", dir, e->d_name);
            unlink(f);
        }
    closedir(d);
    rmdir(dir);
}

static const sf_test tests[] = {
    {"flag_and_exit_codes", test_flag_and_exit_codes},
    {"unlink_at_exit", test_unlink_at_exit},
    {"signal_off_heap", test_signal_off_heap},
    {"watchdog", test_watchdog},
    {"outfile_anonymous", test_outfile_anonymous},
    {"sweep", test_sweep},
};

SF_TEST_MAIN(tests)
