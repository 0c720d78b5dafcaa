/* wire_shm.c — the shared-memory (shm://) transport of the wire format (DESIGN.md §4; frame
 * spec at the top of wire.h; URL and behaviour in docs/formats.md).
 *
 * A POSIX shared-memory ring owned by the writer: a control page (magic, slot count and size,
 * the reader's pid, a process-shared counting semaphore of free slots), then `nslots` slots.
 * Headers and slot references travel over a ZeroMQ ipc control channel (wire_zmq.c) bound by the
 * reader at $TMPDIR/sf-shm-NAME.ctl; a payload larger than a slot travels inline on it. The reader
 * reads payloads in place and frees a slot when it asks for the next message.
 *
 * The segment is the writer's (or any process of the user that reaches the control socket first
 * and sends a reference to a segment of its own): the reader copies the ring's geometry when it
 * maps a segment and checks every slot reference against that copy, never against the shared
 * header, and a segment shrunk under its mappings is caught by the SIGBUS guard below.
 *
 * Mirrors no reference module. Tested by tests/unit/test_wire.c (shm ring with more messages than
 * slots, a dead reader, a hostile writer: header changed, segment shrunk under either side) and
 * tests/bats/sf-wire.bats (separate processes). */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#include "wire_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <semaphore.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SHM_CTL_BYTES 4096u
#define SHM_MAGIC 0x53464d31u /* "SFM1" */
#define SHM_MAX_MAPS 8
#define SHM_GUARDS 64 /* segments mapped at once by one process, all endpoints together */

static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }
static void wr32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void wr64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }

/* ------------------------------------------------------------------------------------------
 * SIGBUS guard.
 *
 * A segment's size is not ours to hold: its writer keeps the descriptor (and until the reader
 * unlinks the name, any process of the user may open it), so it can ftruncate the segment under
 * both mappings. Every access past the new end is then SIGBUS: here, or in the stage that reads a
 * payload in place or writes one into a reserved slot (a D2H copy included). The handler maps
 * private zero pages over the rest of the faulting mapping and marks it: the access completes
 * (it reads zeros, its writes go nowhere) and the next wire call on that ring fails in one line.
 * libwayland-server guards client shm pools the same way. A sealed memfd (F_SEAL_SHRINK) would
 * rule the shrink out instead, but the descriptor would have to travel to the reader, and
 * ZeroMQ's ipc transport cannot pass one (no SCM_RIGHTS): that takes a second Unix socket per
 * stream (its own path, liveness and clean-up) or opening /proc/PID/fd/N (ptrace access rules,
 * hidepid mounts). A per-message fstat would leave a race and a syscall on every message, and
 * copying each payload out under a scoped handler would give up reading in place. Faults outside
 * the registered mappings go to the previous handler (ASan's, or the default: the process dies of
 * SIGBUS as before).
 *
 * The table is global because a signal handler can only reach globals; entries are claimed and
 * freed with atomics (lock-free, so async-signal-safe to read). */
static struct shm_guard {
    atomic_int used;
    _Atomic uintptr_t base; /* 0 while the entry is being set up or torn down */
    _Atomic size_t len;     /* bytes mapped (a page multiple once rounded) */
    atomic_int hit;         /* a fault was absorbed: the ring is broken */
} shm_guards[SHM_GUARDS];
static struct sigaction shm_prev_bus;
static atomic_int shm_bus_state; /* 0 not installed, 1 installing, 2 installed */
static _Atomic size_t shm_page;

