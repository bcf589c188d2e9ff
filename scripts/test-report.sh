#!/usr/bin/env bash
# Runs the test command (scripts/test.sh) and writes docs/test-report.md: date, commit, machine,
# tests run / passed / failed / ignored per area, the slowest suites, and the benchmark summary
# recorded in docs/benchmarks.md. The report is written even when tests fail (it says so), and the
# script then exits with the test command's status.
#
#   scripts/test-report.sh                 # run everything, write docs/test-report.md
#   scripts/test-report.sh --from LOG      # only build the report from a saved test.sh log
set -uo pipefail
cd "$(dirname "$0")/.."

log_file=""
if [ "${1:-}" = "--from" ]; then
  log_file="${2:?--from needs the path of a saved scripts/test.sh log}"
  status=0
  grep -q '==> all tests passed' "$log_file" || status=1
else
  log_file="$(mktemp -t msgrelay-test-log.XXXXXX)"
  echo "running scripts/test.sh (log: $log_file)"
  # Every line gets its arrival time (seconds since the start) so suites can be timed.
  scripts/test.sh 2>&1 | python3 -u -c '
import sys, time
t0 = time.monotonic()
for line in sys.stdin:
    sys.stdout.write(f"[{time.monotonic() - t0:9.2f}] {line}")
' | tee "$log_file"
  status=${PIPESTATUS[0]}
fi

python3 - "$log_file" "$status" <<'PY'
import datetime, os, platform, re, subprocess, sys
from collections import OrderedDict

log_path, status = sys.argv[1], int(sys.argv[2])
lines = open(log_path, errors="replace").read().splitlines()
stamp = re.compile(r"^\[\s*([0-9.]+)\] ?(.*)$")

def split(line):
    m = stamp.match(line)
    return (float(m.group(1)), m.group(2)) if m else (None, line)

def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except Exception:
        return "unknown"

# Rust suites: "Running <path> (target/...)" ... "test result: ok. N passed; M failed; K ignored"
areas = OrderedDict()
current, started, crate = None, None, "?"
slow_warnings, failures = [], []
for raw in lines:
    t, line = split(raw)
    m = re.match(r"\s*Running (unittests \S+|\S+) \(.*?/deps/([A-Za-z0-9_]+)-[0-9a-f]+\)", line)
    if m:
        path, binary = m.groups()
        # Cargo runs a package's unit tests before its integration tests, so the last unit-test
        # binary names the crate of "tests/it/main.rs" and the like.
        if path.startswith("unittests"):
            crate = binary.replace("_", "-")
            current = f"{crate} (unit)"
        else:
            current = f"{crate} ({path.replace('tests/', '').replace('/main.rs', '').replace('.rs', '')})"
        started = t
        continue
    m = re.match(r"\s*Doc-tests (\S+)", line)
    if m:
        current, started = f"{m.group(1)} (doc)", t
        continue
    m = re.match(r"test result: (\w+)\. (\d+) passed; (\d+) failed; (\d+) ignored", line)
    if m and current:
        _, p, f, i = m.groups()
        a = areas.setdefault(current, {"passed": 0, "failed": 0, "ignored": 0, "secs": None})
        a["passed"] += int(p); a["failed"] += int(f); a["ignored"] += int(i)
        if t is not None and started is not None:
            a["secs"] = t - started
        current = None
        continue
    m = re.match(r"test (\S+) has been running for over (\d+) seconds", line)
    if m:
        slow_warnings.append(m.group(1))
    m = re.match(r"test (\S+) \.\.\. FAILED", line)
    if m:
        failures.append(m.group(1))

# Python client tests: "Ran N tests" + "OK" / "FAILED (failures=..)"
py = None
for i, raw in enumerate(lines):
    _, line = split(raw)
    m = re.match(r"Ran (\d+) tests? in", line)
    if m:
        n = int(m.group(1)); verdict = ""
        for raw2 in lines[i + 1:i + 4]:
            _, l2 = split(raw2)
            if l2.startswith("OK") or l2.startswith("FAILED"):
                verdict = l2; break
        skipped = re.search(r"skipped=(\d+)", verdict)
        failed = sum(int(x) for x in re.findall(r"(?:failures|errors)=(\d+)", verdict))
        s = int(skipped.group(1)) if skipped else 0
        py = {"passed": n - failed - s, "failed": failed, "ignored": s}

# Windows suite (scripts/windows/suite.sh): "ok - ...", "gap - ...", "FAIL - ..." lines
in_win, win = False, {"ok": [], "gap": [], "FAIL": []}
for raw in lines:
    _, line = split(raw)
    if line.startswith("==> windows suite"):
        in_win = True
    m = re.match(r"(ok|gap|FAIL) - (.*)", line)
    if in_win and m:
        win[m.group(1)].append(m.group(2))

