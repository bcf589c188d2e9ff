"""PEP 517 build backend for the msgrelay Python client, with no build dependencies.

The client is one module (`send_message.py`) and one console script, so a wheel is a zip of that
file plus its `.dist-info`. Keeping the backend in the tree means `pip install ./clients/python`
needs nothing from a package index (the relay's deployments are often offline).
Metadata comes from pyproject.toml's [project] table (name, version, description,
requires-python, scripts), so there is one place to change it.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import tarfile
import zipfile
from typing import Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULE = "send_message.py"


def _project() -> Tuple[Dict[str, str], Dict[str, str]]:
    """The string keys of [project] and the entries of [project.scripts]."""
    with open(os.path.join(HERE, "pyproject.toml"), encoding="utf-8") as f:
        text = f.read()
    tables: Dict[str, Dict[str, str]] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        header = re.fullmatch(r"\[([A-Za-z0-9_.-]+)\]", line)
        if header:
            current = tables.setdefault(header.group(1), {})
            continue
        pair = re.fullmatch(r'"?([A-Za-z0-9_.-]+)"?\s*=\s*"([^"]*)"', line)
        if pair and current is not None:
            current[pair.group(1)] = pair.group(2)
    return tables["project"], tables.get("project.scripts", {})


def _names() -> Tuple[str, str, str]:
    project, _ = _project()
    dist = re.sub(r"[-_.]+", "_", project["name"])
    return project["name"], project["version"], dist


def _metadata() -> str:
    project, _ = _project()
    lines = [
        "Metadata-Version: 2.1",
        "Name: " + project["name"],
        "Version: " + project["version"],
        "Summary: " + project.get("description", ""),
        "Requires-Python: " + project.get("requires-python", ">=3.8"),
    ]
    return "\n".join(lines) + "\n"


def _entry_points() -> str:
    _, scripts = _project()
    return "[console_scripts]\n" + "".join("%s = %s\n" % kv for kv in sorted(scripts.items()))


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return "%s,sha256=%s,%d" % (path, digest, len(data))


def _wheel_files() -> List[Tuple[str, bytes]]:
    _, version, dist = _names()
    info = "%s-%s.dist-info" % (dist, version)
    with open(os.path.join(HERE, MODULE), "rb") as f:
        module = f.read()
    files = [
        (MODULE, module),
        (info + "/METADATA", _metadata().encode()),
        (info + "/WHEEL", b"Wheel-Version: 1.0\nGenerator: msgrelay_build\nRoot-Is-Purelib: true\nTag: py3-none-any\n"),
        (info + "/entry_points.txt", _entry_points().encode()),
    ]
    record = "".join(_record_line(p, d) + "\n" for p, d in files) + info + "/RECORD,,\n"
    return files + [(info + "/RECORD", record.encode())]


def _write_wheel(directory: str) -> str:
    _, version, dist = _names()
    name = "%s-%s-py3-none-any.whl" % (dist, version)
    with zipfile.ZipFile(os.path.join(directory, name), "w", zipfile.ZIP_DEFLATED) as whl:
        for path, data in _wheel_files():
            whl.writestr(path, data)
    return name


def build_wheel(wheel_directory: str, config_settings: Optional[dict] = None, metadata_directory: Optional[str] = None) -> str:
    return _write_wheel(wheel_directory)


def build_editable(wheel_directory: str, config_settings: Optional[dict] = None, metadata_directory: Optional[str] = None) -> str:
    # A copy, not a link: the client is one file and an editable link adds nothing but a .pth.
    return _write_wheel(wheel_directory)


def build_sdist(sdist_directory: str, config_settings: Optional[dict] = None) -> str:
    _, version, dist = _names()
    base = "%s-%s" % (dist, version)
    name = base + ".tar.gz"
    with tarfile.open(os.path.join(sdist_directory, name), "w:gz") as tar:
        for rel in ("pyproject.toml", MODULE, "README.md", "_build/msgrelay_build.py"):
            tar.add(os.path.join(HERE, rel), arcname=base + "/" + rel)
        pkg_info = _metadata().encode()
        ti = tarfile.TarInfo(base + "/PKG-INFO")
        ti.size = len(pkg_info)
        tar.addfile(ti, io.BytesIO(pkg_info))
    return name


def get_requires_for_build_wheel(config_settings: Optional[dict] = None) -> List[str]:
    return []


def get_requires_for_build_sdist(config_settings: Optional[dict] = None) -> List[str]:
    return []


def get_requires_for_build_editable(config_settings: Optional[dict] = None) -> List[str]:
    return []
