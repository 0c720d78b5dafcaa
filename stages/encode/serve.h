/* serve.h — sf-encode as a resident server (`--serve URL`) and its client (`--server URL`).
 *
 * Mirrors no reference module (the reference loads the text encoder in every process); this
 * lets several pipelines share one loaded tokenizer + umT5 encoder + embedding cache.
 * Protocol (ZeroMQ REQ → REP, every frame pair is a wire header + payload, see wire.h):
 *   request  [hdr, payload]  tensor "prompt" u8 [n_bytes], payload = the UTF-8 prompt
 *                            meta: text_len (int, optional; default and maximum the server's
 *                            --text-len: a longer sequence, a float or a string is refused),
 *                            index (int, optional; echoed back), forward (bool,
 *                            optional: also send the embeddings down the live route, see
 *                            sf_encode_serve_fwd), recache (bool, optional, forwarded), stop
 *                            (bool: end the live route, see sf_encode_client_stop_route)
 *   reply    6 frames        tensor "prompt_embeds" f32 [N, D] (rows ≥ n_tokens are 0),
 *                            meta prompt (cleaned), n_tokens, cache_key, from_cache, [index];
 *                            then tensor "ids" i64 [N] and tensor "mask" i64 [N]
 *            or 2 frames     error {text} with an empty payload (bad request, bad prompt, ...)
 * The server binds tcp://… or ipc://…, answers one request at a time (cache hits never touch
 * the encoder) and returns SF_OK on SIGINT/SIGTERM (sf_wire_install_signals first). A request
 * frame over 64 KiB (4 × SF_ENCODE_MAX_PROMPT) is dropped by libzmq, unanswered (ZMQ_MAXMSGSIZE).
 * The client's REQ socket is relaxed and correlated (ZMQ_REQ_RELAXED, ZMQ_REQ_CORRELATE): a request
 * after one that got no reply is sent normally, and a late reply to an older request is dropped.
 * Tested by tests/bats/sf-encode-serve.bats. */
#ifndef SF_ENCODE_SERVE_H
#define SF_ENCODE_SERVE_H

#include "stages/encode/encode.h"
#include "wire.h"

#define SF_SERVE_MAX_TEXT_LEN 65536

/* SF_E_ARG unless url is tcp://… or ipc://… (checked by serve/open too). */
sf_status sf_encode_url_check(const char *url, sf_err *err);

/* Bind url (tcp://host:port or ipc://path) and answer requests with enc until a stop signal.
 * The encoder weights are opened before binding (so a bound socket means "ready"). An ipc
 * socket file that a live server still answers on is an error (SF_E_IO), a stale one is
 * replaced; the socket file is removed on return. default_text_len: for requests without
 * meta text_len. Returns SF_OK after a stop signal. */
sf_status sf_encode_serve(sf_encoder *enc, const char *url, int64_t default_text_len, sf_err *err);

/* The same with a live route (README "Live"): when fwd is non-NULL, `first` (if non-NULL) is encoded
 * and sent down fwd as a "prompt_embeds" message (meta prompt) before serving, and every request
 * with meta forward: true is, besides the normal reply, sent down fwd too (meta prompt, and recache
 * when the request has it) — sf-view asks, sf-denoise switches. fwd is borrowed. */
sf_status sf_encode_serve_fwd(sf_encoder *enc, const char *url, int64_t default_text_len, sf_wire *fwd,
                              const char *first, sf_err *err);

typedef struct sf_encode_client sf_encode_client;

/* Connect to a server (no tokenizer or weights are loaded here). timeout_s: how long one
 * request may wait for its reply (0 = forever). An ipc URL whose socket file is missing is
 * SF_E_IO "no encode server at ...". Caller closes with sf_encode_client_close. */
sf_status sf_encode_client_open(const char *url, double timeout_s, sf_encode_client **out, sf_err *err);
/* Ask for one prompt (len bytes, at most SF_ENCODE_MAX_PROMPT: else SF_E_ARG, nothing sent). Fills
 * out like sf_encoder_run (all owned; free with sf_encoded_free). A server error reply is SF_E_FORMAT
 * "encode server: <text>"; a missing reply after timeout_s is SF_E_IO (the client stays usable);
 * a stop signal SF_E_STOPPED. */
sf_status sf_encode_client_run(sf_encode_client *c, const char *prompt, size_t len, int64_t seq_len,
                               int64_t index, sf_encoded *out, sf_err *err);
/* The live route (sf_encode_serve_fwd): later requests ask the server to forward their embeddings
 * (forward 1) with meta recache (0/1; -1: not sent). */
void sf_encode_client_route(sf_encode_client *c, int forward, int recache);
/* Ask a live-route server to end the run: it sends a "stop" message down its route (sf-denoise ends
 * an endless video cleanly) and exits. SF_E_FORMAT when the server has no route. */
sf_status sf_encode_client_stop_route(sf_encode_client *c, sf_err *err);
void sf_encode_client_close(sf_encode_client **c);

#endif
