#!/usr/bin/env bash
# The benchmark suite (docs/benchmarks.md; not part of the test command). Builds release, starts
# private Redis (AOF, appendfsync always) and MariaDB instances and the relay in both modes
# (production: one process per role on Redis + MariaDB; embedded: `msgrelay up`), measures the
# ceilings beside them (Redis XADD; MariaDB 100-row upsert), runs load with an independent
# generator (oha) and with `msgrelay bench`, then writes one JSON file and prints a table.
#
#   scripts/bench.sh [--duration 30] [--modes "production embedded"] [--out bench.json]
#                    [--backlog 1000000] [--no-build] [--no-oha]
#   (OHA=path and MSGRELAY=path pick the load generator and the binary under test)
#
# --backlog N adds the backlog drain (production): N messages queued with the main server
# stopped, then started; drain rate and per-role RSS (start and peak) during the drain.
# Everything runs in $WORKDIR (default /tmp/msgrelay-bench); nothing outside it is touched.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=30; MODES="production embedded"; OUT=""; BACKLOG=0; BUILD=1; USE_OHA=1
CONN=64; BODY=200; RATE=1000; RATE_SECS=20
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --modes) MODES=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --backlog) BACKLOG=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --no-oha) USE_OHA=0; shift ;;
    *) echo "unknown option $1 (see the header of $0)" >&2; exit 64 ;;
  esac
done

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
M="${MSGRELAY:-$CARGO_TARGET_DIR/release/msgrelay}"   # MSGRELAY=path compares another build
W="${WORKDIR:-/tmp/msgrelay-bench}"
OUT="${OUT:-$W/results.json}"
RESULTS="$W/results.txt"   # key=value lines, turned into JSON at the end
log() { printf '\n==> %s\n' "$*" >&2; }
put() { echo "$1=$2" >> "$RESULTS"; }

if [ "$BUILD" = 1 ]; then log "cargo build --release"; cargo build --release -p msgrelay; fi
[ -x "$M" ] || { echo "no release binary at $M (drop --no-build)" >&2; exit 1; }
OHA="${OHA:-$(command -v oha || true)}"
if [ "$USE_OHA" = 1 ] && [ -z "$OHA" ]; then
  log "installing oha (cargo install oha --locked)"
  cargo install oha --locked
  OHA="$(command -v oha || echo "$HOME/.cargo/bin/oha")"
fi

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$W/redis.pid" ] && kill "$(cat "$W/redis.pid")" 2>/dev/null || true
  [ -f "$W/ceil-redis.pid" ] && kill "$(cat "$W/ceil-redis.pid")" 2>/dev/null || true
  [ -f "$W/my.pid" ] && kill "$(cat "$W/my.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT
rm -rf "$W"; mkdir -p "$W"; : > "$RESULTS"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

put machine.cpus "$(nproc)"
put machine.cpu "\"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)\""
put machine.commit "\"$(git rev-parse --short HEAD 2>/dev/null || echo unknown)\""
put machine.started "\"$(date -u +%FT%TZ)\""
put machine.load_at_start "\"$(cut -d' ' -f1-3 /proc/loadavg)\""

# --- private servers -------------------------------------------------------------------------
RP=$(free_port); CRP=$(free_port); DP=$(free_port)
start_redis() { # port pidfile dir
  mkdir -p "$3"
  redis-server --port "$1" --bind 127.0.0.1 --dir "$3" --save "" --appendonly yes --appendfsync always \
    --daemonize yes --logfile "$3/redis.log" --pidfile "$2"
  for _ in $(seq 100); do redis-cli -p "$1" ping >/dev/null 2>&1 && return; sleep 0.1; done
  echo "redis-server on $1 did not start" >&2; exit 1
}
start_mariadb() {
  mariadb-install-db --no-defaults --datadir="$W/db" --auth-root-authentication-method=normal --skip-test-db --user=root >/dev/null 2>&1
  /usr/sbin/mariadbd --no-defaults --datadir="$W/db" --socket="$W/my.sock" --pid-file="$W/my.pid" --log-error="$W/my.err" \
    --port="$DP" --bind-address=127.0.0.1 --skip-name-resolve --user=root --innodb-buffer-pool-size=512M >/dev/null 2>&1 &
  for _ in $(seq 200); do mariadb --no-defaults --protocol=TCP -h127.0.0.1 -P"$DP" -uroot -e 'select 1' >/dev/null 2>&1 && return; sleep 0.2; done
  echo "mariadbd did not start: $(tail -5 "$W/my.err")" >&2; exit 1
}
sql() { mariadb --no-defaults --protocol=TCP -h127.0.0.1 -P"$DP" -uroot -N "$@"; }

