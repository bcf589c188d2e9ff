#!/usr/bin/env bash
# The one test command (README, CI): installs and starts what the tests need, builds once
# (dev profile, dependencies optimised) and runs every test: Rust unit + integration tests,
# the Python client's tests and the Windows suite (msgrelay.exe under Wine).
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/msgrelay/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"

log() { printf '\n==> %s\n' "$*"; }

# --- system packages (Debian); only installs what is missing -------------------------------
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
{ command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ]; } || missing+=(mariadb-server)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
# The Windows suite: mingw cross-compiler and Wine (64-bit) to run msgrelay.exe.
command -v x86_64-w64-mingw32-gcc >/dev/null 2>&1 || missing+=(gcc-mingw-w64-x86-64)
command -v wine >/dev/null 2>&1 || missing+=(wine wine64)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
fi

# --- shared services: Redis on 6379 and MariaDB on 3306 (tests that kill servers start their own)
if ! redis-cli -p 6379 ping >/dev/null 2>&1; then
  log "starting redis-server on 6379"
  mkdir -p /tmp/msgrelay-redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no --dir /tmp/msgrelay-redis --logfile /tmp/msgrelay-redis/redis.log
fi
if ! mariadb-admin --protocol=tcp -h127.0.0.1 -uroot ping >/dev/null 2>&1; then
  log "starting mariadbd on 3306"
  if [ ! -d /var/lib/mysql/mysql ]; then mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null; fi
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql
fi
for _ in $(seq 1 60); do
  redis-cli -p 6379 ping >/dev/null 2>&1 && mariadb-admin --protocol=tcp -h127.0.0.1 -uroot ping >/dev/null 2>&1 && break
  sleep 1
done
export MSGRELAY_TEST_REDIS_URL="${MSGRELAY_TEST_REDIS_URL:-redis://127.0.0.1:6379/0}"
export MSGRELAY_TEST_MYSQL_URL="${MSGRELAY_TEST_MYSQL_URL:-mysql://root@127.0.0.1:3306}"
# In CI nothing may be skipped silently: every suite that needs Redis, MariaDB, redis-server,
# a browser, network namespaces or Wine fails instead of skipping (msgrelay-testkit's policy).
export MSGRELAY_TEST_REQUIRE_EXTERNAL=1
# The multi-host suite (crates/msgrelay/tests/multihost) needs network namespaces: root + iproute2.
export MSGRELAY_TEST_MULTIHOST_REQUIRED=1

# --- build once, then test ----------------------------------------------------------------------
log "formatting (cargo fmt --check)"
cargo fmt --all --check

# Lints: every target (tests, examples) of every crate; a warning fails the run. Same target dir
# as the build (clippy keeps its own check artifacts there, ~10 min the first time on 2 cores).
log "lints (cargo clippy -D warnings)"
cargo clippy --workspace --all-targets -- -D warnings

log "building (target dir: $CARGO_TARGET_DIR)"
cargo build --workspace --all-targets

log "rust tests"
cargo test --workspace --no-fail-fast

log "python client tests"
python3 -m unittest discover -s clients/python -p 'test_*.py'

log "windows suite (msgrelay.exe cross-compiled with mingw, run under Wine)"
rustup target list --installed | grep -qx x86_64-pc-windows-gnu || rustup target add x86_64-pc-windows-gnu
# Its own cache dir (one profile per target), next to the Linux one.
MSGRELAY_WINDOWS_TARGET_DIR="${MSGRELAY_WINDOWS_TARGET_DIR:-$HOME/.cache/msgrelay/target-windows}" \
  scripts/windows/suite.sh

log "all tests passed"
