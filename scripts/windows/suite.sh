#!/usr/bin/env bash
# The Windows suite: cross-compiles msgrelay.exe (mingw, dev profile, its own cache) and runs it
# under Wine. What Wine cannot show is listed in docs/windows.md ("needs a real Windows Server").
#
#   scripts/windows/suite.sh            # locally: skips LOUDLY if wine/mingw/the target are missing
#   MSGRELAY_TEST_REQUIRE_EXTERNAL=1    # CI (set by scripts/test.sh): anything missing is a failure
#
# Steps: --version; init with an absolute C:\ data dir and with a relative one (both broke before
# database paths became SQLite options); doctor, including the DACLs of the key files read back
# through the Win32 API; `up` and a message sent from Linux with the Python client, read back
# through the portal's JSON API; then server, proxy and worker as services under Wine's service
# manager: start, a message, stop, and the logs show a graceful stop.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

TARGET=x86_64-pc-windows-gnu
export CARGO_TARGET_DIR="${MSGRELAY_WINDOWS_TARGET_DIR:-$HOME/.cache/msgrelay/target-windows}"
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc
export CC_x86_64_pc_windows_gnu=x86_64-w64-mingw32-gcc

skip_or_fail() {
  if [ "${MSGRELAY_TEST_REQUIRE_EXTERNAL:-0}" = 1 ]; then
    echo "FAILED: Windows suite cannot run: $*" >&2
    exit 1
  fi
  printf '\n%s\n!!! WINDOWS SUITE SKIPPED: %s\n!!! (install wine wine64 gcc-mingw-w64-x86-64 and `rustup target add %s`, or run scripts/test.sh)\n%s\n\n' \
    "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" "$*" "$TARGET" "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
  exit 0
}
command -v wine >/dev/null 2>&1 || skip_or_fail "wine is not installed"
command -v x86_64-w64-mingw32-gcc >/dev/null 2>&1 || skip_or_fail "x86_64-w64-mingw32-gcc is not installed"
rustup target list --installed 2>/dev/null | grep -qx "$TARGET" || skip_or_fail "rust target $TARGET is not installed"
command -v python3 >/dev/null 2>&1 || skip_or_fail "python3 is not installed"

log() { printf '\n==> [windows] %s\n' "$*"; }
FAILURES=0
pass() { echo "ok - $*"; }
fail() { echo "FAIL - $*" >&2; FAILURES=$((FAILURES + 1)); }

log "cross-compiling msgrelay.exe ($TARGET, dev profile, cache $CARGO_TARGET_DIR)"
cargo build -q -p msgrelay --bin msgrelay --target "$TARGET"
EXE_SRC="$CARGO_TARGET_DIR/$TARGET/debug/msgrelay.exe"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/msgrelay-wine.XXXXXX")
export WINEPREFIX="$WORK/prefix" WINEARCH=win64 WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
cleanup() {
  wineserver -k >/dev/null 2>&1 || true
  if [ "$FAILURES" -eq 0 ] && [ "${MSGRELAY_KEEP_WINE:-0}" != 1 ]; then rm -rf "$WORK"; else echo "wine prefix kept: $WORK" >&2; fi
}
trap cleanup EXIT

log "private Wine prefix $WINEPREFIX"
wineboot -i >"$WORK/wineboot.log" 2>&1 || true
C="$WINEPREFIX/drive_c"
mkdir -p "$C/msgrelay/bin"
cp "$EXE_SRC" "$C/msgrelay/bin/msgrelay.exe"
# Test harness only, never shipped: Wine 8 lacks bcryptprimitives.dll (see the source file).
x86_64-w64-mingw32-gcc -shared -O2 -o "$C/msgrelay/bin/bcryptprimitives.dll" scripts/windows/bcryptprimitives.c -ladvapi32
EXE='C:\msgrelay\bin\msgrelay.exe'
mr() { wine "$EXE" "$@"; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# A poll with a deadline, never a fixed sleep: until <seconds> <command...>
until_ok() {
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -ge $deadline ] && return 1
    sleep 0.5
  done
}

# --- 1. --version -----------------------------------------------------------------------------
if out=$(mr --version 2>&1) && [[ $out == msgrelay\ * ]]; then pass "msgrelay.exe --version ($out)"; else fail "msgrelay.exe --version: $out"; fi

# --- 2. init, absolute and relative data dirs -----------------------------------------------
cat >"$C/msgrelay/up.toml" <<EOF
[proxy]
listen = "127.0.0.1:0"
[server]
listen = "127.0.0.1:0"
[portal]
listen = "127.0.0.1:0"
[ops]
listen = "127.0.0.1:0"
EOF
if mr --config 'C:\msgrelay\up.toml' --data-dir 'C:\msgrelay\data' init --demo >"$WORK/init.log" 2>&1 \
  && [ -f "$C/msgrelay/data/msgrelay.db" ]; then
  pass "init with an absolute data dir C:\\msgrelay\\data"