static void shm_bus_handler(int sig, siginfo_t *si, void *uctx) {
    uintptr_t a = (uintptr_t)si->si_addr;
    size_t pg = atomic_load(&shm_page);
    if (si->si_code > 0) /* a fault, not kill(2) */
        for (int i = 0; i < SHM_GUARDS; i++) {
            uintptr_t b = atomic_load(&shm_guards[i].base);
            size_t n = atomic_load(&shm_guards[i].len);
            if (!b || a < b || a - b >= n) continue;
            int e = errno;
            uintptr_t from = a & ~(uintptr_t)(pg - 1);
            void *p = mmap((void *)from, b + n - from, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS, -1, 0);
            errno = e;
            if (p == MAP_FAILED) break;
            atomic_store(&shm_guards[i].hit, 1);
            return;
        }
    /* not a ring's: what would have happened without us */
    if ((shm_prev_bus.sa_flags & SA_SIGINFO) && shm_prev_bus.sa_sigaction) {
        shm_prev_bus.sa_sigaction(sig, si, uctx);
    } else if (!(shm_prev_bus.sa_flags & SA_SIGINFO) && shm_prev_bus.sa_handler != SIG_DFL && shm_prev_bus.sa_handler != SIG_IGN) {
        shm_prev_bus.sa_handler(sig);
    } else if (shm_prev_bus.sa_handler == SIG_IGN && si->si_code <= 0) { /* an ignored kill(2) stays ignored */
    } else { /* default (a fault cannot be ignored): die of it (raised again; pending until this handler returns) */
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        sigemptyset(&dfl.sa_mask);
        sigaction(SIGBUS, &dfl, NULL);
        raise(SIGBUS);
    }
}

/* Register mapping [p, p+len) with the guard (installing the handler on first use). */
static sf_status shm_guard_add(uint8_t *p, size_t len, int *slot, sf_err *err) {
    int expect = 0;
    if (atomic_compare_exchange_strong(&shm_bus_state, &expect, 1)) {
        atomic_store(&shm_page, (size_t)sysconf(_SC_PAGESIZE));
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = shm_bus_handler;
        sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK; /* the alternate stack where there is one (stop.c: oneDNN JIT) */
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGBUS, &sa, &shm_prev_bus) != 0) {
            atomic_store(&shm_bus_state, 0);
            return sf_fail(err, SF_E_IO, "wire: shm: cannot install the SIGBUS guard: %s", strerror(errno));
        }
        atomic_store(&shm_bus_state, 2);
    }
    while (atomic_load(&shm_bus_state) == 1) { /* another thread is installing it: a few instructions */
    }
    size_t pg = atomic_load(&shm_page);
    for (int i = 0; i < SHM_GUARDS; i++) {
        int z = 0;
        if (!atomic_compare_exchange_strong(&shm_guards[i].used, &z, 1)) continue;
        atomic_store(&shm_guards[i].hit, 0);
        atomic_store(&shm_guards[i].len, (len + pg - 1) & ~(pg - 1));
        atomic_store(&shm_guards[i].base, (uintptr_t)p);
        *slot = i;
        return SF_OK;
    }
    return sf_fail(err, SF_E_UNSUPPORTED, "wire: shm: more than %d segments mapped in one process", SHM_GUARDS);
}

static void shm_guard_del(int slot) {
    if (slot < 0) return;
    atomic_store(&shm_guards[slot].base, 0);
    atomic_store(&shm_guards[slot].len, 0);
    atomic_store(&shm_guards[slot].used, 0);
}

static int shm_guard_hit(int slot) { return slot >= 0 && atomic_load(&shm_guards[slot].hit); }

typedef struct shm_ctl {
    uint32_t magic, nslots;
    uint64_t slot_size;
    atomic_int reader_pid;
    sem_t free_slots; /* process-shared: slots the writer may fill */
} shm_ctl;

struct sf_wire_shm {
    char name[72];
    uint32_t nslots;
    size_t slot_bytes; /* requested (0: size on first use) */
    /* writer */
    char seg[128];
    uint8_t *base;
    size_t map_len;
    shm_ctl *ctl;
    size_t slot_size; /* the ring's geometry, kept here: the shared header is the peer's to scribble on */
    int guard;        /* shm_guards entry of the mapping (-1: none) */
    uint32_t next_slot;
    int reserved, used;
    /* reader */
    struct {
        char seg[128];
        uint8_t *base;
        size_t len;
        uint32_t nslots;  /* the ring header as it was when mapped (checked against len then) */
        size_t slot_size;
        int guard;
    } maps[SHM_MAX_MAPS];
    int nmaps;
    int held_map; /* -1: no slot held */
};

