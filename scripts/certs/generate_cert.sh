#!/usr/bin/env bash
# Issues a client certificate with the OpenSSL command line, signed by msgrelay's client CA
# (<data-dir>/pki/client-ca.crt/.key), then registers it with msgrelay so the proxy accepts it.
# Equivalent to `msgrelay certs issue-client`, for operators who want to see every OpenSSL step.
# Windows: generate_cert.ps1 / generate_cert.bat run the same OpenSSL calls.
set -euo pipefail

usage() {
    cat >&2 <<'USAGE'
usage: generate_cert.sh --data-dir DIR --client-id ID --domain DOMAIN [--days N] --out DIR

  --data-dir DIR    msgrelay data directory (holds pki/client-ca.crt and pki/client-ca.key)
  --client-id ID    the client, already created with `msgrelay admin client create`
  --domain DOMAIN   the client's domain (becomes the certificate's DNS name)
  --days N          validity in days (default 825)
  --out DIR         where to write client.crt, client.key and ca.crt

Set MSGRELAY_BIN to the msgrelay binary if it is not on PATH.
USAGE
    exit 2
}

die() { echo "generate_cert.sh: $*" >&2; exit 1; }

DATA_DIR="" CLIENT_ID="" DOMAIN="" DAYS="825" OUT=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --data-dir) DATA_DIR="${2:-}"; shift 2 ;;
        --client-id) CLIENT_ID="${2:-}"; shift 2 ;;
        --domain) DOMAIN="${2:-}"; shift 2 ;;
        --days) DAYS="${2:-}"; shift 2 ;;
        --out) OUT="${2:-}"; shift 2 ;;
        -h|--help) usage ;;
        *) echo "unknown argument: $1" >&2; usage ;;
    esac
done
[[ -n "$DATA_DIR" && -n "$CLIENT_ID" && -n "$DOMAIN" && -n "$OUT" ]] || usage
# The values end up in an OpenSSL subject and config file: allow only what msgrelay itself accepts.
[[ "$CLIENT_ID" =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$ ]] || die "--client-id must be 1-64 letters, digits, '.', '_' or '-'"
[[ "$DOMAIN" =~ ^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$ ]] || die "--domain must be a DNS name"
[[ "$DAYS" =~ ^[1-9][0-9]{0,4}$ ]] || die "--days must be a positive number"
command -v openssl >/dev/null || die "openssl not found; install it (Debian/Ubuntu: apt-get install openssl)"

PKI="$DATA_DIR/pki"
for f in client-ca.crt client-ca.key internal-ca.crt; do
    [[ -f "$PKI/$f" ]] || die "$PKI/$f not found; run 'msgrelay init --data-dir $DATA_DIR' first (this needs the client CA key on this machine)"
done
[[ -e "$OUT/client.key" ]] && die "$OUT/client.key already exists; choose another --out directory"

umask 077
mkdir -p "$OUT"
EXT="$OUT/client.ext"
trap 'rm -f "$EXT" "$OUT/client.csr"' EXIT

# The same profile as `msgrelay certs issue-client`: a TLS client certificate for one client and domain.
cat > "$EXT" <<EXTFILE
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectAltName = DNS:$DOMAIN
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EXTFILE

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$OUT/client.key"
openssl req -new -key "$OUT/client.key" -subj "/O=msgrelay/OU=$DOMAIN/CN=$CLIENT_ID" -out "$OUT/client.csr"
SERIAL="$(openssl rand -hex 16)"
openssl x509 -req -in "$OUT/client.csr" -CA "$PKI/client-ca.crt" -CAkey "$PKI/client-ca.key" \
    -set_serial "0x$SERIAL" -days "$DAYS" -sha256 -extfile "$EXT" -out "$OUT/client.crt"
# ca.crt is the CA that signed the proxy's server certificate: the client verifies the proxy with it.
cp "$PKI/internal-ca.crt" "$OUT/ca.crt"
chmod 644 "$OUT/client.crt" "$OUT/ca.crt"

echo "wrote $OUT/client.crt, $OUT/client.key, $OUT/ca.crt"
openssl x509 -in "$OUT/client.crt" -noout -serial
openssl x509 -in "$OUT/client.crt" -noout -fingerprint -sha256

MSGRELAY="${MSGRELAY_BIN:-$(command -v msgrelay || true)}"
if [[ -n "$MSGRELAY" ]]; then
    "$MSGRELAY" certs register --client-id "$CLIENT_ID" --cert "$OUT/client.crt" --data-dir "$DATA_DIR"
else
    echo "msgrelay is not on PATH (set MSGRELAY_BIN): the proxy refuses this certificate until you register it:"
    echo "  msgrelay certs register --client-id $CLIENT_ID --cert $OUT/client.crt --data-dir $DATA_DIR"
fi
