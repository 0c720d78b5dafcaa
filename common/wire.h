/* wire.h — the sfpipe wire format and its transports (DESIGN.md §4).
 *
 * Mirrors no reference module: the reference runs in one Python process; this is how our stages
 * (sf-encode | sf-denoise | sf-decode) pass tensors between processes, GPUs and hosts.
 * Tested by tests/unit/test_wire.c, tests/bats/sf-wire.bats and tests/fuzz/fuzz_wire.c.
 *
 * ===================================== FRAME SPEC (v1) =====================================
 *
 * A stream is a sequence of messages. Each message is a HEADER (one msgpack map) plus one
 * PAYLOAD (contiguous, little-endian, row-major bytes; empty for `end` and `error`).
 *
 * Header map (string keys; unknown keys are ignored, missing optional keys take defaults):
 *   "v"      uint   1                        required; any other value → SF_E_FORMAT
 *   "type"   str    "tensor" | "end" | "error"  required
 *   "name"   str    ≤ 127 bytes, e.g. "prompt_embeds", "latents", "tap"   (default "")
 *   "dtype"  str    "f32" | "bf16" | "f16" | "i64" | "i32" | "u8"           (tensor: required)
 *   "shape"  array of uint, outermost first (PyTorch order), 0..6 dims       (tensor: required)
 *   "meta"   map str → int | float | str | bool | array of ints              (default {})
 *   "text"   str    the error message (type "error" only)
 *   For "tensor", the payload is exactly numel(shape) × sizeof(dtype) bytes; for "end" and
 *   "error" it is empty. Limits checked on decode: header ≤ SF_WIRE_MAX_HEADER (1 MiB),
 *   each dim ≤ 2^40, payload ≤ 2^40 bytes, ≤ SF_WIRE_MAX_META meta entries, meta keys
 *   ≤ 63 bytes, all strings together ≤ SF_WIRE_ARENA bytes.
 *
 * Byte streams (URL "-", "fd:N", a file path): messages back to back, each
 *   offset 0      4 bytes   magic "SFT1"
 *   offset 4      u32 LE    H = header length in bytes (1 ≤ H ≤ 1 MiB)
 *   offset 8      H bytes   msgpack header
 *   offset 8+H    u64 LE    P = payload length in bytes (must equal numel × dtype size)
 *   offset 16+H   P bytes   payload
 * A stream ends after a message of type "end". EOF at a message boundary without "end" is
 * "upstream closed without end-of-stream" (SF_E_IO); EOF inside a message is SF_E_FORMAT.
 *
 * ZeroMQ (URL "tcp://host:port", "ipc:///path"): DEALER (writer) → ROUTER (reader); each
 * message is one two-part ZeroMQ message [header, payload] (the payload part is empty for
 * end/error). The first peer whose message is valid is the stream's writer; other peers are
 * ignored. On "end" the reader sends the one-frame message "SFACK1" back to that writer; a
 * writer's close waits for it (no ack: SF_E_IO). By default the reader binds and the writer
 * connects; "@tcp://..." forces bind and ">tcp://..." forces connect (CZMQ endpoint syntax).
 * A bind is exactly the host named (names resolved, "*" = every interface with a warning,
 * "route=PEER" = the interface reaching PEER; wire_net.c); with $SF_WIRE_CURVE_KEY tcp uses
 * CURVE. High-water marks are small, so a slow reader blocks the writer (back-pressure)
 * instead of queueing without bound.
 *
 * Shared memory (URL "shm://NAME[?slots=N&slot_mb=M]", NAME = [A-Za-z0-9._-]{1,64}): the
 * writer creates a POSIX shm ring "/sf-NAME-<pid>-<k>" of N slots (default 4, at most 256) of M MiB
 * each, or without slot_mb of the first payload's size rounded up to 1 MiB (test_wire shm_ring
 * covers both). Headers travel over a ZeroMQ ipc control channel
 * "ipc://$TMPDIR/sf-shm-NAME.ctl" (reader binds) as one two-part message [header, ref] where
 * ref is the 16-byte record {u32 LE slot, u32 LE reserved 0, u64 LE size} and the header
 * map carries "shm": segment name. The reader releases a slot when it receives the next
 * message (or closes); a writer with no free slot blocks. Payloads larger than a slot travel
 * inline on the control channel instead (ref part empty, payload as a third part).
 *
 * ================================== ENDPOINT SEMANTICS =====================================
 * - sf_wire_recv returns SF_OK for "tensor" and for "end" (msg->type tells; after "end" every
 *   further recv returns "end" again). An "error" message returns SF_E_STOPPED with
 *   err = "upstream error: <text>" (msg->text holds the text). A stop signal (see
 *   sf_wire_install_signals) returns SF_E_STOPPED "interrupted by SIGINT" (or SIGTERM, SIGHUP). EOF / a vanished
 *   writer before "end" returns SF_E_IO "upstream closed without end-of-stream".
 * - The payload returned by sf_wire_recv is BORROWED: valid until the next sf_wire_recv or
 *   sf_wire_close on that endpoint (zero-copy for zmq and shm: it points into the received
 *   ZeroMQ frame or the shm slot). Copy it if you need it longer.
 * - sf_wire_send BORROWS the payload for the duration of the call only; the call returns once
 *   the transport no longer needs it (ZeroMQ: the zero-copy frame was written to the socket;
 *   shm: copied into a slot — or no copy at all when the payload came from sf_wire_reserve).
 * - A file-path writer writes a temp file and renames it over the path on sf_wire_close only
 *   when "end" was sent; otherwise the temp file is removed (no partial outputs).
 * - Writers to a vanished reader (EPIPE, dead shm reader) fail with SF_E_IO "downstream
 *   closed". */