skipped = sorted({split(r)[1] for r in lines if "SKIPPED" in r})

# Timings of the stages of test.sh ("==> stage" lines)
stages, prev = [], None
for raw in lines:
    t, line = split(raw)
    if line.startswith("==> ") and t is not None:
        if prev:
            stages.append((prev[1], t - prev[0]))
        prev = (t, line[4:])
end_t = next((split(r)[0] for r in reversed(lines) if split(r)[0] is not None), None)
if prev and end_t is not None:
    stages.append((prev[1], end_t - prev[0]))

tot = {k: sum(a[k] for a in areas.values()) for k in ("passed", "failed", "ignored")}
out = []
w = out.append
w("# Test report")
w("")
w(f"Generated by `scripts/test-report.sh` (which runs the README's test command, `scripts/test.sh`).")
w("")
w(f"- **Date:** {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}")
w(f"- **Commit:** `{sh('git', 'rev-parse', 'HEAD')}` ({sh('git', 'log', '-1', '--format=%s')})"
  + ("" if not sh("git", "status", "--porcelain") else " — with uncommitted changes"))
version = next((m.group(1) for m in (re.match(r'version = "(.*)"', l) for l in open("Cargo.toml")) if m), "?")
w(f"- **Version:** {version}")
cpu = sh("sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
mem = sh("sh", "-c", "awk '/MemTotal/ {printf \"%.0f GiB\", $2/1048576}' /proc/meminfo")
w(f"- **Machine:** {os.cpu_count()} cores ({cpu}), {mem}, {platform.system()} {platform.release()}, "
  f"{sh('rustc', '--version')}")
w(f"- **Outcome:** {'all tests passed' if status == 0 else 'FAILED (exit status ' + str(status) + ')'}")
w("")
w("## Tests per area")
w("")
w("| area (test binary) | passed | failed | ignored | wall time s |")
w("|---|---:|---:|---:|---:|")
for name, a in areas.items():
    if name.endswith("(doc)") and not (a["passed"] or a["failed"] or a["ignored"]):
        continue
    secs = f"{a['secs']:.1f}" if a["secs"] is not None else ""
    w(f"| {name} | {a['passed']} | {a['failed']} | {a['ignored']} | {secs} |")
if py:
    w(f"| Python client (`clients/python`) | {py['passed']} | {py['failed']} | {py['ignored']} | |")
w(f"| **Rust total** | **{tot['passed']}** | **{tot['failed']}** | **{tot['ignored']}** | |")
w("")
if failures:
    w("Failed tests: " + ", ".join(f"`{f}`" for f in failures))
    w("")
w("Skipped at run time (the skip policy prints `SKIPPED:`; under the test command every required "
  "service is present, so this list should be empty):")
w("")
w("\n".join(f"- `{s}`" for s in skipped) if skipped else "- none")
w("")
w("## Slowest suites")
w("")
timed = sorted(((a["secs"], n) for n, a in areas.items() if a["secs"] is not None), reverse=True)[:8]
w("| suite | wall time s |")
w("|---|---:|")
for secs, n in timed:
    w(f"| {n} | {secs:.1f} |")
w("")
w("Tests that ran for more than 60 s (libtest's warning): "
  + (", ".join(f"`{s}`" for s in sorted(set(slow_warnings))) if slow_warnings else "none") + ".")
w("")
w("## Stages of the test command")
w("")
w("| stage | s |")
w("|---|---:|")
for name, secs in stages:
    w(f"| {name} | {secs:.0f} |")
w("")
w("## Windows suite (under Wine)")
w("")
w(f"{len(win['ok'])} checks passed, {len(win['FAIL'])} failed, {len(win['gap'])} gaps "
  "(what Wine cannot show; docs/windows.md lists what needs a real Windows Server):")
w("")
for kind in ("FAIL", "gap"):
    for l in win[kind]:
        w(f"- {kind}: {l}")
w("")
w("## Benchmark summary (recorded in docs/benchmarks.md, not re-run here)")
w("")
bench = open("docs/benchmarks.md").read().splitlines() if os.path.exists("docs/benchmarks.md") else []
table, grab = [], False
for l in bench:
    if l.startswith("| target (issue 14)"):
        grab = True
    if grab:
        if not l.startswith("|"):
            break
        table.append(l)
w("\n".join(table) if table else "No targets table in docs/benchmarks.md.")
w("")
open("docs/test-report.md", "w").write("\n".join(out) + "\n")
print(f"wrote docs/test-report.md ({tot['passed']} Rust tests passed, {tot['failed']} failed)")
PY
exit "$status"
