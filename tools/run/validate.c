/* validate.c — sf-run spec values are data, never syntax: what runspec.c checks before a value
 * reaches a command line, ssh or the YAML parser.
 *
 * - Control characters (bytes < 0x20 and 0x7f) are refused in overrides (a newline in
 *   `enc.prompt=$'x\nprogram: sh'` would add a YAML key), names, hosts, devices and programs;
 *   spec arg values may hold newlines and tabs (a block-scalar prompt), nothing else.
 * - An arg value the stage would read as a flag ("--out=...", "-x") is refused.
 * - Hosts are "[user@]name": a DNS name, an IPv4 address or a bracketed IPv6 address, never
 *   starting with '-' (`host: "-oProxyCommand=..."` would be an ssh option); ssh gets them after
 *   "--" as well.
 * Mirrors no reference module. Tested by tests/unit/test_runspec.c (values_are_data) and
 * tests/bats/net-edge.bats. */
#define _POSIX_C_SOURCE 200809L
#include "runspec.h"

#include <string.h>

/* The first control character of v (allowing \n and \t when text), or -1. */
static int bad_char(const char *v, int text) {
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if ((*p < 0x20 || *p == 0x7f) && !(text && (*p == '\n' || *p == '\t'))) return *p;
    return -1;
}

sf_status sf_run_check_value(const char *what, const char *v, int text, sf_err *err) {
    int c = bad_char(v, text);
    if (c >= 0) return sf_fail(err, SF_E_ARG, "%s: control character 0x%02x is not allowed in a value", what, c);
    return SF_OK;
}

sf_status sf_run_check_arg(const char *what, const char *v, sf_err *err) {
    sf_status s = sf_run_check_value(what, v, 1, err);
    if (s) return s;
    /* the stages' parser (common/cli.c) takes "-x..." / "--x..." as a flag, "-1", "-.5", "-" as values */
    if (v[0] == '-' && v[1] && !((v[1] >= '0' && v[1] <= '9') || v[1] == '.'))
        return sf_fail(err, SF_E_ARG, "%s: value '%.40s' would be read as a flag", what, v);
    return SF_OK;
}

static int name_char(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

sf_status sf_run_check_host(const char *what, const char *host, sf_err *err) {
    sf_status s = sf_run_check_value(what, host, 0, err);
    if (s) return s;
    const char *at = strchr(host, '@'), *h = at ? at + 1 : host;
    size_t hl = strlen(h);
    const char *why = NULL;
    if (host[0] == '-') why = "starts with '-'";
    for (const char *p = host; !why && at && p < at; p++)
        if (!name_char(*p) && *p != '.' && *p != '_' && *p != '-') why = "bad character in the user name";
    if (!why && at && at == host) why = "empty user name";
    if (!why && (hl == 0 || hl > 253)) why = "host name of 1..253 characters expected";
    if (!why && h[0] == '[') { /* [IPv6] */
        if (h[hl - 1] != ']') why = "unterminated '['";
        for (const char *p = h + 1; !why && p < h + hl - 1; p++)
            if (!name_char(*p) && *p != ':' && *p != '.') why = "bad character in an IPv6 address";
    } else if (!why) {
        if (h[0] == '-' || h[0] == '.') why = "host name starts with '-' or '.'";
        for (const char *p = h; !why && *p; p++)
            if (!name_char(*p) && *p != '.' && *p != '-' && *p != '_') why = "bad character in the host name";
    }
    if (why) return sf_fail(err, SF_E_ARG, "%s: '%.80s' is not a host name ([user@]name, address or [IPv6]): %s", what, host, why);
    return SF_OK;
}

sf_status sf_run_check_override(const char *ov, sf_err *err) {
    const char *eq = strchr(ov, '=');
    sf_status s = sf_run_check_value("override", ov, 0, err);
    if (s) return s;
    for (const char *p = ov; eq && p < eq; p++)
        if (!name_char(*p) && *p != '_' && *p != '-' && *p != '.')
            return sf_fail(err, SF_E_ARG, "override '%.80s': a key holds only letters, digits, '_', '-' and '.'", ov);
    return SF_OK;
}