#ifndef SF_WIRE_H
#define SF_WIRE_H

#include "sf.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SF_WIRE_VERSION 1
#define SF_WIRE_MAGIC "SFT1"
#define SF_WIRE_MAX_HEADER (1u << 20)     /* 1 MiB */
#define SF_WIRE_MAX_PAYLOAD (1ull << 40)  /* 1 TiB: sanity cap */
#define SF_WIRE_MAX_META 32
#define SF_WIRE_ARENA 32768               /* bytes for meta strings + int arrays */
/* The wording of the two failures a reader only passes on from upstream (ENDPOINT SEMANTICS). */
#define SF_WIRE_UPSTREAM_ERROR "upstream error: "
#define SF_WIRE_UPSTREAM_CLOSED "upstream closed without end-of-stream"

typedef enum sf_wire_type { SF_WIRE_TENSOR = 1, SF_WIRE_END = 2, SF_WIRE_ERROR = 3 } sf_wire_type;

typedef enum sf_wire_meta_kind {
    SF_META_INT = 1,
    SF_META_FLOAT,
    SF_META_STR,
    SF_META_BOOL,
    SF_META_INTS, /* array of int64 */
} sf_wire_meta_kind;

typedef struct sf_wire_meta {
    char key[64];
    sf_wire_meta_kind kind;
    int64_t i;        /* INT, BOOL (0/1); INTS: element count */
    double f;         /* FLOAT */
    uint32_t off;     /* STR: byte offset of the NUL-terminated string in arena;
                         INTS: byte offset of the int64 array in arena (8-aligned) */
} sf_wire_meta;

/* One message header, parsed. Self-contained (no pointers): copy it freely with `=`,
 * no free needed. Initialise with sf_wire_msg_init / sf_wire_msg_tensor. */
typedef struct sf_wire_msg {
    sf_wire_type type;
    char name[128];
    sf_dtype dtype;              /* tensor only */
    int ndim;                    /* 0..SF_MAX_DIMS */
    int64_t shape[SF_MAX_DIMS];  /* outermost first */
    char text[1024];             /* error only */
    int n_meta;
    sf_wire_meta meta[SF_WIRE_MAX_META];
    uint32_t arena_used;
    union {
        char arena[SF_WIRE_ARENA]; /* meta strings and int arrays (see sf_wire_meta.off) */
        int64_t arena_align_;
    };
} sf_wire_msg;

/* ---- messages ---- */
void sf_wire_msg_init(sf_wire_msg *m, sf_wire_type type, const char *name);
/* A tensor message with t's name, dtype and shape (t's strides are not looked at; the payload
 * you send must be contiguous). dtype must be one of the six wire dtypes (else SF_E_UNSUPPORTED). */
