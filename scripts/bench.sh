#!/usr/bin/env bash
# The benchmark suite (docs/benchmarks.md; not part of the test command). Builds release, starts
# private Redis (AOF, appendfsync always) and MariaDB instances and the relay in both modes
# (production: one process per role on Redis + MariaDB; embedded: `msgrelay up`), measures the
# ceilings beside them (Redis XADD; MariaDB 100-row upsert), runs load with an independent
# generator (oha) and with `msgrelay bench`, then writes one JSON file and prints a table.
#
#   scripts/bench.sh [--duration N] [--modes "production embedded"] [--out bench.json]
#                    [--backlog 1000000] [--no-build] [--no-oha]
#   scripts/bench.sh --compare run1.json run2.json   (every figure of two runs side by side)
#   (OHA=path and MSGRELAY=path pick the load generator and the binary under test)
#
# Full-load runs last 60 s in production and 30 s embedded (the targets of issue 14);
# --duration N sets both.
# --backlog N adds the backlog drain (production): N messages queued with the main server
# stopped, then started; drain rate and per-role RSS (start and peak) during the drain.
# Everything runs in $WORKDIR (default /tmp/msgrelay-bench); nothing outside it is touched.
set -euo pipefail
cd "$(dirname "$0")/.."

PROD_SECS=60; EMB_SECS=30; MODES="production embedded"; OUT=""; BACKLOG=0; BUILD=1; USE_OHA=1; COMPARE=()
CONN=64; BODY=200; RATE=1000; RATE_SECS=20
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) PROD_SECS=$2; EMB_SECS=$2; shift 2 ;;
    --compare) COMPARE=("$2" "$3"); shift 3 ;;
    --modes) MODES=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --backlog) BACKLOG=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --no-oha) USE_OHA=0; shift ;;
    *) echo "unknown option $1 (see the header of $0)" >&2; exit 64 ;;
  esac
done

