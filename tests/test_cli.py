"""The `engram` command line, run through click's CliRunner against real SQLite files.

Behaviour tests use the fake embedder (ENGRAM_EMBEDDER=fake, read by Config.load);
the demo test uses the real default embedder, since its answers are the point."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from engramdb.cli import main
from engramdb.retrieval import MIN_BUDGET_TOKENS
from engramdb.types import Hit, Record, Version

DOCS = Path(__file__).resolve().parent.parent / "docs" / "cli.md"
# Variables a developer's shell may set that would change what the CLI reads.
CLEAN_ENV = {"ENGRAM_CONFIG": None, "ENGRAM_STORE": None, "COLUMNS": "200"}


def walk(group: click.Group, prefix: tuple[str, ...] = ()):
    """Every registered command as (path, command), groups included."""
    for name, command in sorted(group.commands.items()):
        path = (*prefix, name)
        yield path, command
        if isinstance(command, click.Group):
            yield from walk(command, path)


COMMANDS = list(walk(main))
LEAVES = [(p, c) for p, c in COMMANDS if not isinstance(c, click.Group)]


class Cli:
    def __init__(self, store: str, env: dict[str, str | None]) -> None:
        self.store = store
        self.env = env

    def __call__(self, *args: str, input: str | None = None, store: str | None = None) -> Result:
        runner = CliRunner(env=self.env)
        return runner.invoke(main, ["--store", store or self.store, *args], input=input, catch_exceptions=False)

    def ok(self, *args: str, input: str | None = None, store: str | None = None) -> Result:
        result = self(*args, input=input, store=store)
        assert result.exit_code == 0, result.output
        return result

    def json(self, *args: str, input: str | None = None, store: str | None = None):
        return json.loads(self.ok(*args, "--json", input=input, store=store).stdout)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(f"sqlite:///{tmp_path}/x.db", {**CLEAN_ENV, "ENGRAM_EMBEDDER": "fake"})


def assert_error(result: Result, code: int, cls: str, text: str) -> None:
    assert result.exit_code == code, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {cls}: "), lines[0]
    assert text in lines[0]
    assert "Traceback" not in result.output


# -- help and docs ---------------------------------------------------------------------


def test_expected_commands_are_registered():
    names = set(main.commands)
    assert {"add", "search", "list", "get", "history", "delete", "forget", "export", "import", "stats", "demo",
            "context"} <= names


def test_top_level_help():
    result = CliRunner(env=CLEAN_ENV).invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "Usage: engram" in result.stdout
    for name in main.commands:
        assert name in result.stdout


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=" ".join)
def test_every_command_help_runs(path):
    result = CliRunner(env=CLEAN_ENV).invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert f"Usage: engram {' '.join(path)}" in result.stdout


def test_every_command_is_documented_with_an_example():
    doc = DOCS.read_text(encoding="utf-8")
    headings = {line.lstrip("#").strip().strip("`") for line in doc.splitlines() if line.startswith("#")}
    missing = [" ".join(p) for p, _ in COMMANDS if f"engram {' '.join(p)}" not in headings]
    assert not missing, f"commands without a heading in docs/cli.md: {missing}"
    no_example = [
        " ".join(p) for p, _ in COMMANDS
        if not re.search(rf"^\$ engram (--\S+ \S+ )*{re.escape(' '.join(p))}\b", doc, re.M)
    ]
    assert not no_example, f"commands without a `$ engram …` example in docs/cli.md: {no_example}"


@pytest.mark.parametrize("path", [p for p, _ in LEAVES], ids=" ".join)
def test_every_command_takes_json(path):
    command = dict(COMMANDS)[path]
    assert any("--json" in param.opts for param in command.params), f"engram {' '.join(path)} has no --json"


def test_importing_the_cli_stays_light():
    code = (
        "import sys\n"
        "from engramdb.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('onnxruntime', 'tokenizers', 'usearch', 'httpx') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("HEAVY []"), out


# -- add -------------------------------------------------------------------------------


def test_add_from_arguments(cli):
    added = cli.json("add", "I moved to Lisbon", "My dog is Pixel", "--user", "alice", "--session", "s1")
    records = added["records"]
    assert [r["text"] for r in records] == ["I moved to Lisbon", "My dog is Pixel"]
    assert {r["role"] for r in records} == {"user"}
    assert {r["session_id"] for r in records} == {"s1"}
    assert set(records[0]) == {f.name for f in fields(Record)}
    listed = cli.json("list", "--user", "alice")
    assert [r["id"] for r in listed] == [r["id"] for r in records]


def test_add_table_output_and_role(cli):
    result = cli.ok("add", "Noted: you like tea", "--user", "alice", "--role", "assistant")
    assert "Added 1 memories (user alice)" in result.stdout
    assert "Noted: you like tea" in result.stdout
    assert cli.json("list", "--user", "alice")[0]["role"] == "assistant"
    # Stored text is shown as it is, never read as rich markup.
    assert "see [bold]x[/] [[y]]" in cli.ok("add", "see [bold]x[/] [[y]]", "--user", "alice").stdout
    assert "see [bold]x[/] [[y]]" in cli.ok("search", "see", "--user", "alice").stdout


def test_add_from_stdin_json_list(cli):
    messages = [
        {"id": "t1", "role": "user", "name": "Alice", "content": "I moved to Lisbon",
         "timestamp": "2024-05-18T19:40:00Z"},
        {"id": "t2", "role": "assistant", "content": "Welcome to Lisbon!", "timestamp": "2024-05-18T19:41:00Z"},
    ]
    records = cli.json("add", "--user", "alice", "--session", "s2", input=json.dumps(messages))["records"]
    assert [r["sources"] for r in records] == [["t1"], ["t2"]]
    assert [r["role"] for r in records] == ["user", "assistant"]
    assert records[0]["name"] == "Alice"
    assert records[0]["created_at"] == "2024-05-18T19:40:00.000000Z"


def test_add_from_stdin_single_object(cli):
    records = cli.json("add", "--user", "alice", input='{"content": "I am vegetarian", "id": "v1"}')["records"]
    assert len(records) == 1 and records[0]["sources"] == ["v1"]


def test_add_from_jsonl_file_in_batches(cli, tmp_path):
    path = tmp_path / "chat.jsonl"
    lines = [json.dumps({"id": f"m{i}", "role": "user", "content": f"message number {i}"}) for i in range(7)]
    path.write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    result = cli.ok("add", "--user", "alice", "--file", str(path), "--batch-size", "3",
                    "--metadata", '{"source": "slack"}', "--json")
    assert "7/7" in result.stderr  # the progress bar, on stderr: stdout stays JSON
    records = json.loads(result.stdout)["records"]
    assert [r["sources"] for r in records] == [[f"m{i}"] for i in range(7)]
    assert all(r["metadata"] == {"source": "slack"} for r in records)
    stored = cli.json("list", "--user", "alice", "--limit", "100")
    assert [r["text"] for r in stored] == [f"message number {i}" for i in range(7)]


def test_add_validates_the_whole_file_before_storing(cli, tmp_path):
    path = tmp_path / "chat.jsonl"
    good = [json.dumps({"content": f"fine {i}"}) for i in range(4)]
    path.write_text("\n".join([*good, json.dumps({"role": "robot", "content": "bad"})]), encoding="utf-8")
    result = cli("add", "--user", "alice", "--file", str(path), "--batch-size", "1")
    assert_error(result, 2, "InvalidInputError", "messages[4].role")
    assert "chat.jsonl line 5" in result.stderr
    assert not (tmp_path / "x.db").exists()  # refused before the store was even opened


def test_bad_json_on_stdin_is_a_usage_error(cli):
    assert_error(cli("add", "--user", "alice", input="[{not json"), 2, "InvalidInputError", "stdin is not valid JSON")


def test_bad_jsonl_line_is_named(cli, tmp_path):
    path = tmp_path / "chat.jsonl"
    path.write_text('{"content": "one"}\n{"content": "two"\n', encoding="utf-8")
    assert_error(cli("add", "--user", "alice", "--file", str(path)), 2, "InvalidInputError", "line 2 is not valid JSON")


def test_add_with_nothing_to_add(cli):
    assert_error(cli("add", "--user", "alice", input=""), 2, "InvalidInputError", "stdin holds no messages")


def test_add_requires_user(cli):
    result = cli("add", "hello")
    assert result.exit_code == 2
    assert "--user" in result.stderr


def test_bad_metadata_json(cli):
    assert_error(cli("add", "hi", "--user", "alice", "--metadata", "{oops"), 2, "InvalidInputError",
                 "--metadata is not valid JSON")


# -- reads -----------------------------------------------------------------------------


@pytest.fixture
def alice(cli):
    cli.ok("add", "I moved to Lisbon in May", "My dog Pixel loves the beach", "--user", "alice", "--session", "s1")
    cli.ok("add", "I am a vegetarian and love Thai curry", "--user", "alice", "--session", "s2")
    cli.ok("add", "Noted, Lisbon it is", "--user", "alice", "--session", "s2", "--role", "assistant")
    cli.ok("add", "Bob lives in Lisbon too", "--user", "bob")
    return cli


def test_search_json_structure(alice):
    hits = alice.json("search", "Lisbon", "--user", "alice")
    assert hits and set(hits[0]) == {f.name for f in fields(Hit)}
    texts = [h["text"] for h in hits]
    assert "Bob lives in Lisbon too" not in texts  # another user's memory
    assert texts[0] in {"I moved to Lisbon in May", "Noted, Lisbon it is"}
    assert all(isinstance(h["score"], float) for h in hits)
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)


def test_search_limit_session_and_filters(alice):
    assert len(alice.json("search", "Lisbon", "--user", "alice", "--limit", "1")) == 1
    in_s1 = alice.json("search", "Lisbon", "--user", "alice", "--session", "s1")
    assert in_s1 and {h["session_id"] for h in in_s1} == {"s1"}
    said = alice.json("search", "Lisbon", "--user", "alice", "--filters", '{"role": "assistant"}')
    assert [h["text"] for h in said] == ["Noted, Lisbon it is"]


def test_search_table_shows_text_and_id(alice):
    hit = alice.json("search", "vegetarian", "--user", "alice", "--limit", "1")[0]
    out = alice.ok("search", "vegetarian", "--user", "alice").stdout
    assert hit["id"] in out and "vegetarian" in out


def test_search_bad_filters(alice):
    assert_error(alice("search", "x", "--user", "alice", "--filters", "[1]"), 2, "InvalidInputError",
                 "--filters must be a JSON object")
    assert_error(alice("search", "x", "--user", "alice", "--filters", '{"nope": 1}'), 2, "InvalidInputError", "")


def test_list_pages(alice):
    everything = alice.json("list", "--user", "alice")
    assert len(everything) == 4
    page = alice.json("list", "--user", "alice", "--limit", "2", "--offset", "1")
    assert [r["id"] for r in page] == [r["id"] for r in everything[1:3]]
    assert {r["session_id"] for r in alice.json("list", "--user", "alice", "--session", "s2")} == {"s2"}
    assert "I moved to Lisbon in May" in alice.ok("list", "--user", "alice").stdout


def test_get_history_delete(alice):
    record = alice.json("list", "--user", "alice")[0]
    assert alice.json("get", record["id"]) == record
    assert record["id"] in alice.ok("get", record["id"]).stdout
    versions = alice.json("history", record["id"])
    assert set(versions[0]) == {f.name for f in fields(Version)}
    assert [(v["event"], v["text"]) for v in versions] == [("add", record["text"])]
    assert alice.json("delete", record["id"]) == {"deleted": record["id"]}
    assert_error(alice("get", record["id"]), 2, "NotFoundError", record["id"])
    after = alice.json("history", record["id"])
    assert [v["event"] for v in after] == ["add", "delete"]
    assert all(v["text"] is None for v in after)
    assert "erased" in alice.ok("history", record["id"]).stdout


def test_get_respects_user(alice):
    record = alice.json("list", "--user", "alice")[0]
    assert_error(alice("get", record["id"], "--user", "bob"), 2, "NotFoundError", "no memory with id")


def test_unknown_id_exits_2(cli):
    cli.ok("add", "a first memory makes the store", "--user", "alice", "--no-wait")
    for command in ("get", "history", "delete"):
        result = cli(command, "mem_nope")
        assert_error(result, 2, "NotFoundError", "no memory with id 'mem_nope'")


def test_forget_refuses_without_yes(alice):
    result = alice("forget", "--user", "alice")
    assert_error(result, 2, "UsageError", "--yes")
    assert alice.json("stats", "--user", "alice")["records"] == 4


def test_forget_with_yes(alice):
    assert alice.json("forget", "--user", "alice", "--session", "s1", "--yes") == {"forgotten": 2}
    assert {r["session_id"] for r in alice.json("list", "--user", "alice")} == {"s2"}
    assert "Forgot 2 memories" in alice.ok("forget", "--user", "alice", "--yes").stdout
    assert alice.json("list", "--user", "alice") == []
    assert len(alice.json("list", "--user", "bob")) == 1


def test_context(alice):
    block = alice.json("context", "Lisbon", "--user", "alice", "--budget", "500")["context"]
    assert "] Alice: I moved to Lisbon in May" in block or "] user: I moved to Lisbon in May" in block
    assert "Bob" not in block
    out = alice.ok("context", "Lisbon", "--user", "alice", "--budget", "500").stdout
    assert out.strip() == block.strip()
    # a budget too small to hold a line is refused, not answered with an empty block
    assert_error(alice("context", "Lisbon", "--user", "alice", "--budget", "10"), 2, "InvalidInputError",
                 f"budget_tokens must be between {MIN_BUDGET_TOKENS}")


def test_stats(alice):
    data = alice.json("stats", "--user", "alice")
    assert data["records"] == 4 and data["sessions"] == 2 and data["by_kind"] == {"turn": 4}
    everything = alice.json("stats")
    assert everything["records"] == 5 and everything["users"] == 2
    assert everything["embedder"] == "fake-hash-64"
    out = alice.ok("stats").stdout
    assert "records" in out and "turn=5" in out


# -- cubes -----------------------------------------------------------------------------


def test_export_import_round_trip(alice, tmp_path):
    cube = tmp_path / "alice.cube.jsonl"
    assert alice.json("export", str(cube), "--user", "alice") == {"exported": 4, "path": str(cube)}
    other = f"sqlite:///{tmp_path}/other.db"
    assert alice.json("import", str(cube), store=other)["imported"] == 4
    original = alice.json("list", "--user", "alice")
    copied = alice.json("list", "--user", "alice", store=other)
    assert copied == original
    # Importing again skips records that exist; --user moves them into a new scope.
    assert alice.json("import", str(cube), store=other)["imported"] == 0
    assert "Imported 4 memories" in alice.ok("import", str(cube), "--user", "carol", store=other).stdout
    moved = alice.json("list", "--user", "carol", store=other)
    assert [r["text"] for r in moved] == [r["text"] for r in original]
    assert not {r["id"] for r in moved} & {r["id"] for r in original}
    assert alice.json("search", "vegetarian", "--user", "carol", store=other)[0]["text"].startswith("I am a vegetarian")


def test_import_of_a_missing_or_bad_file(cli, tmp_path):
    assert_error(cli("import", str(tmp_path / "nope.jsonl")), 2, "InvalidInputError", "no such cube file")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"format": "something-else"}\n', encoding="utf-8")
    assert_error(cli("import", str(bad)), 2, "InvalidInputError", "is not an Engram cube")


# -- configuration and errors ----------------------------------------------------------


def test_config_file(tmp_path):
    store = tmp_path / "from-config.db"
    config = tmp_path / "engram.toml"
    config.write_text(f'store = "sqlite:///{store}"\nembedder = "fake:16"\n', encoding="utf-8")
    runner = CliRunner(env=CLEAN_ENV)
    result = runner.invoke(main, ["--config", str(config), "add", "hello", "--user", "u"])
    assert result.exit_code == 0, result.output
    stats = json.loads(runner.invoke(main, ["--config", str(config), "stats", "--json"]).stdout)
    assert stats["store"] == f"sqlite:///{store}" and stats["embedder"] == "fake-hash-16"


def test_broken_config_is_a_usage_error(tmp_path):
    config = tmp_path / "engram.toml"
    config.write_text("store = [unclosed\n", encoding="utf-8")
    result = CliRunner(env=CLEAN_ENV).invoke(main, ["--config", str(config), "stats"])
    assert_error(result, 2, "ConfigError", "is not valid TOML")
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("colour = 'blue'\n", encoding="utf-8")
    result = CliRunner(env=CLEAN_ENV).invoke(main, ["--config", str(unknown), "stats"])
    assert_error(result, 2, "ConfigError", "unknown config keys")


def test_bad_store_url_is_a_usage_error(cli):
    assert_error(cli("stats", store="mysql://nowhere/db"), 2, "ConfigError", "unknown store URL scheme")


def test_provider_failure_exits_1(tmp_path):
    env = {
        **CLEAN_ENV, "ENGRAM_EMBEDDER": "openai:some-model", "ENGRAM_EMBEDDER_BASE_URL": "http://127.0.0.1:9/v1",
        "ENGRAM_EMBEDDER_TIMEOUT_S": "5", "HTTP_PROXY": None, "HTTPS_PROXY": None, "ALL_PROXY": None,
        "http_proxy": None, "https_proxy": None, "all_proxy": None,
    }
    result = CliRunner(env=env).invoke(main, ["--store", f"sqlite:///{tmp_path}/p.db", "add", "hi", "--user", "u"])
    assert_error(result, 1, "ProviderError", "embedding server unreachable")


# -- demo ------------------------------------------------------------------------------


def test_demo_with_the_real_embedder():
    env = {**CLEAN_ENV, "ENGRAM_EMBEDDER": None}
    result = CliRunner(env=env).invoke(main, ["demo"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Stored 36 turns for user alice" in out
    assert "Q: Where does Alice live now?" in out
    # The first answer to "where does Alice live now" is the turn saying she lives in Lisbon.
    first = out.split("Q: Where does Alice live now?")[1].split("Q: ")[0]
    assert "1. Alice: Hi again, I finally made it. I've been living in Lisbon" in first
    assert "source s2-01 · session s2 · 2024-05-18" in first
    assert "Pixel" in out.split("Q: What is the name of Alice's dog?")[1].split("Q: ")[0]
    assert "October 12" in out.split("Q: When does Alice fly to Japan?")[1].split("Context for")[0]
    assert "- [18 May 2024] " in out.split("Context for")[1]


def test_demo_json_reuses_its_store(tmp_path):
    store = f"sqlite:///{tmp_path}/demo.db"
    runner = CliRunner(env={**CLEAN_ENV, "ENGRAM_EMBEDDER": "fake"})
    first = json.loads(runner.invoke(main, ["--store", store, "demo", "--json"], catch_exceptions=False).stdout)
    assert first["added"] == 36 and first["user_id"] == "alice"
    assert [a["question"] for a in first["answers"]][0] == "Where does Alice live now?"
    assert all(len(a["hits"]) == 3 for a in first["answers"])
    assert all(h["sources"][0].startswith(("s1-", "s2-", "s3-")) for a in first["answers"] for h in a["hits"])
    second = json.loads(runner.invoke(main, ["--store", store, "demo", "--json"], catch_exceptions=False).stdout)
    assert second["added"] == 0
    stats = json.loads(runner.invoke(main, ["--store", store, "stats", "--json"]).stdout)
    assert stats["records"] == 36 and stats["sessions"] == 3


def test_add_waits_for_distillation_and_search_answers_as_of(tmp_path):
    cli = Cli(f"sqlite:///{tmp_path}/d.db", {**CLEAN_ENV, "ENGRAM_EMBEDDER": "fake", "ENGRAM_EXTRACTOR": "offline"})
    first = cli.json("add", "--user", "ana", input='{"content": "I live in Porto.", "timestamp": "2023-01-01T00:00:00Z"}')
    assert first["distilled"] is True
    cli.ok("add", "--user", "ana", input='{"content": "I moved to Riga.", "timestamp": "2023-06-01T00:00:00Z"}')
    facts = cli.json("list", "--user", "ana", "--filters", '{"kind": "fact"}')
    assert [f["text"] for f in facts] == ["The user lives in Riga"]
    then = cli.json("search", "where does the user live", "--user", "ana", "--as-of", "2023-03-01",
                    "--filters", '{"kind": "fact"}')
    assert [h["text"] for h in then] == ["The user lives in Porto"]
    both = cli.json("search", "where does the user live", "--user", "ana", "--include-retired",
                    "--filters", '{"kind": "fact"}')
    assert {h["text"] for h in both} == {"The user lives in Porto", "The user lives in Riga"}
    jobs = cli.json("jobs", "--wait")
    assert (jobs["pending"], jobs["running"], jobs["failed"], jobs["finished"]) == (0, 0, 0, True)
    assert cli.json("compact") == {"compacted": True}
