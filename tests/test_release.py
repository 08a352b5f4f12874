"""A release a user can install: `python -m build` makes a wheel that installs into a
fresh virtualenv (not editable, dependencies from the package index, no extras) and runs
`engram demo` from there; one version string; a CHANGELOG entry for it.

Slow (~1 min: the dependencies are installed into the new virtualenv, from pip's cache
once they were downloaded), and part of `make test`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

import engramdb

ROOT = Path(__file__).resolve().parents[1]


def test_one_version_string():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project and "version" in project["dynamic"]  # read from engramdb/__init__.py
    assert re.fullmatch(r"\d+\.\d+\.\d+([ab]|rc)?\d*", engramdb.__version__)
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert re.search(rf"^## \[?{re.escape(engramdb.__version__)}\]?", changelog, flags=re.M), \
        "CHANGELOG.md has no section for this version"


@pytest.mark.slow
def test_the_wheel_installs_into_a_fresh_virtualenv_and_runs_the_demo(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(ROOT)],
                   check=True, capture_output=True, env=env, timeout=300)
    (wheel,) = dist.glob("*.whl")
    assert wheel.name == f"engramdb-{engramdb.__version__}-py3-none-any.whl"
    names = zipfile.ZipFile(wheel).namelist()
    assert "engramdb/integrations/langgraph.py" in names and "engramdb/compat/mem0.py" in names
    assert not [n for n in names if n.startswith(("tests/", ".venv/", "docs/"))]

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, env=env, timeout=120)
    python = venv / "bin" / "python"
    # The test venv's pip installs into the new one (--python): no pip bootstrap, no compile step.
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-compile",
         "--find-links", str(dist), str(wheel)], capture_output=True, text=True, env=env, timeout=540)
    assert installed.returncode == 0, installed.stderr[-3000:]

    where = subprocess.run([str(python), "-c", "import engramdb, json; print(json.dumps([engramdb.__file__, "
                            "engramdb.__version__]))"], capture_output=True, text=True, env=env, cwd=tmp_path,
                           check=True)
    path, version = json.loads(where.stdout)
    assert Path(path).is_relative_to(venv) and version == engramdb.__version__  # the wheel's copy, not this tree

    demo = subprocess.run([str(venv / "bin" / "engram"), "demo"], capture_output=True, text=True, cwd=tmp_path,
                          env={**env, "COLUMNS": "200"}, timeout=300)
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "Stored" in demo.stdout and "Lisbon" in demo.stdout