sf_status sf_wire_shm_open(sf_wire *w, const char *spec, sf_err *err) {
    struct sf_wire_shm *s = calloc(1, sizeof *s);
    if (!s) return sf_fail(err, SF_E_NOMEM, "wire: out of memory");
    w->shm = s;
    s->held_map = -1;
    s->guard = -1;
    s->nslots = 4;
    size_t n = strcspn(spec, "?");
    if (n == 0 || n >= 65) return sf_fail(err, SF_E_ARG, "wire: shm:// needs a name of 1..64 characters: %s", w->url);
    for (size_t i = 0; i < n; i++) {
        char c = spec[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return sf_fail(err, SF_E_ARG, "wire: shm name may hold only [A-Za-z0-9._-]: %s", w->url);
    }
    memcpy(s->name, spec, n);
    s->name[n] = 0;
    const char *q = spec[n] ? spec + n + 1 : "";
    while (*q) {
        size_t k = strcspn(q, "&");
        long v = -1;
        char *end = NULL;
        if (strncmp(q, "slots=", 6) == 0) {
            v = strtol(q + 6, &end, 10);
            if (end != q + k || v < 1 || v > 256) return sf_fail(err, SF_E_ARG, "wire: %s: slots must be 1..256", w->url);
            s->nslots = (uint32_t)v;
        } else if (strncmp(q, "slot_mb=", 8) == 0) {
            v = strtol(q + 8, &end, 10);
            if (end != q + k || v < 1 || v > 65536) return sf_fail(err, SF_E_ARG, "wire: %s: slot_mb must be 1..65536", w->url);
            s->slot_bytes = (size_t)v << 20;
        } else {
            return sf_fail(err, SF_E_ARG, "wire: %s: unknown shm option (slots=N, slot_mb=M)", w->url);
        }
        q += k;
        if (*q == '&') q++;
    }
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp || strlen(tmp) > 200) tmp = "/tmp";
    char ctl[300];
    snprintf(ctl, sizeof ctl, "ipc://%s/sf-shm-%s.ctl", tmp, s->name);
    return sf_wire_zmq_open(w, ctl, 0, err);
}

/* Writer: create the segment for payloads of nb bytes. */
static sf_status shm_create(sf_wire *w, size_t nb, sf_err *err) {
    struct sf_wire_shm *s = w->shm;
    size_t slot = s->slot_bytes ? s->slot_bytes : ((nb + ((size_t)1 << 20) - 1) & ~(((size_t)1 << 20) - 1));
    if (!slot) slot = (size_t)1 << 20;
    slot = (slot + 4095) & ~(size_t)4095;
    size_t len;
    if (!sf_mul_ok(slot, s->nslots, &len) || !sf_add_ok(len, SHM_CTL_BYTES, &len))
        return sf_fail(err, SF_E_NOMEM, "wire: shm ring too large");
    static _Atomic unsigned counter;
    snprintf(s->seg, sizeof s->seg, "/sf-%s-%ld-%u", s->name, (long)getpid(), atomic_fetch_add(&counter, 1));
    int fd = shm_open(s->seg, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0) return sf_fail(err, SF_E_IO, "wire: shm_open %s: %s", s->seg, strerror(errno));
    if (ftruncate(fd, (off_t)len) != 0) {
        int e = errno;
        close(fd);
        shm_unlink(s->seg);
        return sf_fail(err, SF_E_IO, "wire: shm %s: cannot size to %zu bytes: %s", s->seg, len, strerror(e));
    }
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        shm_unlink(s->seg);
        return sf_fail(err, SF_E_IO, "wire: mmap %s: %s", s->seg, strerror(errno));
    }
    sf_status st = shm_guard_add(p, len, &s->guard, err);
    if (st) {
        munmap(p, len);
        shm_unlink(s->seg);
        return st;
    }
    s->base = p;
    s->map_len = len;
    s->slot_size = slot;
    s->ctl = p;
    s->ctl->magic = SHM_MAGIC;
    s->ctl->nslots = s->nslots;
    s->ctl->slot_size = slot;
    atomic_store(&s->ctl->reader_pid, 0);
    if (sem_init(&s->ctl->free_slots, 1, s->nslots) != 0) return sf_fail(err, SF_E_IO, "wire: sem_init: %s", strerror(errno));
    return SF_OK;
}

/* The reader process exited (gone, or a zombie its parent has not reaped yet). */
static int reader_gone(const shm_ctl *c) {
    int pid = atomic_load(&((shm_ctl *)c)->reader_pid);
    if (pid <= 0) return 0;
    if (kill(pid, 0) != 0) return errno == ESRCH;
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *fp = fopen(path, "r");
    if (!fp) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = 0;
    const char *rp = strrchr(buf, ')'); /* "pid (comm) S ..." */
    return rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X');
}

