# shellcheck shell=bash
# flags.sh — sourced by the pipeline scripts (figure4.sh and streaming.sh through
# reference_flags.sh, sink_study.sh directly): the spellings of a long flag that Python's argparse
# (the reference scripts) and the C stages accept, turned into the one each script's own loop reads;
# and every script's --help (sf_usage; each.sh and highframe.sh source it for that alone).
# Tested by tests/bats/pipeline.bats, streaming.bats and sink_study.bats.

# sf_usage: the running script's --help, the comment block at its top (from line 2 up to its first
# line that is not a comment).
sf_usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }

# sf_flags_expand PROG KNOWN... -- ARG...: sets the array sf_flags to ARG... with each long flag in
# the script's --dash-form. KNOWN lists the script's flags in --dash-form, a trailing '=' on those
# that take values (--seed=, --layer-indices=, --no-checkpoint).
#   --flag=value  → --flag value (the value verbatim, even one that starts with --)
#   --under_score → --under-score
#   --lay         → --layer-indices: the start of exactly one KNOWN flag (argparse's abbreviations;
#                   an exact name wins over longer ones). The start of several is an error, exit 2:
#                   "PROG: error: ambiguous option: --c could match --config-path, --checkpoint-path"
#   --no-checkpoint=1, a flag without a value given one: an error, exit 2 (argparse refuses it too)
# Any other word (values, -h, unknown flags) passes unchanged, so the script's loop reports an
# unknown option as it was typed. Call it in the script's own shell (not in $(...)): it exits there.
sf_flags_expand() {
    local prog=$1 w name dn k match takes
    shift
    local known=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do known+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    sf_flags=()
    for w in "$@"; do
        case $w in --?*) ;; *) sf_flags+=("$w"); continue ;; esac
        name=${w%%=*}
        dn=${name//_/-}
        match='' takes=0
        local hits=()
        for k in "${known[@]}"; do
            if [ "${k%=}" = "$dn" ]; then hits=("$k"); break; fi
            case ${k%=} in "$dn"*) hits+=("$k") ;; esac
        done
        if [ ${#hits[@]} -gt 1 ]; then
            local all=${hits[*]%=}
            echo "$prog: error: ambiguous option: $name could match ${all// /, }" >&2
            exit 2
        fi
        if [ ${#hits[@]} -eq 0 ]; then sf_flags+=("$w"); continue; fi
        match=${hits[0]%=}
        [ "$match" != "${hits[0]}" ] && takes=1
        sf_flags+=("$match")
        if [ "$name" != "$w" ]; then
            [ "$takes" = 1 ] || { echo "$prog: error: $name takes no value (got '$w')" >&2; exit 2; }
            sf_flags+=("${w#*=}")
        fi
    done
}