else
  fail "init with an absolute data dir: $(cat "$WORK/init.log")"
fi
if (cd "$C/msgrelay" && wine "$EXE" --config up.toml --data-dir 'rel data' init >"$WORK/init-rel.log" 2>&1) \
  && [ -f "$C/msgrelay/rel data/msgrelay.db" ]; then
  pass "init with a relative data dir containing a space"
else
  fail "init with a relative data dir: $(cat "$WORK/init-rel.log")"
fi

# --- 3. doctor, with the key files' DACLs ------------------------------------------------------
mr --config 'C:\msgrelay\up.toml' --data-dir 'C:\msgrelay\data' doctor >"$WORK/doctor.log" 2>&1 || true
if grep -q "^doctor: .* 0 failure" "$WORK/doctor.log"; then pass "doctor reports no failure"; else fail "doctor: $(cat "$WORK/doctor.log")"; fi
# Wine 8 does not keep a DACL set with SetNamedSecurityInfoW on a file: it maps it to Unix mode
# bits and synthesises the DACL it returns from them (Everyone gets the "other" bits). So the
# positive case cannot be shown here (docs/windows.md); the call must still succeed (init did
# not fail) and doctor must read the DACL through the API and name what it allows.
for key in "keys/sealing.key" "keys/proxy-sealing.key" "keys/at-rest.json"; do
  line=$(grep "key $key" "$WORK/doctor.log" || true)
  if grep -q "owner-only" <<<"$line"; then
    pass "DACL of $key: owner/SYSTEM/Administrators only (read back by doctor via GetNamedSecurityInfoW)"
  elif grep -q "also allows S-1-1-0" <<<"$line"; then
    echo "gap - DACL of $key: Wine returns a DACL made from Unix mode bits (Everyone), not the one msgrelay set; needs a real Windows Server"
  else
    fail "DACL of $key: ${line:-not checked}"
  fi
done
# The negative: a key file copied in without going through msgrelay has no restricted DACL.
cp "$C/msgrelay/data/keys/at-rest.json" "$WORK/at-rest.json.bak"
rm "$C/msgrelay/data/keys/at-rest.json" && cp "$WORK/at-rest.json.bak" "$C/msgrelay/data/keys/at-rest.json"
mr --config 'C:\msgrelay\up.toml' --data-dir 'C:\msgrelay\data' doctor >"$WORK/doctor2.log" 2>&1 || true
if grep -q "key keys/at-rest.json.*icacls" "$WORK/doctor2.log"; then
  pass "doctor reports a key file whose DACL is not restricted"
else
  fail "doctor missed an unrestricted key file: $(grep at-rest "$WORK/doctor2.log" || true)"
fi

# --- 4. up, a message from Linux, read back through the portal JSON API -------------------
mr --config 'C:\msgrelay\up.toml' --data-dir 'C:\msgrelay\data' up >"$WORK/up.log" 2>&1 &
if until_ok 120 grep -q "^msgrelay ready:" "$WORK/up.log"; then pass "up is ready under Wine"; else fail "up: $(cat "$WORK/up.log")"; fi
ready=$(grep "^msgrelay ready:" "$WORK/up.log" || true)
port_of() { sed -n "s/.* $1=https:\/\/[0-9.]*:\([0-9]*\).*/\1/p" <<<"$ready"; }
if grep -q "py clients\\\\python\\\\send_message.py" "$WORK/up.log" && grep -q "'C:\\\\msgrelay\\\\data\\\\clients\\\\demo\\\\client.crt'" "$WORK/up.log"; then
  pass "up prints a PowerShell client command (py, backslash paths)"
else
  fail "up's client command: $(grep -A1 'send a message' "$WORK/up.log" || true)"
fi