/* Writer: take a free slot (blocks while the ring is full). */
static sf_status shm_acquire(sf_wire *w, sf_err *err) {
    struct sf_wire_shm *s = w->shm;
    if (s->reserved) return SF_OK;
    for (;;) {
        if (sf_wire_stopped()) return sf_wire_stop_err(err);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        if (sem_timedwait(&s->ctl->free_slots, &ts) == 0) break;
        if (errno != ETIMEDOUT && errno != EINTR) return sf_fail(err, SF_E_IO, "wire: sem_wait: %s", strerror(errno));
        if (reader_gone(s->ctl)) {
            w->zpeer_gone = 1; /* the close does not linger for it */
            return sf_fail(err, SF_E_IO, "wire: %s: downstream closed", w->url);
        }
    }
    s->reserved = 1;
    return SF_OK;
}

sf_status sf_wire_shm_reserve(sf_wire *w, size_t nbytes, void **buf, sf_err *err) {
    struct sf_wire_shm *s = w->shm;
    sf_status st;
    if (!s->ctl && nbytes && (st = shm_create(w, nbytes, err))) return st;
    if (!s->ctl || nbytes > s->slot_size) { /* travels inline: plain scratch */
        if (w->scratch_cap < nbytes || !w->scratch) {
            free(w->scratch);
            w->scratch_cap = 0;
            if (!(w->scratch = malloc(nbytes ? nbytes : 1))) return sf_fail(err, SF_E_NOMEM, "wire: out of memory");
            w->scratch_cap = nbytes;
        }
        *buf = w->scratch;
        return SF_OK;
    }
    if ((st = shm_acquire(w, err))) return st;
    *buf = s->base + SHM_CTL_BYTES + (size_t)s->next_slot * s->slot_size;
    return SF_OK;
}

/* Writer: the segment was shrunk under our mapping (the guard absorbed a fault): what went into
 * the ring since may be zeros, so the stream is broken. */
static sf_status shm_writer_check(sf_wire *w, sf_err *err) {
    struct sf_wire_shm *s = w->shm;
    if (!shm_guard_hit(s->guard)) return SF_OK;
    return sf_fail(err, SF_E_IO, "wire: %s: shm %s was shrunk by another process: the stream is broken", w->url, s->seg);
}

sf_status sf_wire_shm_send(sf_wire *w, const sf_wire_msg *m, const void *payload, sf_err *err) {
    struct sf_wire_shm *s = w->shm;
    if (!w->zsock) return sf_fail(err, SF_E_IO, "wire: %s is closed", w->url);
    size_t nb = sf_wire_msg_nbytes(m);
    sf_status st;
    if (nb && !s->ctl && (st = shm_create(w, nb, err))) return st;
    if ((st = shm_writer_check(w, err))) return st; /* also a payload written into a reserved slot */
    void *hdr;
    size_t hlen;
    if ((st = sf_wire_header_encode(m, &hdr, &hlen, err))) return st;
    if (!nb || nb > s->slot_size) { /* end/error, or too big for a slot: inline */
        const void *bufs[2] = {NULL, payload};
        size_t lens[2] = {0, nb};
        return sf_wire_zmq_send_parts(w, hdr, hlen, bufs, lens, 2, err);
    }
    if ((st = shm_acquire(w, err))) {
        free(hdr);
        return st;
    }
    uint8_t *slot = s->base + SHM_CTL_BYTES + (size_t)s->next_slot * s->slot_size;
    if (payload != slot) memcpy(slot, payload, nb);
    if ((st = shm_writer_check(w, err))) {
        free(hdr);
        return st;
    }
    uint8_t ref[16 + 128];
    size_t seglen = strlen(s->seg);
    wr32(ref, s->next_slot);
    wr32(ref + 4, 0);
    wr64(ref + 8, nb);
    memcpy(ref + 16, s->seg, seglen);
    const void *bufs[1] = {ref};
    size_t lens[1] = {16 + seglen};
    s->reserved = 0; /* the slot now belongs to the reader until it releases it */
    s->used = 1;
    s->next_slot = (s->next_slot + 1) % s->nslots;
    return sf_wire_zmq_send_parts(w, hdr, hlen, bufs, lens, 1, err);
}