if [ ${#COMPARE[@]} -eq 2 ]; then
  python3 - "${COMPARE[@]}" <<'PY'
import json, sys
def flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flat(v, prefix + k + "."))
        else:
            out[prefix + k] = v
    return out
a, b = (flat(json.load(open(p))) for p in sys.argv[1:3])
print(f"A = {sys.argv[1]} (commit {a.get('machine.commit')}, load {a.get('machine.load_at_start')})")
print(f"B = {sys.argv[2]} (commit {b.get('machine.commit')}, load {b.get('machine.load_at_start')})")
print(f"{'figure':60} {'A':>12} {'B':>12} {'B/A':>7}")
worst = 0.0
for k in sorted(set(a) & set(b)):
    x, y = a[k], b[k]
    if not all(isinstance(v, (int, float)) for v in (x, y)) or "cpu_ticks" in k:
        continue
    r = (y / x) if x else float("nan")
    flag = ""
    if k.endswith("ratio_xadd") or k.endswith("ratio_upsert"):
        worst = max(worst, abs(r - 1) if x else 0)
        flag = "  <- ratio" + ("  OUTSIDE 15 %" if x and abs(r - 1) > 0.15 else "")
    print(f"{k:60} {x:>12} {y:>12} {r:>7.2f}{flag}")
print(f"\nlargest change of a ratio to the same-run ceilings: {worst * 100:.1f} %")
PY
  exit 0
fi

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
  redis-server --port "$1" --bind 127.0.0.1 --dir "$3" --save "" --appendonly yes --appendfsync always --latency-monitor-threshold 10 \
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
  put ceiling.load "\"$(loadavg)\""
  start_redis "$CRP" "$W/ceil-redis.pid" "$W/ceil-redis"
  local r
  xadd_per_s() { # clients stream -> XADDs per second (0 if it failed)
    r=$(redis-benchmark -p "$CRP" -n 100000 -c "$1" -d 300 -q XADD "$2" '*' payload __data__ 2>/dev/null | tr '\r' '\n' | grep -o '[0-9.]* requests per second' | tail -1 | awk '{print $1}')
    echo "${r:-0}"
  }
  put ceiling.xadd_50c_300b_per_s "$(xadd_per_s 50 s)"
  # The ratio's denominator: the median of three runs (single runs of it varied by 25 % on one box).
  local runs=""
  for i in 1 2 3; do runs="$runs $(xadd_per_s 64 "s2$i")"; done
  put ceiling.xadd_64c_300b_runs "\"${runs# }\""
  put ceiling.xadd_64c_300b_per_s "$(echo $runs | tr ' ' '\n' | sort -n | sed -n 2p)"
  # The latency floor of a 202: one client, one XADD at a time, each waiting for its fsync.
  # A request that arrives while another group is being fsynced waits for that one and its own.
  r=$(redis-benchmark -p "$CRP" -n 2000 -c 1 -d 300 --csv XADD s3 '*' payload __data__ 2>/dev/null | tail -1 | tr -d '"')
  put ceiling.xadd_1c_p50_ms "$(echo "$r" | cut -d, -f5)"
  put ceiling.xadd_1c_p99_ms "$(echo "$r" | cut -d, -f7)"
  redis-cli -p "$CRP" shutdown nosave >/dev/null 2>&1 || true; rm -f "$W/ceil-redis.pid"

  log "ceiling: fsync of a 4 KiB append on the bench's disk"
  local f
  f=$(python3 - "$W/fsync.probe" <<'PY'
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
t = []
for _ in range(500):
    t0 = time.perf_counter(); os.write(fd, b"x" * 4096); os.fsync(fd); t.append(time.perf_counter() - t0)
os.close(fd); os.unlink(sys.argv[1])
t.sort()
print(f"{t[len(t) // 2] * 1000:.2f} {t[len(t) * 99 // 100] * 1000:.2f}")
PY
)
  put ceiling.fsync_p50_ms "${f% *}"
  put ceiling.fsync_p99_ms "${f#* }"

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
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
# The upper bound (ms) of the histogram bucket holding quantile $4 of metric $3, between two
# /metrics snapshots $1 and $2 (bucket resolution: an upper bound, not an interpolation).
hist_q() {
  python3 - "$@" <<'PY'
import re, sys
def buckets(path, name):
    out = {}
    try:
        for line in open(path):
            # Buckets carry other labels too (instance), before or after `le`: sum per bound.
            m = re.match(name + r'_bucket\{(?:[^}]*,)?le="([^"]+)"[^}]*\} (\S+)', line)
            if m:
                le = float(m.group(1))
                out[le] = out.get(le, 0) + float(m.group(2))
    except OSError:
        pass
    return out
b, a = buckets(sys.argv[1], sys.argv[3]), buckets(sys.argv[2], sys.argv[3])
q = float(sys.argv[4])
delta = [(le, a[le] - b.get(le, 0)) for le in sorted(a)]
total = delta[-1][1] if delta else 0
for le, n in delta:
    if total and n >= q * total:
        print(round(le * 1000, 1) if le != float("inf") else "inf"); break
else:
    print(0)
PY
}
# Snapshots of the proxy's and the worker's /metrics (ingest and end-to-end histograms).
snap() { curl -s "$2/metrics" > "$W/$1.proxy.metrics"; curl -s "$3/metrics" > "$W/$1.worker.metrics"; }
# Latency figures of one run from its before/after snapshots.
put_hist() { # key
  put "$1.ingest_p99_hist_ms" "$(hist_q "$W/$1.before.proxy.metrics" "$W/$1.after.proxy.metrics" msgrelay_ingest_latency_seconds 0.99)"
  put "$1.e2e_p50_ms" "$(hist_q "$W/$1.before.worker.metrics" "$W/$1.after.worker.metrics" msgrelay_end_to_end_latency_seconds 0.5)"
  put "$1.e2e_p99_ms" "$(hist_q "$W/$1.before.worker.metrics" "$W/$1.after.worker.metrics" msgrelay_end_to_end_latency_seconds 0.99)"
}
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# Every run below: $1 = key for the results, $2 = proxy url, $3 = bundle dir, $4 = ops url
# counting accepted (the proxy's), $5 = ops url counting delivered (the worker's); PROCS
# ("name:pid ...") are the processes whose CPU time is charged to the run.
body_json() { python3 -c "import json; print(json.dumps({'sender_number': '+15551234567', 'message_body': 'x' * $BODY}))"; }
drain_wait() { # delivered-ops-url target-count timeout -> seconds waited
  local t0; t0=$(date +%s.%N)
  for _ in $(seq $(( $3 * 10 ))); do
    [ "$(metric "$1" msgrelay_messages_delivered_total)" -ge "$2" ] && break
    sleep 0.1
  done
  python3 -c "print(round($(date +%s.%N) - $t0, 2))"
}
begin_run() { # key acc-ops del-ops
  put "$1.load" "\"$(loadavg)\""
  RUN_T0=$(date +%s)
  cpu_report "$1" before
  snap "$1.before" "$2" "$3"
}
end_run() { # key acc-ops del-ops
  cpu_report "$1" after
  snap "$1.after" "$2" "$3"
  put_hist "$1"
  put "$1.mean_batch" "$(python3 - "$W/$1.before.worker.metrics" "$W/$1.after.worker.metrics" <<'PY'
import re, sys
def total(path, name):
    return sum(float(m.group(1)) for m in re.finditer(name + r"(?:\{[^}]*\})? (\S+)", open(path).read()))
b, a = sys.argv[1], sys.argv[2]
n = total(a, "msgrelay_delivery_batches_total") - total(b, "msgrelay_delivery_batches_total")
m = total(a, "msgrelay_delivery_attempts_total") - total(b, "msgrelay_delivery_attempts_total")
print(round(m / n, 1) if n else 0)
PY
)"
  # Redis's latency monitor (production): the seconds of this run with an AOF fsync of 10 ms or
  # more, and the worst. A slow fsync holds every 202 behind it: it explains ingest p99 outliers.
  if [ "${1%%.*}" = production ]; then
    local stalls; stalls=$(redis-cli -p "$RP" LATENCY HISTORY aof-fsync-always 2>/dev/null | paste - - |
      awk -v t0="$RUN_T0" -v t1="$(date +%s)" '$1 >= t0 && $1 <= t1 {n++; if ($2 > m) m = $2} END {print n + 0, m + 0}')
    put "$1.redis_fsync_stalls" "${stalls% *}"
    put "$1.redis_fsync_stall_max_ms" "${stalls#* }"
  fi
}
run_oha() { # key url bundle acc-ops del-ops seconds
  local key=$1.oha url=$2 b=$3 acc_ops=$4 del_ops=$5 secs=$6
  [ "$USE_OHA" = 1 ] || return 0
  log "$key: oha, $CONN connections, ${secs} s, ${BODY}-character bodies"
  begin_run "$key" "$acc_ops" "$del_ops"
  local a0 d0; a0=$(metric "$acc_ops" msgrelay_messages_accepted_total); d0=$(metric "$del_ops" msgrelay_messages_delivered_total)
  local t0; t0=$(date +%s.%N)
  "$OHA" -z "${secs}s" -c "$CONN" --no-tui --output-format json -m POST -H 'Content-Type: application/json' \
    -d "$(body_json)" --cacert "$b/ca.crt" --cert "$b/client.crt" --key "$b/client.key" "$url/api/v1/messages" > "$W/$key.json" 2> "$W/$key.err" || true
  local t1; t1=$(date +%s.%N)
  local acc; acc=$(( $(metric "$acc_ops" msgrelay_messages_accepted_total) - a0 ))
  local drain; drain=$(drain_wait "$del_ops" $(( d0 + acc )) 300)
  local del; del=$(( $(metric "$del_ops" msgrelay_messages_delivered_total) - d0 ))
  end_run "$key" "$acc_ops" "$del_ops"
  put "$key.accepted" "$acc"
  put "$key.delivered" "$del"
  put "$key.accepted_per_s" "$(python3 -c "print(round($acc/($t1-$t0)))")"
  put "$key.delivered_per_s" "$(python3 -c "print(round($del/($t1-$t0+$drain)))")"
  put "$key.drain_s" "$drain"
  python3 - "$W/$key.json" "$key" >> "$RESULTS" <<'PY'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except Exception:
    sys.exit(0)
k = sys.argv[2]
lat = d.get("latencyPercentiles", {})
print(f"{k}.p50_ms={round((lat.get('p50') or 0) * 1000, 2)}")
print(f"{k}.p99_ms={round((lat.get('p99') or 0) * 1000, 2)}")
codes = d.get("statusCodeDistribution", {})
print(f"{k}.non_202={sum(v for c, v in codes.items() if c != '202')}")
errs = d.get("errorDistribution", {})
print(f"{k}.errors={sum(errs.values())}")
print(f"{k}.error_kinds={json.dumps('; '.join(f'{e}: {n}' for e, n in errs.items()))}")
PY
}
# `msgrelay bench` at full speed (or with extra arguments, e.g. --rate).
run_bench() { # key url bundle acc-ops del-ops args...
  local key=$1.bench url=$2 b=$3 acc_ops=$4 del_ops=$5; shift 5
  log "$key: msgrelay bench $*"
  begin_run "$key" "$acc_ops" "$del_ops"
  "$M" bench --url "$url" --cert "$b/client.crt" --key "$b/client.key" --ca "$b/ca.crt" --concurrency "$CONN" \
    --body-chars "$BODY" --metrics-url "$del_ops/metrics" --drain-timeout 300 "$@" > "$W/$key.out" 2>/dev/null
  end_run "$key" "$acc_ops" "$del_ops"
  grep -v '^\s*$' "$W/$key.out" | grep -E '^(sent|errors|accepted|latency|delivered|drain):' >&2 || true
  python3 - "$W/$key.out" "$key" >> "$RESULTS" <<'PY'
import json, re, sys
text = open(sys.argv[1]).read(); k = sys.argv[2]
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
m = re.search(r"^errors:\s+(.*)$", text, re.M)
print(k + ".error_kinds=" + json.dumps(m.group(1) if m else ""))
PY
}
cpu_report() { # key before|after (PROCS)
  for np in $PROCS; do put "$1.cpu_ticks_$2.${np%%:*}" "$(cpu_ticks "${np##*:}")"; done
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
    PROCS="server:$(cat "$W/server.pid") proxy:$(cat "$W/proxy.pid") worker:$(cat "$W/worker.pid") redis:$(cat "$W/redis.pid") mariadb:$(cat "$W/my.pid")"
    run_oha production "$url" "$b" "$PO" "$WO" "$PROD_SECS"
    run_bench production "$url" "$b" "$PO" "$WO" --duration "$PROD_SECS"
    run_bench production.rate$RATE "$url" "$b" "$PO" "$WO" --rate "$RATE" --duration "$RATE_SECS"
    put production.queue_left "$(redis-cli -p "$RP" XLEN msgrelay:stream)"
    put production.rows "$(sql -e 'SELECT COUNT(*) FROM msgrelay.messages')"
    put production.rows_delivered "$(sql -e "SELECT COUNT(*) FROM msgrelay.messages WHERE status = 'delivered'")"
    put production.accepted_total "$(metric "$PO" msgrelay_messages_accepted_total)"
    put production.delivery_batches "$(metric "$WO" msgrelay_delivery_batches_total)"
    # For profiling: time per Redis command, and MariaDB's statement and row counters.
    redis-cli -p "$RP" INFO commandstats > "$W/redis-commandstats.txt" 2>&1 || true
    sql -e 'SHOW GLOBAL STATUS' > "$W/mariadb-status.txt" 2>&1 || true
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
  put backlog.load "\"$(loadavg)\""
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
  put backlog.load_at_end "\"$(loadavg)\""
  put backlog.drain_per_s "$(python3 -c "print(round($queued/$secs))")"
  for np in $pids; do put "backlog.rss_peak_mb.${np%%:*}" "$(( ${peak[${np%%:*}]:-0} / 1024 ))"; done
}

embedded() {
  log "embedded: msgrelay up (SQLite queue and store)"
  (
    common_env
    "$M" up --data-dir "$W/emb" > "$W/up.log" 2>&1 & echo $! > "$W/up.pid"
    local P O; P=$(port_of "$(ready "$W/up.log" proxy)"); O=$(ready "$W/up.log" ops)
    local url="https://localhost:$P" b="$W/emb/clients/demo"
    PROCS="up:$(cat "$W/up.pid")"
    run_oha embedded "$url" "$b" "$O" "$O" "$EMB_SECS"
    run_bench embedded "$url" "$b" "$O" "$O" --duration "$EMB_SECS"
    run_bench embedded.rate$RATE "$url" "$b" "$O" "$O" --rate "$RATE" --duration "$RATE_SECS"
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
g = lambda k, default=0: flat.get(k, default)
xadd = g("ceiling.xadd_64c_300b_per_s") or g("ceiling.xadd_50c_300b_per_s")
upsert = g("ceiling.mariadb_upsert_rows_per_s")
runs = [r for r in ("production.oha", "production.bench", "production.rate1000.bench",
                    "embedded.oha", "embedded.bench", "embedded.rate1000.bench") if f"{r}.accepted" in flat]
# Derived figures, kept in the JSON too: ratios to the same-run ceilings, CPU µs per message.
for r in runs:
    e2e = g(f"{r}.delivered_per_s")
    if r.startswith("production") and ".rate" not in r:
        if xadd:
            flat[f"{r}.ratio_xadd"] = round(e2e / xadd, 3)
        if upsert:
            flat[f"{r}.ratio_upsert"] = round(e2e / upsert, 3)
    n = g(f"{r}.accepted")
    for k in [k for k in flat if k.startswith(f"{r}.cpu_ticks_after.")]:
        proc = k.rsplit(".", 1)[1]
        if n:
            flat[f"{r}.cpu_us_per_msg.{proc}"] = round((g(k) - g(f"{r}.cpu_ticks_before.{proc}")) * 10000 / n)
nested = {}
for k, v in flat.items():
    d = nested
    parts = k.split(".")
    for p in parts[:-1]:
        d = d.setdefault(p, {})
        if not isinstance(d, dict):
            break
    else:
        d[parts[-1]] = v
json.dump(nested, open(sys.argv[2], "w"), indent=2, sort_keys=True)

def ratio(x, c):
    return f"{x / c:.2f}" if c else "-"
print()
print(f"machine: {g('machine.cpus')} CPUs, {g('machine.cpu')}, commit {g('machine.commit')}, load at start {g('machine.load_at_start')}, at end {g('machine.load_at_end')}")
if xadd or upsert:
    print(f"ceilings (load {g('ceiling.load', '-')}): XADD (AOF always, 64 clients, 300 B) {xadd:,.0f}/s; MariaDB 100-row upsert {upsert:,.0f} rows/s")
    print(f"latency floors: one XADD at a time (AOF always) p50 {g('ceiling.xadd_1c_p50_ms', '-')} / p99 {g('ceiling.xadd_1c_p99_ms', '-')} ms; "
          f"fsync of a 4 KiB append p50 {g('ceiling.fsync_p50_ms', '-')} / p99 {g('ceiling.fsync_p99_ms', '-')} ms")
print()
print("| run | accepted/s | delivered end to end/s | ingest p99 ms (client / proxy histogram) | accepted-to-stored p50 / p99 ms | drain after load s | errors | e2e / XADD | e2e / upsert | load at start |")
print("|---|---|---|---|---|---|---|---|---|---|")
for r in runs:
    e2e = g(f"{r}.delivered_per_s")
    print(f"| {r} | {g(f'{r}.accepted_per_s'):,} | {e2e:,} | {g(f'{r}.p99_ms')} / {g(f'{r}.ingest_p99_hist_ms')} | "
          f"{g(f'{r}.e2e_p50_ms')} / {g(f'{r}.e2e_p99_ms')} | {g(f'{r}.drain_s')} | {g(f'{r}.errors')} | "
          f"{ratio(e2e, xadd) if f'{r}.ratio_xadd' in flat else '-'} | {ratio(e2e, upsert) if f'{r}.ratio_upsert' in flat else '-'} | {g(f'{r}.load', '-')} |")
print()
for r in runs:
    per = sorted((k.rsplit(".", 1)[1], v) for k, v in flat.items() if k.startswith(f"{r}.cpu_us_per_msg."))
    if per:
        print(f"{r}: CPU per message: " + ", ".join(f"{p} {v} us" for p, v in per) + f" (total {sum(v for _, v in per)} us)")
    if f"{r}.mean_batch" in flat:
        stalls = f"; seconds with a Redis AOF fsync >= 10 ms: {g(f'{r}.redis_fsync_stalls')}, worst {g(f'{r}.redis_fsync_stall_max_ms')} ms" if f"{r}.redis_fsync_stalls" in flat else ""
        print(f"{r}: mean delivery batch {g(f'{r}.mean_batch')} messages{stalls}")
    if g(f"{r}.error_kinds", ""):
        print(f"{r}: errors: {g(f'{r}.error_kinds')}")
for mode in ("production", "embedded"):
    if f"{mode}.rows" in flat:
        batches = g(f"{mode}.delivery_batches")
        mean = f", mean delivery batch {g(f'{mode}.rows_delivered') / batches:.1f} messages" if batches else ""
        print(f"{mode}: queue left {g(f'{mode}.queue_left')}, rows {g(f'{mode}.rows')} (delivered {g(f'{mode}.rows_delivered')}), accepted {g(f'{mode}.accepted_total')}{mean}")
if "backlog.queued" in flat:
    rss = lambda kind: ", ".join(f"{r} {g(f'backlog.{kind}.{r}')} MB" for r in ("proxy", "worker", "server"))
    print(f"backlog: {g('backlog.queued'):,} queued (Redis used_memory {g('backlog.redis_used_memory_mb')} MB), drained in {g('backlog.drain_s')} s = {g('backlog.drain_per_s'):,}/s (load {g('backlog.load', '-')})")
    print(f"  RSS at drain start: {rss('rss_start_mb')}; peak during the drain: {rss('rss_peak_mb')}")

# The targets of issue 14, each against the figure that measures it.
checks = []
def check(name, ok, figure):
    checks.append((name, "met" if ok else "MISSED", figure))
for r in ("embedded.oha", "embedded.bench"):
    if f"{r}.accepted" in flat:
        check(f"{r}: end to end >= 3,000/s", g(f"{r}.delivered_per_s") >= 3000, f"{g(f'{r}.delivered_per_s'):,}/s")
        check(f"{r}: delivered within 5 s of the load's end", g(f"{r}.drain_s") < 5 and g(f"{r}.delivered") >= g(f"{r}.accepted"), f"{g(f'{r}.drain_s')} s")
for r in ("production.oha", "production.bench"):
    if f"{r}.accepted" in flat:
        check(f"{r}: end to end >= 10,000/s", g(f"{r}.delivered_per_s") >= 10000, f"{g(f'{r}.delivered_per_s'):,}/s")
for mode in ("production", "embedded"):
    if f"{mode}.rows" in flat:
        check(f"{mode}: queue empty at the end", g(f"{mode}.queue_left") == 0, str(g(f"{mode}.queue_left")))
        check(f"{mode}: every row delivered, rows >= accepted (oha adds the requests it cut off)",
              g(f"{mode}.rows") >= g(f"{mode}.accepted_total") and g(f"{mode}.rows") == g(f"{mode}.rows_delivered"),
              f"rows {g(f'{mode}.rows')}, delivered {g(f'{mode}.rows_delivered')}, accepted {g(f'{mode}.accepted_total')}")
for mode in ("production", "embedded"):
    r = f"{mode}.rate1000.bench"
    if f"{r}.accepted" in flat:
        check(f"{r}: ingest p99 < 5 ms", g(f"{r}.p99_ms") < 5,
              f"{g(f'{r}.p99_ms')} ms (client side; floor: fsync p50 {g('ceiling.fsync_p50_ms', '-')} ms, one XADD p99 {g('ceiling.xadd_1c_p99_ms', '-')} ms)")
        check(f"{r}: accepted-to-stored p99 < 100 ms", 0 < g(f"{r}.e2e_p99_ms") <= 100, f"<= {g(f'{r}.e2e_p99_ms')} ms (bucket bound)")
if "backlog.queued" in flat:
    sustained = max(g("production.oha.delivered_per_s"), g("production.bench.delivered_per_s"))
    check("backlog drain >= the sustained rate", g("backlog.drain_per_s") >= sustained, f"{g('backlog.drain_per_s'):,}/s vs {sustained:,}/s")
    for role, limit in (("proxy", 50), ("worker", 30), ("server", 150)):
        check(f"backlog: peak RSS {role} < {limit} MB", g(f"backlog.rss_peak_mb.{role}") < limit, f"{g(f'backlog.rss_peak_mb.{role}')} MB")
if checks:
    print()
    print("| target | result | figure |")
    print("|---|---|---|")
    for c in checks:
        print(f"| {c[0]} | {c[1]} | {c[2]} |")
print(f"\nresults: {sys.argv[2]}")
PY