# send <proxy port> <data dir on Linux> -> message id; read_back <portal port> <data dir> <id> <body>
send() {
  local b="$2/clients/demo"
  python3 clients/python/send_message.py --url "https://localhost:$1" --cert "$b/client.crt" --key "$b/client.key" \
    --ca "$b/ca.crt" --sender +15551234567 --body "$3"
}
read_back() {
  local portal=$1 data=$2 id=$3 body=$4 jar="$WORK/cookies.$RANDOM"
  local pw; pw=$(sed -n 's/^user=demo .*password=\([^ ]*\).*/\1/p' "$data/bootstrap-credentials.txt" | tail -n1)
  local curl=(curl -sS --fail --cacert "$data/pki/internal-ca.crt" -b "$jar" -c "$jar")
  "${curl[@]}" -H 'Content-Type: application/json' -d "{\"username\":\"demo\",\"password\":\"$pw\"}" \
    "https://localhost:$portal/api/v1/auth/login" >/dev/null || return 1
  local deadline=$((SECONDS + 90)) msg=""
  while [ $SECONDS -lt $deadline ]; do
    msg=$("${curl[@]}" "https://localhost:$portal/api/v1/messages/$id" || true)
    if python3 -c 'import json,sys; m=json.loads(sys.argv[1]); sys.exit(0 if m["status"]=="delivered" and m["message_body"]==sys.argv[2] else 1)' "$msg" "$body" 2>/dev/null; then
      return 0
    fi
    sleep 0.5
  done
  echo "last answer: $msg" >&2
  return 1
}

body="hello from Linux to Wine $RANDOM"
if id=$(send "$(port_of proxy)" "$C/msgrelay/data" "$body" 2>"$WORK/send.err"); then
  pass "Python client on Linux: message accepted by the relay under Wine ($id)"
  if read_back "$(port_of portal)" "$C/msgrelay/data" "$id" "$body"; then
    pass "message delivered and readable through the portal JSON API"
  else
    fail "message $id not delivered/readable through the portal"
  fi
else
  fail "Python client: $(cat "$WORK/send.err")"
fi
wineserver -k >/dev/null 2>&1 || true
wait || true

# --- 5. services under Wine's service manager -------------------------------------------------
PROXY=$(free_port) INTERNAL=$(free_port) PORTAL=$(free_port) OPS_P=$(free_port) OPS_W=$(free_port) OPS_S=$(free_port)
svc_config() { # role ops-port
  cat <<EOF
data_dir = 'C:\\msgrelay\\svc'
[proxy]
listen = "127.0.0.1:$PROXY"
main_server_url = "https://localhost:$INTERNAL"
[server]
listen = "127.0.0.1:$INTERNAL"
[portal]
listen = "127.0.0.1:$PORTAL"
[ops]
listen = "127.0.0.1:$2"
[worker]
main_server_url = "https://localhost:$INTERNAL"
EOF
}
for r in server:$OPS_S proxy:$OPS_P worker:$OPS_W; do svc_config "${r%%:*}" "${r##*:}" >"$C/msgrelay/${r%%:*}.toml"; done
# Wine has no event log: its ReportEventW prints the event text on the `eventlog` debug channel.
# The service processes inherit WINEDEBUG and standard error from whichever command starts Wine's
# service manager, so every command from here on logs that channel into one file.
wineserver -k >/dev/null 2>&1 || true
export WINEDEBUG=-all,+eventlog
# Wine shuts its services down when the last ordinary process of the session exits (and starts
# the automatic ones again with the next): a console waiting on standard input keeps it open.
EVENTS="$WORK/eventlog.log"
tail -f /dev/null | wine cmd /q >/dev/null 2>>"$EVENTS" &
mr() { wine "$EXE" "$@" 2>>"$EVENTS"; }
mr --config 'C:\msgrelay\server.toml' init --demo >"$WORK/svc-init.log" || fail "init for services: $(cat "$WORK/svc-init.log")"
for role in server proxy worker; do
  if mr --config "C:\\msgrelay\\$role.toml" service install --role "$role" >"$WORK/install-$role.log"; then
    pass "service install --role $role"
  else
    fail "service install --role $role: $(cat "$WORK/install-$role.log")"
  fi
done
for role in server proxy worker; do
  reg=$(wine reg query "HKLM\\System\\CurrentControlSet\\Services\\msgrelay-$role" 2>>"$EVENTS" | tr -d '\r')
  if grep -q "ImagePath.*service run --role $role --name msgrelay-$role" <<<"$reg" \
    && grep -q "ObjectName.*NT SERVICE\\\\msgrelay-$role" <<<"$reg" \
    && grep -q "Start.*0x2" <<<"$reg" && grep -q "Description.*$role role" <<<"$reg"; then
    pass "msgrelay-$role registered: command line, automatic start, account NT SERVICE\\msgrelay-$role, description"
  else
    fail "registry of msgrelay-$role: $reg"
  fi
done
# Wine's service manager refuses or drops some settings real Windows keeps (docs/windows.md):
# install must say so, not pretend.
for setting in "delayed automatic start" "recovery on non-crash failures"; do
  if grep -q "DelayedAutostart.*0x1" <<<"$reg" && [ "$setting" = "delayed automatic start" ]; then
    pass "$setting recorded"
  elif grep -q "WARNING: could not set the $setting" "$WORK/install-proxy.log"; then
    echo "gap - $setting: not supported by Wine's service manager; install reported it (needs a real Windows Server)"
  else
    fail "$setting neither recorded nor reported: $(cat "$WORK/install-proxy.log")"
  fi
