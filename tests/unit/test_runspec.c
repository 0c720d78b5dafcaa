/* test_runspec.c — sf-run's pipeline specs (tools/run/runspec.c): overrides that would be
 * silently ignored (an unknown variable, a misspelt stage) are refused naming the closest valid
 * name; stage.device / stage.host set the stage's fields; a '-'/'_' respelling of an existing
 * arg replaces it; tcp links within this machine get free ports below the ephemeral range. The
 * command-line side is tests/bats/sf-run.bats. */
#define _POSIX_C_SOURCE 200809L
#include "sf_test.h"
#include "tools/run/runspec.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static const char spec_text[] = "name: t\n"
                                "vars:\n"
                                "  num_frames: 21\n"
                                "  output: v.mp4\n"
                                "stages:\n"
                                "  - name: encode\n"
                                "    program: sf-encode\n"
                                "    args: {prompt: '${prompt}'}\n"
                                "  - name: denoise\n"
                                "    program: sf-denoise\n"
                                "    device: cpu\n"
                                "    args: {num_frames: '${num_frames}', seed: 0, checkpoint_path: c.pt}\n"
                                "  - name: decode\n"
                                "    program: sf-decode\n"
                                "    args: {output: '${output}'}\n";

/* Load the spec with overrides; returns the status, err.msg holds the message. */
static sf_status load(const char *path, const char *const *ov, int n, sf_run_plan *plan, sf_err *err) {
    memset(err, 0, sizeof *err);
    return sf_run_plan_load(path, ov, n, "1", 47600, plan, err);
}

static int write_spec(char *path) {
    int fd = mkstemp(path);
    if (fd < 0) return 0;
    ssize_t n = write(fd, spec_text, sizeof spec_text - 1);
    close(fd);
    return n == (ssize_t)(sizeof spec_text - 1);
}