static void shm_release(struct sf_wire_shm *s) {
    if (s->held_map < 0) return;
    shm_ctl *c = (shm_ctl *)(void *)s->maps[s->held_map].base;
    sem_post(&c->free_slots);
    s->held_map = -1;
}

/* Reader: the mapping of segment `seg` (opened on first sight). */
static sf_status shm_map(sf_wire *w, const char *seg, int *idx, sf_err *err) {
    struct sf_wire_shm *s = w->shm;
    for (int i = 0; i < s->nmaps; i++)
        if (strcmp(s->maps[i].seg, seg) == 0) {
            *idx = i;
            return SF_OK;
        }
    if (s->nmaps >= SHM_MAX_MAPS) return sf_fail(err, SF_E_UNSUPPORTED, "wire: %s: more than %d writers", w->url, SHM_MAX_MAPS);
    int fd = shm_open(seg, O_RDWR, 0);
    if (fd < 0) return sf_fail(err, SF_E_IO, "wire: %s: cannot open shm %s: %s", w->url, seg, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || sb.st_size < (off_t)SHM_CTL_BYTES) {
        close(fd);
        return sf_fail(err, SF_E_FORMAT, "wire: %s: shm %s too small", w->url, seg);
    }
    size_t len = (size_t)sb.st_size;
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return sf_fail(err, SF_E_IO, "wire: mmap %s: %s", seg, strerror(errno));
    int guard = -1;
    sf_status st = shm_guard_add(p, len, &guard, err); /* before the first access: it may already be shrunk */
    if (st) {
        munmap(p, len);
        return st;
    }
    /* the geometry is read once, here: from now on the copies are the ring (the header is the peer's) */
    volatile shm_ctl *c = p;
    uint32_t magic = c->magic, nslots = c->nslots;
    uint64_t slot_size = c->slot_size;
    size_t need;
    if (magic != SHM_MAGIC || nslots == 0 || slot_size > SIZE_MAX || !sf_mul_ok((size_t)slot_size, nslots, &need) ||
        !sf_add_ok(need, SHM_CTL_BYTES, &need) || need > len || shm_guard_hit(guard)) {
        shm_guard_del(guard);
        munmap(p, len);
        return sf_fail(err, SF_E_FORMAT, "wire: %s: shm %s has a bad ring header", w->url, seg);
    }
    atomic_store(&((shm_ctl *)p)->reader_pid, (int)getpid());
    shm_unlink(seg); /* mapped by both sides now; nothing left behind if either dies */
    snprintf(s->maps[s->nmaps].seg, sizeof s->maps[0].seg, "%s", seg);
    s->maps[s->nmaps].base = p;
    s->maps[s->nmaps].len = len;
    s->maps[s->nmaps].nslots = nslots;
    s->maps[s->nmaps].slot_size = (size_t)slot_size;
    s->maps[s->nmaps].guard = guard;
    *idx = s->nmaps++;
    return SF_OK;
}

/* Reader: a ring this reader mapped was shrunk under it (a payload read since may have been
 * zeros), or its header no longer says what it said when mapped: the writer is broken or hostile. */
static sf_status shm_reader_check(sf_wire *w, sf_err *err) {
    struct sf_wire_shm *s = w->shm;
    for (int i = 0; i < s->nmaps; i++) {
        if (shm_guard_hit(s->maps[i].guard))
            return sf_fail(err, SF_E_FORMAT, "wire: %s: bad slot reference: shm %s was shrunk under the reader", w->url,
                           s->maps[i].seg);
        volatile const shm_ctl *c = (const shm_ctl *)(const void *)s->maps[i].base;
        if (c->nslots != s->maps[i].nslots || c->slot_size != s->maps[i].slot_size)
            return sf_fail(err, SF_E_FORMAT, "wire: %s: bad slot reference: the ring header of shm %s changed after it was mapped",
                           w->url, s->maps[i].seg);
    }
    return SF_OK;
}