done
if wine reg query 'HKLM\System\CurrentControlSet\Services\EventLog\Application\msgrelay' 2>>"$EVENTS" | grep -q EventMessageFile; then
  pass "event source msgrelay registered in the Application log"
else
  fail "event source msgrelay not registered"
fi
for role in server proxy worker; do
  if mr service start "msgrelay-$role" >"$WORK/start-$role.log"; then pass "service start msgrelay-$role"; else fail "service start msgrelay-$role: $(cat "$WORK/start-$role.log")"; fi
done
if wine sc query msgrelay-proxy 2>>"$EVENTS" | grep -q "RUNNING" && mr service status msgrelay-proxy | tr -d '\r' | grep -q "RUNNING"; then
  pass "sc query and service status show RUNNING"
else
  fail "service status: $(mr service status msgrelay-proxy 2>&1)"
fi

body="hello to the services $RANDOM"
if until_ok 60 curl -sf "http://127.0.0.1:$OPS_P/ready" && id=$(send "$PROXY" "$C/msgrelay/svc" "$body" 2>"$WORK/send2.err"); then
  pass "message accepted by the proxy service ($id)"
  if read_back "$PORTAL" "$C/msgrelay/svc" "$id" "$body"; then pass "delivered by the worker service, readable through the portal"; else fail "message $id not delivered by the services"; fi
else
  fail "sending to the proxy service: $(cat "$WORK/send2.err" 2>/dev/null)"
fi

for role in worker proxy server; do
  if mr service stop "msgrelay-$role" >"$WORK/stop-$role.log" 2>&1; then pass "service stop msgrelay-$role"; else fail "service stop msgrelay-$role: $(cat "$WORK/stop-$role.log")"; fi
done
logs=$(cat "$C"/msgrelay/svc/logs/msgrelay.log.* 2>/dev/null || true)
for role in worker proxy server; do
  if grep -q "\"role\":\"$role\".*stopped gracefully\|stopped gracefully.*\"role\":\"$role\"" <<<"$logs"; then
    pass "$role stopped gracefully (file log: drained, no lease held)"
  else
    fail "$role: no graceful stop in the log"
  fi
done
# `service status` exits 3 when the service is not running.
if { mr service status msgrelay-worker || true; } | tr -d '\r' | grep -q "STOPPED"; then pass "service status shows STOPPED"; else fail "status after stop: $(mr service status msgrelay-worker 2>&1)"; fi
for role in server proxy worker; do
  if grep -q "msgrelay-$role started" "$EVENTS" && grep -q "msgrelay-$role stopped gracefully" "$EVENTS"; then
    pass "Event Log: msgrelay-$role started / stopped gracefully (ReportEventW, seen on Wine's eventlog channel)"
  else
    fail "no start/stop event for msgrelay-$role"
  fi
done
for role in server proxy worker; do
  mr service uninstall "msgrelay-$role" >/dev/null || fail "service uninstall msgrelay-$role"
done
if ! wine reg query 'HKLM\System\CurrentControlSet\Services\msgrelay-proxy' >/dev/null 2>&1; then pass "service uninstall removed the services"; else fail "msgrelay-proxy still registered"; fi
export WINEDEBUG=-all

# --- 6. the release zip's layout ---------------------------------------------------------------
if zip=$(scripts/windows/release-zip.sh --exe "$EXE_SRC" --out "$WORK/dist" 2>"$WORK/zip.err") \
  && python3 - "$zip" <<'PY'
import sys, zipfile
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
need = {"msgrelay.exe", "deploy/windows/install.ps1", "deploy/windows/uninstall.ps1", "deploy/windows/start.ps1",
        "deploy/windows/stop.ps1", "deploy/windows/status.ps1", "deploy/windows/start.bat", "deploy/windows/stop.bat",
        "deploy/windows/msgrelay.toml.example", "scripts/certs/generate_cert.ps1", "docs/windows.md"}
missing = need - names
shim = [n for n in names if "bcryptprimitives" in n]
if missing or shim:
    sys.exit("missing %s, test shim %s" % (sorted(missing), shim))
PY
then
  pass "release zip: msgrelay.exe, deploy\\windows, scripts\\certs, docs; no test shim"
else
  fail "release zip: $(cat "$WORK/zip.err")"
fi

echo
if [ "$FAILURES" -gt 0 ]; then echo "Windows suite: $FAILURES failure(s)" >&2; exit 1; fi
echo "Windows suite: all passed"
