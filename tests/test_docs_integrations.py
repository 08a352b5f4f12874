"""Every example of docs/integrations.md runs as written, and prints what its
`# -> ...` comments say (the real frameworks, the real embedder, no model calls)."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "integrations.md"
SECTIONS = re.findall(r"^## ([^\n]+)\n(.*?)(?=^## |\Z)", DOC.read_text(), flags=re.S | re.M)
EXAMPLES = {title: re.search(r"```python\n(.*?)```", body, flags=re.S).group(1)
            for title, body in SECTIONS if "```python" in body}


def test_every_framework_has_an_example_of_at_most_ten_lines_of_code():
    assert set(EXAMPLES) == {"LangGraph", "LangChain", "OpenAI Agents SDK", "LlamaIndex", "pydantic-ai", "AutoGen",
                             "Moving from mem0"}
    for title, code in EXAMPLES.items():
        lines = [line for line in code.splitlines() if line.strip() and not line.lstrip().startswith(("#", "from ",
                                                                                                       "import "))]
        assert len(lines) <= 10, (title, len(lines))


@pytest.mark.parametrize("title", sorted(EXAMPLES))
def test_the_example_runs_and_prints_what_it_says(title, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = EXAMPLES[title]
    expected = [line.split("# -> ", 1)[1] for line in code.splitlines() if line.startswith("# -> ")]
    assert expected, "an example shows what it prints"
    from engramdb.memory import Memory

    opened: list[Memory] = []  # the example's stores, closed after it (their background lanes stop)
    init = Memory.__init__

    def recording(self, *args, **kwargs):
        init(self, *args, **kwargs)
        opened.append(self)

    monkeypatch.setattr(Memory, "__init__", recording)
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(code, f"{DOC}#{title}", "exec"), {"__name__": "__docs__"})
    finally:
        for mem in opened:
            mem.close()
    printed = out.getvalue().splitlines()
    assert printed == expected