# --- ceilings ----------------------------------------------------------------------------------
ceilings() {
  log "ceiling: redis-benchmark XADD, AOF always"
  start_redis "$CRP" "$W/ceil-redis.pid" "$W/ceil-redis"
  local r
  r=$(redis-benchmark -p "$CRP" -n 100000 -c 50 -d 300 -q XADD s '*' payload __data__ 2>/dev/null | tr '\r' '\n' | grep -o '[0-9.]* requests per second' | tail -1 | awk '{print $1}')
  put ceiling.xadd_50c_300b_per_s "${r:-0}"
  r=$(redis-benchmark -p "$CRP" -n 100000 -c 64 -P 1 -d 300 -q XADD s2 '*' payload __data__ 2>/dev/null | tr '\r' '\n' | grep -o '[0-9.]* requests per second' | tail -1 | awk '{print $1}')
  put ceiling.xadd_64c_300b_per_s "${r:-0}"
  redis-cli -p "$CRP" shutdown nosave >/dev/null 2>&1 || true; rm -f "$W/ceil-redis.pid"

  log "ceiling: MariaDB 100-row INSERT ... ON DUPLICATE KEY UPDATE, one transaction each"
  sql -e 'CREATE DATABASE ceil'
  sql ceil < crates/store/migrations/mysql/0001_init.sql
  python3 - "$W/upsert.sql" <<'PY'
import os, sys, uuid
body = "X'" + os.urandom(230).hex() + "'"
with open(sys.argv[1], "w") as f:
    for _ in range(300):
        rows = ",".join(f"('{uuid.uuid4()}','demo',{body},X'00112233445566778899',REPEAT('a',64),'k1','delivered',1,1,2,1,3)" for _ in range(100))
        f.write("INSERT INTO messages (id, client_id, encrypted_body, encrypted_sender, sender_number_hashed, key_id, status, "
                "created_at, queued_at, delivered_at, attempt_count, updated_at) VALUES " + rows +
                " ON DUPLICATE KEY UPDATE attempt_count = GREATEST(attempt_count, VALUES(attempt_count)), status = 'delivered';\n")
PY
  local t0 t1
  t0=$(date +%s.%N); sql ceil < "$W/upsert.sql"; t1=$(date +%s.%N)
  put ceiling.mariadb_upsert_rows_per_s "$(python3 -c "print(round(30000/($t1-$t0)))")"
  sql -e 'DROP DATABASE ceil'
}