static void test_unknown_overrides(void) {
    char path[] = "/tmp/sf-test-runspec-XXXXXX";
    SF_CHECK(write_spec(path));
    sf_run_plan plan;
    sf_err err;
    static const struct { const char *ov, *want; } bad[] = {
        {"num_frame=9", "unknown variable 'num_frame' (did you mean 'num_frames'?)"},
        {"outptu=fox.mp4", "unknown variable 'outptu' (did you mean 'output'?)"},
        {"promt=a fox", "unknown variable 'promt' (did you mean 'prompt'?)"}, /* used, not declared */
        {"sed=7", "unknown variable 'sed' (did you mean 'denoise.seed'?)"},
        {"denoize.seed=7", "unknown stage 'denoize' in 'denoize.seed=7' (did you mean 'denoise'?)"},
        {"Decode.output=x", "unknown stage 'Decode' in 'Decode.output=x' (did you mean 'decode'?)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *ov[2] = {"prompt=a fox", bad[i].ov};
        SF_CHECK_MSG(load(path, ov, 2, &plan, &err) == SF_E_ARG && strstr(err.msg, bad[i].want),
                     "%s: got '%s'", bad[i].ov, err.msg);
    }
    /* valid: declared, used-only, stage args old and new */
    const char *ok[] = {"num_frames=9", "prompt=a fox", "output=o.y4m", "denoise.seed=7", "denoise.layer_indices=[0, 2]"};
    SF_CHECK_OK(load(path, ok, 5, &plan, &err), &err);
    if (!err.msg[0]) {
        char line[1024];
        sf_run_stage_cmdline(&plan.stages[1], line, sizeof line);
        SF_CHECK_MSG(strstr(line, "--num_frames 9 --seed 7 --checkpoint_path c.pt --layer_indices 0 2") != NULL, "%s",
                     line);
        sf_run_plan_free(&plan);
    }
    unlink(path);
}

static void test_stage_fields_and_spellings(void) {
    char path[] = "/tmp/sf-test-runspec-XXXXXX";
    SF_CHECK(write_spec(path));
    sf_run_plan plan;
    sf_err err;
    const char *ov[] = {"prompt=p", "denoise.device=cuda:1", "denoise.checkpoint-path=d.pt", "decode.host=gpu2"};
    SF_CHECK_OK(load(path, ov, 4, &plan, &err), &err);
    if (err.msg[0]) return;
    char line[2048];
    sf_run_stage_cmdline(&plan.stages[1], line, sizeof line);
    /* one --device (the stage's), one checkpoint flag (replaced, not added) */
    SF_CHECK_MSG(strstr(line, "--checkpoint_path d.pt --device cuda:1 --in") != NULL && !strstr(line, "checkpoint-path") &&
                     !strstr(line, "--device cpu"),
                 "%s", line);
    SF_CHECK(!strcmp(plan.stages[2].host, "gpu2") && plan.transport == SF_RUN_TCP);
    sf_run_plan_free(&plan);
    unlink(path);
}

/* Spec values are data (tools/run/validate.c): what would become syntax is refused with one
 * line; good values pass; a remote stage gets its host after "--" and binds route=... */
static void test_values_are_data(void) {
    char path[] = "/tmp/sf-test-runspec-XXXXXX";
    SF_CHECK(write_spec(path));
    sf_run_plan plan;
    sf_err err;
    static const struct { const char *ov, *want; } bad[] = {
        {"encode.prompt=x\nprogram: sh", "control character 0x0a"},
        {"prompt=a\x1b[2Jfox", "control character 0x1b"},
        {"encode.prompt=--out=/etc/x", "would be read as a flag"},
        {"denoise.seed=-x", "would be read as a flag"},
        {"decode.host=-oProxyCommand=sh", "is not a host name"},
        {"decode.host=gpu2 -oX", "bad character in the host name"},
        {"decode.host=u;rm@gpu2", "bad character in the user name"},
        {"decode.device=--x", "would be read as a flag"},
        {"enc$ode.prompt=x", "a key holds only"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *ov[2] = {"prompt=p", bad[i].ov};
        SF_CHECK_MSG(load(path, ov, 2, &plan, &err) == SF_E_ARG && strstr(err.msg, bad[i].want), "%s: got '%s'",
                     bad[i].ov, err.msg);
    }
    const char *ok[] = {"prompt=a fox, -1 and \"quotes\"", "denoise.seed=-1", "decode.host=me@gpu-2.lan"};
    SF_CHECK_OK(load(path, ok, 3, &plan, &err), &err);
    if (err.msg[0]) return;
    SF_CHECK(plan.stages[2].argc == 6 && !strcmp(plan.stages[2].argv[3], "--") && !strcmp(plan.stages[2].argv[4], "me@gpu-2.lan"));
    SF_CHECK_MSG(strstr(plan.stages[2].argv[5], "--in @tcp://route=ssh-client:47601") != NULL, "%s", plan.stages[2].argv[5]);
    SF_CHECK_MSG(!strcmp(plan.stages[1].out_url, ">tcp://gpu-2.lan:47601"), "%s", plan.stages[1].out_url);
    SF_CHECK_MSG(!strcmp(plan.stages[1].in_url, "@tcp://127.0.0.1:47600"), "%s", plan.stages[1].in_url);
    sf_run_plan_free(&plan);
    unlink(path);
}

/* 1 when a listening socket can be bound on 127.0.0.1:port now (SO_REUSEADDR, as ZeroMQ binds). */
static int bindable(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1, ok;
    if (fd < 0) return 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(fd, 1) == 0;
    close(fd);
    return ok;
}

/* Without --tcp-port (tcp_port0 = 0): every link with both ends here gets its own free port,
 * drawn below the kernel's ephemeral range, released again for its stage to bind; a link to
 * another host keeps 47600 + i (the port must be free there, not here). */
static void test_free_ports(void) {
    int lo, hi, elo = 32768, ehi;
    sf_run_port_range(&lo, &hi);
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        if (fscanf(f, "%d %d", &elo, &ehi) != 2) elo = 32768;
        fclose(f);
    }
    SF_CHECK_MSG(lo >= 1024 && hi - lo >= 1000 && (hi <= elo || (lo == 1024 && hi == 65536)), "range %d..%d, ephemeral from %d",
                 lo, hi, elo);
    int p[SF_RUN_MAX_STAGES];
    sf_err err = {{0}};
    SF_CHECK_OK(sf_run_free_ports(SF_RUN_MAX_STAGES, p, &err), &err);
    for (int i = 0; i < SF_RUN_MAX_STAGES && !err.msg[0]; i++) {
        SF_CHECK_MSG(p[i] >= lo && p[i] < hi, "port %d: %d outside %d..%d", i, p[i], lo, hi - 1);
        SF_CHECK_MSG(bindable(p[i]), "port %d: %d is not free after the draw (a probe left open?)", i, p[i]);
        for (int k = 0; k < i; k++) SF_CHECK_MSG(p[k] != p[i], "ports %d and %d are both %d", k, i, p[i]);
    }
    char path[] = "/tmp/sf-test-runspec-XXXXXX";
    int fd = mkstemp(path);
    SF_CHECK(fd >= 0);
    if (fd < 0) return;
    static const char tcp[] = "transport: tcp\n";
    SF_CHECK(write(fd, tcp, sizeof tcp - 1) == (ssize_t)sizeof tcp - 1 &&
             write(fd, spec_text, sizeof spec_text - 1) == (ssize_t)sizeof spec_text - 1);
    close(fd);
    sf_run_plan plan;
    for (int remote = 0; remote < 2; remote++) {
        const char *ov[2] = {"prompt=p", "decode.host=gpu-2.lan"};
        memset(&err, 0, sizeof err);
        SF_CHECK_OK(sf_run_plan_load(path, ov, 1 + remote, "1", 0, &plan, &err), &err);
        if (err.msg[0]) break;
        int q[2];
        for (int i = 0; i < 2; i++) {
            char want[64];
            SF_CHECK_MSG(sscanf(plan.stages[i + 1].in_url, "@tcp://%*[^:]:%d", &q[i]) == 1, "%s", plan.stages[i + 1].in_url);
            snprintf(want, sizeof want, ">tcp://%s:%d", remote && i == 1 ? "gpu-2.lan" : "127.0.0.1", q[i]);
            SF_CHECK_MSG(!strcmp(plan.stages[i].out_url, want), "link %d: writer %s, reader %s", i, plan.stages[i].out_url,
                         plan.stages[i + 1].in_url);
        }
        SF_CHECK_MSG(q[0] >= lo && q[0] < hi, "local link: port %d outside %d..%d", q[0], lo, hi - 1);
        if (remote) SF_CHECK_MSG(q[1] == 47601, "link to another host: port %d, not 47601", q[1]);
        else SF_CHECK_MSG(q[1] >= lo && q[1] < hi && q[1] != q[0], "local links: ports %d and %d", q[0], q[1]);
        sf_run_plan_free(&plan);
    }
    unlink(path);
}

/* extends: a spec laid over another (a path relative to its own folder): vars merged key by key (the
 * child's win, the base's others kept), stages and transport inherited unless the child sets them, its
 * own name; a missing base names both files; a cycle stops at 4 levels with one line. */
static void put(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    SF_CHECK(f != NULL);
    if (f) fputs(text, f), fclose(f);
}
static void test_extends(void) {
    char dir[] = "/tmp/sf-test-extends-XXXXXX";
    SF_CHECK(mkdtemp(dir) != NULL);
    char base[256], sub[256], child[256], loop[256], orphan[256];
    snprintf(base, sizeof base, "%s/base.yaml", dir);
    snprintf(sub, sizeof sub, "%s/sub", dir);
    snprintf(child, sizeof child, "%s/sub/child.yaml", dir);
    snprintf(loop, sizeof loop, "%s/loop.yaml", dir);
    snprintf(orphan, sizeof orphan, "%s/orphan.yaml", dir);
    SF_CHECK(mkdir(sub, 0700) == 0);
    put(base, spec_text);
    put(child, "name: c\nextends: ../base.yaml\ntransport: pipe\nvars:\n  num_frames: 9\n  seed: 3\n");
    put(loop, "name: l\nextends: loop.yaml\n");
    put(orphan, "name: o\nextends: nowhere.yaml\n");
    sf_run_plan plan;
    sf_err err;
    const char *ov[] = {"prompt=p", "seed=5"};
    SF_CHECK_OK(load(child, ov, 2, &plan, &err), &err);
    if (!err.msg[0]) {
        char line[2048];
        SF_CHECK(!strcmp(plan.name, "c") && plan.n == 3 && plan.transport == SF_RUN_PIPE);
        sf_run_stage_cmdline(&plan.stages[1], line, sizeof line);
        SF_CHECK_MSG(strstr(line, "--num_frames 9 ") != NULL, "%s", line); /* the child's value */
        sf_run_stage_cmdline(&plan.stages[2], line, sizeof line);
        SF_CHECK_MSG(strstr(line, "--output v.mp4") != NULL, "%s", line);  /* the base's, kept */
        sf_run_plan_free(&plan);
    }
    SF_CHECK(load(orphan, ov, 1, &plan, &err) != SF_OK && strstr(err.msg, "orphan.yaml extends nowhere.yaml"));
    SF_CHECK_MSG(load(loop, ov, 1, &plan, &err) == SF_E_FORMAT && strstr(err.msg, "more than 4 specs deep"), "%s",
                 err.msg);
    unlink(base), unlink(child), unlink(loop), unlink(orphan), rmdir(sub), rmdir(dir);
}

/* A relative program path is the folder's of the spec that lists the stages (a base's stages: the
 * base's folder; a child's own stages: the child's); names without '/', absolute paths and the
 * programs of ssh stages stay as written. */
static void test_program_paths(void) {
    char dir[] = "/tmp/sf-test-programs-XXXXXX";
    SF_CHECK(mkdtemp(dir) != NULL);
    char base[256], sub[256], child[256], own[256], want[512];
    snprintf(base, sizeof base, "%s/base.yaml", dir);
    snprintf(sub, sizeof sub, "%s/sub", dir);
    snprintf(child, sizeof child, "%s/sub/child.yaml", dir);
    snprintf(own, sizeof own, "%s/sub/own.yaml", dir);
    SF_CHECK(mkdir(sub, 0700) == 0);
    put(base, "name: b\nstages:\n  - name: a\n    program: ./run.sh\n  - name: b\n    program: tools/x\n"
              "  - name: c\n    program: sf-decode\n  - name: d\n    program: /bin/true\n"
              "  - name: e\n    program: ./remote.sh\n    host: gpu2\n");
    put(child, "name: c\nextends: ../base.yaml\n");
    put(own, "name: o\nextends: ../base.yaml\nstages:\n  - name: a\n    program: ./mine.sh\n");
    sf_run_plan plan;
    sf_err err;
    SF_CHECK_OK(load(child, NULL, 0, &plan, &err), &err);
    if (!err.msg[0]) {
        snprintf(want, sizeof want, "%s/../run.sh", sub); /* the base, as extends reached it */
        SF_CHECK_MSG(!strcmp(plan.stages[0].program, want), "%s", plan.stages[0].program);
        snprintf(want, sizeof want, "%s/../tools/x", sub);
        SF_CHECK_MSG(!strcmp(plan.stages[1].program, want), "%s", plan.stages[1].program);
        SF_CHECK(!strcmp(plan.stages[2].program, "sf-decode") && !strcmp(plan.stages[3].program, "/bin/true"));
        SF_CHECK_MSG(!strcmp(plan.stages[4].program, "./remote.sh"), "%s", plan.stages[4].program);
        sf_run_plan_free(&plan);
    }
    SF_CHECK_OK(load(own, NULL, 0, &plan, &err), &err);
    if (!err.msg[0]) {
        snprintf(want, sizeof want, "%s/mine.sh", sub);
        SF_CHECK_MSG(plan.n == 1 && !strcmp(plan.stages[0].program, want), "%s", plan.stages[0].program);
        sf_run_plan_free(&plan);
    }
    unlink(base), unlink(child), unlink(own), rmdir(sub), rmdir(dir);
}

static const sf_test tests[] = {
    {"program_paths", test_program_paths},
    {"unknown_overrides", test_unknown_overrides},
    {"stage_fields_and_spellings", test_stage_fields_and_spellings},
    {"values_are_data", test_values_are_data},
    {"extends", test_extends},
    {"free_ports", test_free_ports},
};
SF_TEST_MAIN(tests)