sf_status sf_wire_msg_tensor(sf_wire_msg *m, const char *name, const sf_tensor *t, sf_err *err);
/* Payload bytes of a message (numel × dtype size; 0 for end/error). */
size_t sf_wire_msg_nbytes(const sf_wire_msg *m);
/* A borrowed tensor view of a received payload (contiguous, host). */
sf_tensor sf_wire_msg_view(const sf_wire_msg *m, const void *payload);

/* Meta setters: replace an existing key. SF_E_ARG when full / key too long / arena full. */
sf_status sf_wire_meta_set_int(sf_wire_msg *m, const char *key, int64_t v, sf_err *err);
sf_status sf_wire_meta_set_double(sf_wire_msg *m, const char *key, double v, sf_err *err);
sf_status sf_wire_meta_set_str(sf_wire_msg *m, const char *key, const char *v, sf_err *err);
sf_status sf_wire_meta_set_bool(sf_wire_msg *m, const char *key, int v, sf_err *err);
sf_status sf_wire_meta_set_ints(sf_wire_msg *m, const char *key, const int64_t *v, size_t n,
                                sf_err *err);
/* Meta getters: return `dflt` / NULL when the key is absent or of another kind
 * (int and bool read as int; int reads as double). Strings are borrowed from m. */
const sf_wire_meta *sf_wire_meta_find(const sf_wire_msg *m, const char *key);
int64_t sf_wire_meta_int(const sf_wire_msg *m, const char *key, int64_t dflt);
double sf_wire_meta_double(const sf_wire_msg *m, const char *key, double dflt);
/* A rate a peer sent (frames per second and the like): the value when it is finite and in (0, 1e9), else 0
 * (absent, another kind, NaN, negative, absurd: "not said"). */
double sf_wire_meta_rate(const sf_wire_msg *m, const char *key);
const char *sf_wire_meta_str(const sf_wire_msg *m, const char *key); /* NULL when absent */
/* Array of ints: pointer into m (borrowed) and count in *n; NULL when absent. */
const int64_t *sf_wire_meta_ints(const sf_wire_msg *m, const char *key, size_t *n);
/* One-line description "tensor latents bf16 [1, 3, 16, 60, 104] {block: 0, prompt: "..."}". */
const char *sf_wire_msg_str(const sf_wire_msg *m, char *buf, size_t n);

/* ---- header codec (msgpack) ---- */
/* Encode m's header into a malloc'd buffer (caller frees). */
sf_status sf_wire_header_encode(const sf_wire_msg *m, void **buf, size_t *len, sf_err *err);
/* Decode and validate a header (SF_E_FORMAT with one line on anything malformed). */
sf_status sf_wire_header_decode(const void *buf, size_t len, sf_wire_msg *m, sf_err *err);
/* Parse one byte-stream frame from memory: on SF_OK, *used = frame bytes consumed and
 * *payload points into buf (borrowed; NOT necessarily aligned). SF_E_FORMAT on any malformed or truncated frame
 * (used by the fuzzer and by tests). */
sf_status sf_wire_frame_parse(const void *buf, size_t len, sf_wire_msg *m, const void **payload,
                              size_t *used, sf_err *err);

/* ---- endpoints ---- */
typedef struct sf_wire sf_wire;

/* Open a reader / writer for a URL: "-" (stdin / stdout), "fd:N", "tcp://host:port",
 * "ipc:///path", "shm://name[?slots=N&slot_mb=M]", "@url"/">url" (force bind/connect),
 * or a file path. Caller closes with sf_wire_close. The plain forms use the default options. */
sf_status sf_wire_open_reader(const char *url, sf_wire **out, sf_err *err);
sf_status sf_wire_open_writer(const char *url, sf_wire **out, sf_err *err);

