"""The README's quick start is executed exactly as written."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_first_screen_shows_the_two_commands():
    first_screen = "\n".join(README.read_text().splitlines()[:12])
    assert "make demo" in first_screen
    assert "make test" in first_screen


def test_readme_quick_start_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    snippet = python_blocks()[0]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(snippet, str(README), "exec"), {"__name__": "__readme__"})
    printed = out.getvalue()
    assert "I moved to Berlin last May ['m1'] s1" in printed
    assert "- [2 June 2024] user: I moved to Berlin last May" in printed
    assert (tmp_path / "engram.db").exists()