static sf_status shm_parse(sf_wire *w, sf_wire_msg *m, const void **payload, sf_err *err) {
    struct sf_wire_shm *s = w->shm;
    sf_status st;
    if (w->zparts_held < 2 || w->zparts_held > 3)
        return sf_fail(err, SF_E_FORMAT, "wire: %s: control message of %d parts", w->url, w->zparts_held);
    if ((st = sf_wire_header_decode(zmq_msg_data(&w->zparts[0]), zmq_msg_size(&w->zparts[0]), m, err))) return st;
    if ((st = sf_wire_check_size(w, m, err))) return st;
    size_t nb = sf_wire_msg_nbytes(m);
    size_t rlen = zmq_msg_size(&w->zparts[1]);
    *payload = NULL;
    if (rlen == 0) { /* inline */
        size_t got = w->zparts_held == 3 ? zmq_msg_size(&w->zparts[2]) : 0;
        if (got != nb) return sf_fail(err, SF_E_FORMAT, "wire: %s: payload is %zu bytes, header says %zu", m->name, got, nb);
        return nb ? sf_wire_aligned_payload(w, zmq_msg_data(&w->zparts[2]), nb, payload, err) : SF_OK;
    }
    const uint8_t *r = zmq_msg_data(&w->zparts[1]);
    if (rlen < 17 || rlen > 16 + 127 || w->zparts_held != 2) return sf_fail(err, SF_E_FORMAT, "wire: %s: bad slot reference", w->url);
    char seg[128];
    memcpy(seg, r + 16, rlen - 16);
    seg[rlen - 16] = 0;
    uint32_t slot = rd32(r);
    uint64_t size = rd64(r + 8);
    int idx = 0;
    if ((st = shm_map(w, seg, &idx, err))) return st;
    s->held_map = idx; /* release it next time, whatever happens below */
    if (slot >= s->maps[idx].nslots || size != nb || size > s->maps[idx].slot_size)
        return sf_fail(err, SF_E_FORMAT, "wire: %s: bad slot reference: slot %u, %llu bytes (the ring has %u slots of %zu bytes, the header says %zu)",
                       w->url, slot, (unsigned long long)size, s->maps[idx].nslots, s->maps[idx].slot_size, nb);
    const uint8_t *pl = s->maps[idx].base + SHM_CTL_BYTES + (size_t)slot * s->maps[idx].slot_size;
    /* a segment only shrinks from its end: if the slot's last byte is there now, all of it is (a
     * shrink from here on is the guard's, and the next call reports it) */
    if (nb) (void)*(volatile const uint8_t *)(pl + nb - 1);
    if ((st = shm_reader_check(w, err))) return st;
    *payload = nb ? pl : NULL;
    return SF_OK;
}

sf_status sf_wire_shm_recv(sf_wire *w, sf_wire_msg *m, const void **payload, sf_err *err) {
    sf_status st = shm_reader_check(w, err); /* a fault absorbed while the caller read the last payload */
    if (st) return st;
    shm_release(w->shm);
    return sf_wire_zmq_recv_msg(w, m, payload, shm_parse, err);
}

sf_status sf_wire_shm_close(sf_wire *w, sf_err *err) {
    struct sf_wire_shm *s = w->shm;
    sf_status st = SF_OK;
    if (s && w->writer && s->ctl) {
        /* Drain: the segment must outlive every slot the reader has not opened yet. */
        if (s->reserved) {
            sem_post(&s->ctl->free_slots);
            s->reserved = 0;
        }
        while (s->used && !sf_wire_stopped()) {
            int v = 0;
            sem_getvalue(&s->ctl->free_slots, &v);
            if (v >= (int)s->nslots) break;
            if (reader_gone(s->ctl)) {
                w->zpeer_gone = 1;
                st = sf_fail(err, SF_E_IO, "wire: %s: downstream closed", w->url);
                break;
            }
            struct timespec ts = {0, 5 * 1000000L};
            nanosleep(&ts, NULL);
        }
        if (!st) st = shm_writer_check(w, err);
        sem_destroy(&s->ctl->free_slots);
        shm_guard_del(s->guard);
        munmap(s->base, s->map_len);
        shm_unlink(s->seg);
    }
    if (s && !w->writer) {
        shm_release(s);
        for (int i = 0; i < s->nmaps; i++) {
            shm_guard_del(s->maps[i].guard);
            munmap(s->maps[i].base, s->maps[i].len);
        }
    }
    sf_status z = sf_wire_zmq_close(w, err);
    free(s);
    w->shm = NULL;
    return st ? st : z;
}