#define SF_WIRE_TIMEOUT_S 600.0               /* default sf_wire_opts.timeout_s (a stage's --timeout) */
#define SF_WIRE_MAX_MSG_DEFAULT (1ull << 30)  /* default sf_wire_opts.max_payload: 1 GiB */
typedef struct sf_wire_opts {
    /* tcp/ipc/shm: seconds an endpoint waits with no peer: a reader for a writer to connect (a
     * peer that completes the ZeroMQ handshake; one that connects and leaves does not count), a
     * writer for its reader to connect or to come back. A connected peer proves it is alive by
     * ZeroMQ heartbeats instead (dead after 10 s of silence). 0: SF_WIRE_TIMEOUT_S; < 0: forever. */
    double timeout_s;
    /* readers: the largest payload this reader takes (0: SF_WIRE_MAX_MSG_DEFAULT). A header that
     * announces more is refused before anything is allocated, and ZeroMQ drops a peer whose
     * frame is bigger (ZMQ_MAXMSGSIZE) before buffering it. */
    size_t max_payload;
} sf_wire_opts;
sf_status sf_wire_open_reader_opts(const char *url, const sf_wire_opts *o, sf_wire **out, sf_err *err);
sf_status sf_wire_open_writer_opts(const char *url, const sf_wire_opts *o, sf_wire **out, sf_err *err);

/* Send one message. payload: sf_wire_msg_nbytes(msg) contiguous bytes (NULL for end/error),
 * borrowed for the call only. Blocks while the reader is behind (back-pressure); returns
 * SF_E_STOPPED on a stop signal. */
sf_status sf_wire_send(sf_wire *w, const sf_wire_msg *msg, const void *payload, sf_err *err);
/* Convenience: send a host tensor (any strides; non-contiguous ones are packed first)
 * with the given meta (may be NULL: no meta). */
sf_status sf_wire_send_tensor(sf_wire *w, const char *name, const sf_tensor *t,
                              const sf_wire_msg *meta_from, sf_err *err);
sf_status sf_wire_send_end(sf_wire *w, sf_err *err);
sf_status sf_wire_send_error(sf_wire *w, const char *text, sf_err *err);
/* Optional zero-copy for shm writers: a buffer of nbytes that the next sf_wire_send may take
 * as its payload without a copy (fill it, then pass it as `payload`). Other transports
 * return a per-endpoint scratch buffer (valid until the next reserve/send/close). */
sf_status sf_wire_reserve(sf_wire *w, size_t nbytes, void **buf, sf_err *err);

/* Receive one message (see ENDPOINT SEMANTICS above). *payload is borrowed until the next
 * recv/close; NULL for end/error. */
sf_status sf_wire_recv(sf_wire *r, sf_wire_msg *msg, const void **payload, sf_err *err);

/* Flush, commit (file writers that sent end) and release everything; *w = NULL. Safe with
 * *w == NULL. Returns the first error of the flush/commit. */
sf_status sf_wire_close(sf_wire **w, sf_err *err);

/* The URL's transport name: "stdio", "fd", "file", "tcp", "ipc", "shm". */
const char *sf_wire_kind(const sf_wire *w);

/* ---- signals ---- */
/* The wire's names for common/stop.h (sf_stop_install, sf_stopped, sf_stop_request): SIGINT,
 * SIGTERM and SIGHUP set a stop flag (volatile sig_atomic_t) and write to a self-pipe that every
 * blocking wire call polls, so blocked sends/receives return SF_E_STOPPED promptly. Also
 * ignores SIGPIPE (writes to a closed pipe fail with "downstream closed"). Idempotent. */
sf_status sf_wire_install_signals(sf_err *err);
/* 1 once SIGINT/SIGTERM was received (or sf_wire_request_stop was called). */
int sf_wire_stopped(void);
/* 1 when an error message (a stage's last line, say) only passes on an upstream stage's failure: it
 * holds SF_WIRE_UPSTREAM_ERROR or SF_WIRE_UPSTREAM_CLOSED. sf-run blames the cause, not such a relay. */
int sf_wire_is_relayed(const char *msg);
/* 1 when k is what $SF_WIRE_CURVE_KEY must hold: a Z85 CURVE secret key (40 characters). The wire's check,
 * and sf-run --curve-key-env's before any stage starts. */
int sf_wire_curve_key_valid(const char *k);
/* Set the stop flag by hand (tests, error paths). Async-signal-safe. */
void sf_wire_request_stop(void);

#ifdef __cplusplus
}
#endif
#endif