# --- the relay ---------------------------------------------------------------------------------
ready() { # log file -> the ready line's value for key $2
  for _ in $(seq 600); do
    local line; line=$(grep -m1 '^msgrelay ready:' "$1" 2>/dev/null || true)
    if [ -n "$line" ]; then echo "$line" | tr ' ' '\n' | grep "^$2=" | cut -d= -f2-; return; fi
    sleep 0.1
  done
  echo "no ready line in $1: $(tail -5 "$1")" >&2; exit 1
}
port_of() { echo "${1##*:}"; }
metric() { # ops-url name -> summed value
  curl -s "$1/metrics" | awk -v n="$2" '$1 == n || index($1, n"{") == 1 {s += $2} END {printf "%d\n", s}'
}
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# Load with oha against the proxy: $1 = prefix for the results, $2 = proxy url, $3 = bundle dir,
# $4 = ops url(s) counting accepted, $5 = ops url counting delivered.
body_json() { python3 -c "import json; print(json.dumps({'sender_number': '+15551234567', 'message_body': 'x' * $BODY}))"; }
drain_wait() { # delivered-ops-url target-count timeout -> seconds waited
  local t0; t0=$(date +%s.%N)
  for _ in $(seq $(( $3 * 10 ))); do
    [ "$(metric "$1" msgrelay_messages_delivered_total)" -ge "$2" ] && break
    sleep 0.1
  done
  python3 -c "print(round($(date +%s.%N) - $t0, 2))"
}
run_oha() {
  local key=$1 url=$2 b=$3 acc_ops=$4 del_ops=$5
  [ "$USE_OHA" = 1 ] || return 0
  log "$key: oha, $CONN connections, ${DURATION} s, ${BODY}-character bodies"
  local a0 d0; a0=$(metric "$acc_ops" msgrelay_messages_accepted_total); d0=$(metric "$del_ops" msgrelay_messages_delivered_total)
  local t0; t0=$(date +%s.%N)
  "$OHA" -z "${DURATION}s" -c "$CONN" --no-tui --output-format json -m POST -H 'Content-Type: application/json' \
    -d "$(body_json)" --cacert "$b/ca.crt" --cert "$b/client.crt" --key "$b/client.key" "$url/api/v1/messages" > "$W/$key.oha.json" 2> "$W/$key.oha.err" || true
  local t1; t1=$(date +%s.%N)
  local acc; acc=$(( $(metric "$acc_ops" msgrelay_messages_accepted_total) - a0 ))
  local drain; drain=$(drain_wait "$del_ops" $(( d0 + acc )) 300)
  local del; del=$(( $(metric "$del_ops" msgrelay_messages_delivered_total) - d0 ))
  put "$key.oha.accepted" "$acc"
  put "$key.oha.delivered" "$del"
  put "$key.oha.accepted_per_s" "$(python3 -c "print(round($acc/($t1-$t0)))")"
  put "$key.oha.delivered_per_s" "$(python3 -c "print(round($del/($t1-$t0+$drain)))")"
  put "$key.oha.drain_s" "$drain"
  python3 - "$W/$key.oha.json" "$key" >> "$RESULTS" <<'PY'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except Exception:
    sys.exit(0)
lat = d.get("latencyPercentiles", {})
print(f"{sys.argv[2]}.oha.p50_ms={round(lat.get('p50', 0) * 1000, 2)}")
print(f"{sys.argv[2]}.oha.p99_ms={round(lat.get('p99', 0) * 1000, 2)}")
codes = d.get("statusCodeDistribution", {})
print(f"{sys.argv[2]}.oha.non_202={sum(v for k, v in codes.items() if k != '202')}")
print(f"{sys.argv[2]}.oha.transport_errors={sum(d.get('errorDistribution', {}).values())}")
PY
}
# `msgrelay bench` at full speed or at --rate: $1 key, $2 url, $3 bundle, $4 delivered-ops, extra args.
run_bench() {
  local key=$1 url=$2 b=$3 del_ops=$4; shift 4
  log "$key: msgrelay bench $*"
  "$M" bench --url "$url" --cert "$b/client.crt" --key "$b/client.key" --ca "$b/ca.crt" --concurrency "$CONN" \
    --body-chars "$BODY" --metrics-url "$del_ops/metrics" --drain-timeout 300 "$@" > "$W/$key.bench.out" 2>/dev/null
  grep -v '^\s*$' "$W/$key.bench.out" | grep -E '^(sent|errors|accepted|latency|delivered|drain):' >&2 || true
  python3 - "$W/$key.bench.out" "$key" >> "$RESULTS" <<'PY'
import re, sys
text = open(sys.argv[1]).read(); k = sys.argv[2] + ".bench"
def num(pattern):
    m = re.search(pattern, text)
    return m.group(1) if m else "0"
fields = {
    "accepted": r"sent:\s+(\d+) accepted",
    "errors": r"accepted, (\d+) errors",
    "accepted_per_s": r"accepted:\s+(\d+) msgs/s",
    "p50_ms": r"p50 ([\d.]+) ms",
    "p99_ms": r"p99 ([\d.]+) ms",
    "delivered": r"delivered:\s+(\d+) end to end",
    "delivered_per_s": r"= (\d+) msgs/s",
    "drain_s": r"drain:\s+([\d.]+) s",
}
for name, pattern in fields.items():
    print(k + "." + name + "=" + num(pattern))
PY
}
# p99 of the end-to-end histogram between two /metrics snapshots.
e2e_p99() { # before-file after-file
  python3 - "$1" "$2" <<'PY'
import re, sys
def buckets(path):
    out = {}
    for line in open(path):
        m = re.match(r'msgrelay_end_to_end_latency_seconds_bucket\{le="([^"]+)"\} (\S+)', line)
        if m:
            out[float(m.group(1))] = float(m.group(2))
    return out
b, a = buckets(sys.argv[1]), buckets(sys.argv[2])
les = sorted(a)
delta = [(le, a[le] - b.get(le, 0)) for le in les]
total = delta[-1][1] if delta else 0
for le, n in delta:
    if total and n >= 0.99 * total:
        print(round(le * 1000, 1)); break
else:
    print(0)
PY
}
# Fixed rate latency: ingest p99 from msgrelay bench, accepted-to-stored p99 from the histogram.
run_rate() { # key url bundle delivered-ops
  curl -s "$4/metrics" > "$W/$1.e2e.before"
  run_bench "$1.rate$RATE" "$2" "$3" "$4" --rate "$RATE" --duration "$RATE_SECS"
  curl -s "$4/metrics" > "$W/$1.e2e.after"
  put "$1.rate$RATE.e2e_p99_ms" "$(e2e_p99 "$W/$1.e2e.before" "$W/$1.e2e.after")"
}
cpu_report() { # key "name:pid ..." before|after
  for np in $2; do put "$1.cpu_ticks_$3.${np%%:*}" "$(cpu_ticks "${np##*:}")"; done
}

common_env() {
  # No backpressure while measuring (binaries older than queue.max_depth do not know the key).
  if grep -qa max_depth "$M"; then export MSGRELAY_QUEUE__MAX_DEPTH=0; fi
  export MSGRELAY_PROXY__LISTEN=127.0.0.1:0 MSGRELAY_SERVER__LISTEN=127.0.0.1:0 MSGRELAY_PORTAL__LISTEN=127.0.0.1:0
  export MSGRELAY_OPS__LISTEN=127.0.0.1:0 MSGRELAY_LOG__DIR= MSGRELAY_LOG__LEVEL=${LOG_LEVEL:-info}
}

production() {
  log "production: Redis (AOF always) + MariaDB, one process per role"
  start_redis "$RP" "$W/redis.pid" "$W/redis"
  start_mariadb
  ceilings
  sql -e 'CREATE DATABASE msgrelay CHARACTER SET utf8mb4 COLLATE utf8mb4_bin'
  (
    common_env
    export MSGRELAY_DATA_DIR="$W/prod" MSGRELAY_QUEUE__BACKEND=redis MSGRELAY_QUEUE__REDIS_URL="redis://127.0.0.1:$RP/0" \
      MSGRELAY_DATABASE__URL="mysql://root@127.0.0.1:$DP/msgrelay"
    "$M" init --demo > "$W/prod-init.log" 2>&1
    "$M" server > "$W/server.log" 2>&1 & echo $! > "$W/server.pid"
    local S; S=$(port_of "$(ready "$W/server.log" server)")
    export MSGRELAY_PROXY__MAIN_SERVER_URL="https://localhost:$S" MSGRELAY_WORKER__MAIN_SERVER_URL="https://localhost:$S"
    export MSGRELAY_SERVER__LISTEN="127.0.0.1:$S"
    "$M" proxy > "$W/proxy.log" 2>&1 & echo $! > "$W/proxy.pid"
    "$M" worker > "$W/worker.log" 2>&1 & echo $! > "$W/worker.pid"
    local P PO WO; P=$(port_of "$(ready "$W/proxy.log" proxy)"); PO=$(ready "$W/proxy.log" ops); WO=$(ready "$W/worker.log" ops)
    local url="https://localhost:$P" b="$W/prod/clients/demo"
    local procs="server:$(cat "$W/server.pid") proxy:$(cat "$W/proxy.pid") worker:$(cat "$W/worker.pid") redis:$(cat "$W/redis.pid") mariadb:$(cat "$W/my.pid")"
    put production.load_before_oha "\"$(cut -d' ' -f1-3 /proc/loadavg)\""
    cpu_report production.oha "$procs" before
    run_oha production "$url" "$b" "$PO" "$WO"
    cpu_report production.oha "$procs" after
    put production.load_before_bench "\"$(cut -d' ' -f1-3 /proc/loadavg)\""
    cpu_report production.bench "$procs" before
    run_bench production "$url" "$b" "$WO" --duration "$DURATION"
    cpu_report production.bench "$procs" after
    run_rate production "$url" "$b" "$WO"
    put production.queue_left "$(redis-cli -p "$RP" XLEN msgrelay:stream)"
    put production.rows "$(sql -e 'SELECT COUNT(*) FROM msgrelay.messages')"
    put production.rows_delivered "$(sql -e "SELECT COUNT(*) FROM msgrelay.messages WHERE status = 'delivered'")"
    put production.accepted_total "$(metric "$PO" msgrelay_messages_accepted_total)"
    if [ "$BACKLOG" -gt 0 ]; then backlog "$url" "$b" "$S" "$WO"; fi
    kill "$(cat "$W/proxy.pid")" "$(cat "$W/worker.pid")" "$(cat "$W/server.pid")" 2>/dev/null || true
    wait 2>/dev/null || true
  )
  redis-cli -p "$RP" shutdown nosave >/dev/null 2>&1 || true; rm -f "$W/redis.pid"
  kill "$(cat "$W/my.pid")" 2>/dev/null || true; rm -f "$W/my.pid"
}

# Item 5: N messages queued while the main server is down, then the drain with RSS per role.
backlog() { # url bundle server-port worker-ops
  log "backlog: $BACKLOG messages with the main server stopped"
  kill "$(cat "$W/server.pid")"; wait "$(cat "$W/server.pid")" 2>/dev/null || true
  local d0; d0=$(metric "$4" msgrelay_messages_delivered_total)
  "$M" bench --url "$1" --cert "$2/client.crt" --key "$2/client.key" --ca "$2/ca.crt" --concurrency "$CONN" \
    --body-chars "$BODY" --count "$BACKLOG" > "$W/backlog.fill.out" 2>/dev/null
  local queued; queued=$(redis-cli -p "$RP" XLEN msgrelay:stream)
  put backlog.queued "$queued"
  put backlog.redis_used_memory_mb "$(redis-cli -p "$RP" info memory | awk -F: '/^used_memory:/ {printf "%d", $2/1048576}')"
  "$M" server > "$W/server2.log" 2>&1 & echo $! > "$W/server.pid"
  ready "$W/server2.log" server > /dev/null
  local t0; t0=$(date +%s.%N)
  local pids="server:$(cat "$W/server.pid") proxy:$(cat "$W/proxy.pid") worker:$(cat "$W/worker.pid")"
  for np in $pids; do put "backlog.rss_start_mb.${np%%:*}" "$(( $(rss_kb "${np##*:}") / 1024 ))"; done
  declare -A peak=()
  while [ "$(redis-cli -p "$RP" XLEN msgrelay:stream)" -gt 0 ]; do
    for np in $pids; do
      local r; r=$(rss_kb "${np##*:}"); [ "$r" -gt "${peak[${np%%:*}]:-0}" ] && peak[${np%%:*}]=$r
    done
    sleep 1
  done
  local secs; secs=$(python3 -c "print(round($(date +%s.%N) - $t0, 1))")
  put backlog.drain_s "$secs"
  put backlog.drain_per_s "$(python3 -c "print(round($queued/$secs))")"
  for np in $pids; do put "backlog.rss_peak_mb.${np%%:*}" "$(( ${peak[${np%%:*}]:-0} / 1024 ))"; done
}

embedded() {
  log "embedded: msgrelay up (SQLite queue and store)"
  (
    common_env
    "$M" up --data-dir "$W/emb" > "$W/up.log" 2>&1 & echo $! > "$W/up.pid"
    local P O; P=$(port_of "$(ready "$W/up.log" proxy)"); O=$(ready "$W/up.log" ops)
    local url="https://localhost:$P" b="$W/emb/clients/demo" procs="up:$(cat "$W/up.pid")"
    put embedded.load_before_oha "\"$(cut -d' ' -f1-3 /proc/loadavg)\""
    cpu_report embedded.oha "$procs" before
    run_oha embedded "$url" "$b" "$O" "$O"
    cpu_report embedded.oha "$procs" after
    put embedded.load_before_bench "\"$(cut -d' ' -f1-3 /proc/loadavg)\""
    run_bench embedded "$url" "$b" "$O" --duration "$DURATION"
    run_rate embedded "$url" "$b" "$O"
    put embedded.queue_left "$(sqlite3 "$W/emb/queue.db" 'SELECT COUNT(*) FROM queue_messages')"
    put embedded.rows "$(sqlite3 "$W/emb/msgrelay.db" 'SELECT COUNT(*) FROM messages')"
    put embedded.rows_delivered "$(sqlite3 "$W/emb/msgrelay.db" "SELECT COUNT(*) FROM messages WHERE status = 'delivered'")"
    put embedded.accepted_total "$(metric "$O" msgrelay_messages_accepted_total)"
    kill "$(cat "$W/up.pid")"; wait 2>/dev/null || true
  )
}

for mode in $MODES; do "$mode"; done
put machine.load_at_end "\"$(cut -d' ' -f1-3 /proc/loadavg)\""

# --- JSON and the table --------------------------------------------------------------------------
python3 - "$RESULTS" "$OUT" <<'PY'
import json, sys
flat = {}
for line in open(sys.argv[1]):
    k, _, v = line.rstrip("\n").partition("=")
    try:
        flat[k] = json.loads(v)
    except ValueError:
        flat[k] = v
nested = {}
for k, v in flat.items():
    d = nested
    parts = k.split(".")
    for p in parts[:-1]:
        d = d.setdefault(p, {})
    d[parts[-1]] = v
json.dump(nested, open(sys.argv[2], "w"), indent=2, sort_keys=True)
g = lambda k, default=0: flat.get(k, default)
xadd = g("ceiling.xadd_64c_300b_per_s") or g("ceiling.xadd_50c_300b_per_s")
upsert = g("ceiling.mariadb_upsert_rows_per_s")
def ratio(x, c):
    return f"{x / c:.2f}" if c else "-"
print()
print(f"machine: {g('machine.cpus')} CPUs, {g('machine.cpu')}, commit {g('machine.commit')}, load at start {g('machine.load_at_start')}, at end {g('machine.load_at_end')}")
print(f"ceilings: XADD (AOF always, 64 clients, 300 B) {xadd:,.0f}/s; MariaDB 100-row upsert {upsert:,.0f} rows/s")
print()
print(f"| setup | generator | accepted/s | delivered end to end/s | ingest p99 ms | drain after load s | e2e / XADD | e2e / upsert |")
print(f"|---|---|---|---|---|---|---|---|")
for mode in ("production", "embedded"):
    for gen in ("oha", "bench"):
        k = f"{mode}.{gen}"
        if f"{k}.accepted_per_s" not in flat:
            continue
        e2e = g(f"{k}.delivered_per_s")
        print(f"| {mode} | {gen} | {g(f'{k}.accepted_per_s'):,} | {e2e:,} | {g(f'{k}.p99_ms')} | {g(f'{k}.drain_s')} | "
              f"{ratio(e2e, xadd) if mode == 'production' else '-'} | {ratio(e2e, upsert) if mode == 'production' else '-'} |")
for mode in ("production", "embedded"):
    k = f"{mode}.rate1000"
    if f"{k}.bench.accepted_per_s" in flat:
        print(f"| {mode} at a fixed 1,000/s | bench | {g(f'{k}.bench.accepted_per_s'):,} | {g(f'{k}.bench.delivered_per_s'):,} | "
              f"{g(f'{k}.bench.p99_ms')} (accepted-to-stored p99 {g(f'{k}.e2e_p99_ms')} ms) | {g(f'{k}.bench.drain_s')} | | |")
for mode in ("production", "embedded"):
    for gen in ("oha", "bench"):
        n = g(f"{mode}.{gen}.accepted")
        procs = sorted(k.rsplit(".", 1)[1] for k in flat if k.startswith(f"{mode}.{gen}.cpu_ticks_after."))
        if n and procs:
            per = lambda p: (g(f"{mode}.{gen}.cpu_ticks_after.{p}") - g(f"{mode}.{gen}.cpu_ticks_before.{p}")) * 10000 / n
            print(f"{mode} ({gen}) CPU per message: " + ", ".join(f"{p} {per(p):.0f} us" for p in procs))
for mode in ("production", "embedded"):
    if f"{mode}.rows" in flat:
        print(f"{mode}: queue left {g(f'{mode}.queue_left')}, rows {g(f'{mode}.rows')} (delivered {g(f'{mode}.rows_delivered')}), accepted {g(f'{mode}.accepted_total')}")
if "backlog.queued" in flat:
    rss = lambda kind: ", ".join(f"{r} {g(f'backlog.{kind}.{r}')} MB" for r in ("proxy", "worker", "server"))
    print(f"backlog: {g('backlog.queued'):,} queued (Redis used_memory {g('backlog.redis_used_memory_mb')} MB), drained in {g('backlog.drain_s')} s = {g('backlog.drain_per_s'):,}/s")
    print(f"  RSS at drain start: {rss('rss_start_mb')}; peak during the drain: {rss('rss_peak_mb')}")
print(f"\nresults: {sys.argv[2]}")
PY
