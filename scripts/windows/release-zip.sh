#!/usr/bin/env bash
# Builds the Windows release zip:
#   msgrelay-<version>-windows-x86_64.zip
#     msgrelay.exe
#     deploy\windows\*   (install.ps1, uninstall.ps1, start/stop/status, .bat wrappers, example config)
#     deploy\sql\*, deploy\redis\*, deploy\msgrelay.toml.example
#     scripts\certs\*    (OpenSSL certificate scripts)
#     clients\python\send_message.py
#     docs\*             (windows.md first)
# Usage: scripts/windows/release-zip.sh [--exe PATH] [--out DIR]
#   without --exe: a release cross-build (x86_64-pc-windows-gnu, mingw).
# The Wine test shim (bcryptprimitives.dll) is never part of it: real Windows has the DLL.
set -euo pipefail
cd "$(dirname "$0")/../.."
EXE="" OUT="dist"
while [ $# -gt 0 ]; do
  case "$1" in
    --exe) EXE=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    *) echo "usage: $0 [--exe PATH] [--out DIR]" >&2; exit 2 ;;
  esac
done
if [ -z "$EXE" ]; then
  export CARGO_TARGET_DIR="${MSGRELAY_WINDOWS_TARGET_DIR:-$HOME/.cache/msgrelay/target-windows}"
  export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc CC_x86_64_pc_windows_gnu=x86_64-w64-mingw32-gcc
  cargo build --release -p msgrelay --bin msgrelay --target x86_64-pc-windows-gnu
  EXE="$CARGO_TARGET_DIR/x86_64-pc-windows-gnu/release/msgrelay.exe"
fi
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
mkdir -p "$OUT"
ZIP="$OUT/msgrelay-$VERSION-windows-x86_64.zip"
python3 - "$EXE" "$ZIP" <<'PY'
import glob, os, sys, zipfile
exe, out = sys.argv[1], sys.argv[2]
files = [(exe, "msgrelay.exe")]
for pattern in ["deploy/windows/*", "deploy/sql/*", "deploy/redis/*", "deploy/msgrelay.toml.example",
                "scripts/certs/*", "clients/python/send_message.py", "clients/python/README.md", "docs/*.md", "README.md"]:
    for path in sorted(glob.glob(pattern)):
        if os.path.isfile(path):
            files.append((path, path))
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
    for src, name in files:
        # '/' separators, as the zip format requires; Expand-Archive makes the folders.
        z.write(src, name)
print(out)
PY
