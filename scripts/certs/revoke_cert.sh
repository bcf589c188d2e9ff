#!/usr/bin/env bash
# Revokes a client certificate by serial. msgrelay keeps the revocation list in its database and
# re-signs pki/client-ca.crl from it, so this wraps `msgrelay certs revoke` rather than running
# `openssl ca -revoke/-gencrl`, which would keep a second, diverging revocation list.
set -euo pipefail

usage() {
    cat >&2 <<'USAGE'
usage: revoke_cert.sh --data-dir DIR --serial SERIAL [--reason REASON]

  --serial SERIAL   as printed by generate_cert.sh / `openssl x509 -noout -serial` / `msgrelay certs list`
  --reason REASON   RFC 5280 name: keyCompromise, superseded, cessationOfOperation, affiliationChanged, ...

Set MSGRELAY_BIN to the msgrelay binary if it is not on PATH.
USAGE
    exit 2
}

die() { echo "revoke_cert.sh: $*" >&2; exit 1; }

DATA_DIR="" SERIAL="" REASON=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --data-dir) DATA_DIR="${2:-}"; shift 2 ;;
        --serial) SERIAL="${2:-}"; shift 2 ;;
        --reason) REASON="${2:-}"; shift 2 ;;
        -h|--help) usage ;;
        *) echo "unknown argument: $1" >&2; usage ;;
    esac
done
[[ -n "$DATA_DIR" && -n "$SERIAL" ]] || usage
SERIAL="${SERIAL#serial=}"

MSGRELAY="${MSGRELAY_BIN:-$(command -v msgrelay || true)}"
[[ -n "$MSGRELAY" ]] || die "msgrelay not found; put it on PATH or set MSGRELAY_BIN"

ARGS=(certs revoke --serial "$SERIAL" --data-dir "$DATA_DIR")
[[ -n "$REASON" ]] && ARGS+=(--reason "$REASON")
"$MSGRELAY" "${ARGS[@]}"
if command -v openssl >/dev/null && [[ -f "$DATA_DIR/pki/client-ca.crl" ]]; then
    openssl crl -in "$DATA_DIR/pki/client-ca.crl" -noout -nextupdate
fi
