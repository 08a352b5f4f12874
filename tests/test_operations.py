"""One description per operation (engramdb/operations.py), and the three surfaces built
from it: every `Memory` method and parameter has a CLI, REST and MCP form, or a recorded
reason why not; each surface really takes what its row says; docs/cli.md and
docs/openapi.json are current. Then what the surfaces failed to offer before they were
derived (as_of, include_retired, recall with sources), driven through each surface."""

from __future__ import annotations

import asyncio
import inspect
import json
import re
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner
from server_helpers import over_mcp, start_deployment, stop_deployment

from engramdb import Memory
from engramdb import operations as ops
from engramdb.cli import main
from engramdb.config import Config
from engramdb.providers.fake import FakeEmbedder
from engramdb.stores import NewRecord
from engramdb.types import Scope

UNSET = getattr(click.core, "UNSET", None)  # click 8.2+: an option without a default
ROOT = Path(__file__).resolve().parents[1]
CLEAN_ENV = {"ENGRAM_CONFIG": None, "ENGRAM_STORE": None, "ENGRAM_EMBEDDER": "fake", "ENGRAM_EXTRACTOR": "none",
             "COLUMNS": "200"}


# -- the table against Memory ---------------------------------------------------------


def test_every_public_memory_attribute_is_an_operation_or_says_why_not():
    public = {name for name in dir(Memory) if not name.startswith("_")}
    unlisted = public - ops.BY_NAME.keys() - ops.NOT_OPERATIONS.keys()
    assert not unlisted, f"Memory methods without a row in engramdb/operations.py (or a NOT_OPERATIONS reason): " \
                         f"{sorted(unlisted)}"
    assert not ops.BY_NAME.keys() - public, "rows for methods Memory does not have"
    assert all(reason.strip() for reason in ops.NOT_OPERATIONS.values())


@pytest.mark.parametrize("op", ops.OPERATIONS, ids=lambda op: op.name)
def test_a_row_has_every_parameter_of_its_method_with_its_default(op):
    signature = inspect.signature(getattr(Memory, op.name))
    given = {name: p for name, p in signature.parameters.items() if name != "self"}
    described = {p.name for p in op.params}
    missing = given.keys() - described - op.internal.keys()
    assert not missing, f"Memory.{op.name} parameters without a row entry (or an `internal` reason): {missing}"
    assert not described - given.keys(), f"the row of {op.name} names parameters Memory.{op.name} lacks"
    for param in op.params:
        default = given[param.name].default
        expected = ops.REQUIRED if default is inspect.Parameter.empty else default
        assert param.default == expected, f"{op.name}({param.name}): the row says {param.default!r}, Memory {default!r}"


@pytest.mark.parametrize("op", ops.OPERATIONS, ids=lambda op: op.name)
@pytest.mark.parametrize("surface", ops.SURFACES)
def test_every_operation_has_a_form_on_every_surface_or_a_reason(op, surface):
    form = getattr(op, surface)
    if isinstance(form, ops.Form):
        assert form.name
        assert set(form.omit) <= {p.name for p in op.params}
        assert all(reason.strip() for reason in form.omit.values()), "an omitted parameter needs its reason"
    else:
        assert isinstance(form, str) and len(form.split()) >= 4, f"{op.name} has no {surface} form and no reason"


# -- each surface against the table -----------------------------------------------------


def _forms(surface: str) -> list[tuple[ops.Operation, ops.Form]]:
    return [(op, form) for op in ops.OPERATIONS if (form := op.form(surface)) is not None]


@pytest.mark.parametrize(("op", "form"), _forms("cli"), ids=lambda x: getattr(x, "name", ""))
def test_the_cli_command_takes_every_parameter_of_its_row(op, form):
    command = main.commands.get(form.name)
    assert command is not None, f"no `engram {form.name}` for Memory.{op.name}"
    taken = {param.name: param for param in command.params}
    for param in op.surface_params("cli"):
        name = "texts" if param.kind == "messages" else param.public  # add: arguments, --file or stdin
        assert name in taken, f"engram {form.name} has no option for {param.name}"
        if not param.required and isinstance(taken[name], click.Option) and not taken[name].is_flag:
            default = None if taken[name].default is UNSET else taken[name].default
            assert default == param.shown_default, f"engram {form.name} {param.name}: default drifted"
    missing = set(form.extra) - taken.keys()
    assert not missing, f"engram {form.name} lacks its own options {missing}"


def _openapi() -> dict:
    from engramdb.server.rest import openapi_schema

    return openapi_schema()


def _schema(document: dict, schema: dict) -> dict:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


@pytest.mark.parametrize(("op", "form"), _forms("rest"), ids=lambda x: getattr(x, "name", ""))
def test_the_rest_route_takes_every_parameter_of_its_row(op, form):
    document = _openapi()
    verb, path = form.name.split(" ", 1)
    route = document["paths"].get(path, {}).get(verb.lower())
    assert route is not None, f"no {form.name} for Memory.{op.name}"
    fields = {p["name"]: p.get("schema", {}) for p in route.get("parameters", [])}
    body = route.get("requestBody", {}).get("content", {}).get("application/json")
    if body is not None:
        fields.update(_schema(document, body["schema"]).get("properties", {}))
    for param in op.surface_params("rest"):
        assert param.public in fields, f"{form.name} has no field for {op.name}({param.name})"
        shown = fields[param.public]
        if not param.required and "default" in shown:
            assert shown["default"] == param.shown_default, f"{form.name} {param.public}: default drifted"
    assert not set(form.extra) - fields.keys(), f"{form.name} lacks {set(form.extra) - fields.keys()}"
    assert (verb == "GET") <= op.reads, "a GET route only reads"


def _tools() -> dict:
    from engramdb.server.mcp_server import build_mcp
    from engramdb.server.tenants import TenantRegistry

    server = build_mcp(TenantRegistry(None, Config()), default=None)
    return {tool.name: tool for tool in asyncio.run(server.list_tools())}


@pytest.mark.parametrize(("op", "form"), _forms("mcp"), ids=lambda x: getattr(x, "name", ""))
def test_the_mcp_tool_takes_every_parameter_of_its_row_with_its_annotations(op, form):
    tool = _tools().get(form.name)
    assert tool is not None, f"no MCP tool {form.name} for Memory.{op.name}"
    properties = tool.input_schema["properties"]
    for param in op.surface_params("mcp"):
        assert param.public in properties, f"MCP {form.name} has no argument for {op.name}({param.name})"
        if not param.required and "default" in properties[param.public]:
            assert properties[param.public]["default"] == param.shown_default
    assert not set(form.extra) - properties.keys()
    hints = tool.annotations
    served = ops.by_form("mcp", form.name)  # `forget` erases one memory or a scope
    assert hints.read_only_hint == all(o.reads for o in served)
    assert hints.destructive_hint == any(o.destructive for o in served)
    assert hints.idempotent_hint == all(o.idempotent for o in served)


def test_every_tool_and_command_comes_from_a_row():
    """Nothing is served that the table does not describe (bench, serve, keys, proxy, chat and
    the commands of Memory's constructor options aside)."""
    rows = {form.name for _, form in _forms("mcp")}
    assert set(_tools()) == rows
    commands = {form.name for _, form in _forms("cli")}
    own = {"demo", "bench", "serve", "keys", "migrate", *ops.COMMANDS_OF_OPTIONS, "ui", "proxy", "chat"}
    assert set(main.commands) - commands <= own, set(main.commands) - commands - own


# -- docs -------------------------------------------------------------------------------


def _sections(doc: str) -> dict[str, str]:
    """docs/cli.md's text under each `## engram NAME` heading (down to the next such heading)."""
    parts = re.split(r"^##+ `?engram ([\w -]+?)`?\s*$", doc, flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def test_docs_cli_names_every_option_of_every_command():
    sections = _sections((ROOT / "docs" / "cli.md").read_text(encoding="utf-8"))
    stale = []
    for _, form in _forms("cli"):
        command = main.commands[form.name]
        text = sections.get(form.name, "")
        for param in command.params:
            if isinstance(param, click.Option):
                flag = max(param.opts, key=len)
                if flag != "--help" and not re.search(rf"{re.escape(flag)}\b", text):
                    stale.append(f"engram {form.name} {flag}")
    assert not stale, f"docs/cli.md is stale: options not described in their command's section: {stale}"


def test_docs_openapi_is_current():
    checked_in = json.loads((ROOT / "docs" / "openapi.json").read_text(encoding="utf-8"))
    assert checked_in == _openapi(), "docs/openapi.json is stale: python -m engramdb.server.rest > docs/openapi.json"


def test_the_readme_lists_every_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"[\w-]+", re.search(r"`engram add \|[^`]*`", readme).group(0))) - {"engram"}
    assert set(main.commands) - {"ui"} <= listed, f"README's command list lacks {set(main.commands) - listed}"


def test_message_roles_are_declared_once():
    from engramdb.messages import ROLE_ORDER, ROLES
    from engramdb.server.schemas import MessageIn

    assert set(ROLE_ORDER) == ROLES
    assert MessageIn.model_json_schema()["properties"]["role"]["enum"] == list(ROLE_ORDER)
    role = next(p for p in main.commands["add"].params if p.name == "role")
    assert set(role.type.choices) == ROLES


# -- what the surfaces now offer, driven ---------------------------------------------------


def _seed(memory) -> dict[str, str]:
    """Two turns (January and June 2024) and a retired fact (true January to March) of
    an earlier turn (its own source, so search never drops it as an echo of a hit)."""
    added = memory.add([{"role": "user", "content": "I live in Paris", "timestamp": "2024-01-10T10:00:00Z"},
                        {"role": "user", "content": "I like green tea", "timestamp": "2024-06-10T10:00:00Z"}],
                       user_id="alice", session_id="s1")
    retired = NewRecord(id="mem_retired0000000000000000000001", scope=Scope("alice"), kind="fact",
                        text="alice lives in Lyon", created_at="2024-01-05T10:00:00Z",
                        recorded_at="2024-01-05T10:00:00Z", sources=["m0"],
                        valid_to="2024-03-01T00:00:00Z")
    vectors = memory.embedder.embed([retired.text])
    memory.store.insert([retired], np.asarray(vectors), actor="alice", enqueue=False)
    return {"paris": added.records[0].id, "tea": added.records[1].id, "retired": retired.id}


@pytest.fixture
def cli_store(tmp_path):
    url = f"sqlite:///{tmp_path / 'engram.db'}"
    with Memory(url, config=Config(extractor="none"), embedder=FakeEmbedder()) as memory:
        ids = _seed(memory)

    def run(*args: str):
        result = CliRunner(env=CLEAN_ENV).invoke(main, ["--store", url, *args, "--json"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    return run, ids


def test_cli_list_include_retired_and_as_of(cli_store):
    run, ids = cli_store
    assert {r["id"] for r in run("list", "--user", "alice")} == {ids["paris"], ids["tea"]}
    assert ids["retired"] in {r["id"] for r in run("list", "--user", "alice", "--include-retired")}
    assert {r["id"] for r in run("list", "--user", "alice", "--as-of", "2024-02-01")} == {ids["paris"], ids["retired"]}


def test_cli_context_as_of_and_recall_with_sources(cli_store):
    run, ids = cli_store
    then = run("context", "tea", "--user", "alice", "--as-of", "2024-02-01")["context"]
    assert "green tea" not in then and "Paris" in then
    assert "green tea" in run("context", "tea", "--user", "alice")["context"]
    found = run("recall", "tea", "--user", "alice", "--budget", "300")
    assert found["complete"] is True and ids["tea"] in found["sources"]
    assert {h["id"] for h in found["hits"]} == {ids["paris"], ids["tea"]}


def test_cli_update_then_history(cli_store):
    run, ids = cli_store
    assert run("update", ids["tea"], "I like black tea", "--reason", "changed")["text"] == "I like black tea"
    assert [v["event"] for v in run("history", ids["tea"])] == ["add", "update"]


def test_cli_reembed_re_embeds_a_store_of_another_embedder(tmp_path):
    url = f"sqlite:///{tmp_path / 'engram.db'}"
    with Memory(url, config=Config(extractor="none"), embedder=FakeEmbedder(dim=8)) as memory:
        memory.add("I live in Paris", user_id="alice")
    env = {**CLEAN_ENV}
    refused = CliRunner(env=env).invoke(main, ["--store", url, "search", "Paris", "--user", "alice"])
    assert refused.exit_code == 2 and "engram reembed" in refused.output
    done = CliRunner(env=env).invoke(main, ["--store", url, "reembed", "--json"], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["records"] == 1
    again = CliRunner(env=env).invoke(main, ["--store", url, "search", "Paris", "--user", "alice", "--json"])
    assert again.exit_code == 0 and json.loads(again.stdout)[0]["text"] == "I live in Paris"


@pytest.fixture
def deployment(tmp_path):
    live, deployment = start_deployment(tmp_path)
    memory = live.server.config.app.state.registry.memory("acme")
    deployment.ids = _seed(memory)
    yield deployment
    stop_deployment(live, deployment)


def test_rest_search_context_list_take_as_of_and_include_retired(deployment):
    client, ids = deployment.client("acme"), deployment.ids

    def search(**extra):
        response = client.post("/v1/memories/search", json={"query": "Lyon Paris", "user_id": "alice", **extra})
        assert response.status_code == 200, response.text
        return {h["id"] for h in response.json()["hits"]}

    assert ids["retired"] not in search()
    assert ids["retired"] in search(include_retired=True)
    assert search(as_of="2024-02-01") == {ids["paris"], ids["retired"]}
    block = client.post("/v1/context", json={"query": "tea", "user_id": "alice", "as_of": "2024-02-01"}).json()
    assert "green tea" not in block["context"] and "Paris" in block["context"]
    listed = client.get("/v1/memories", params={"user_id": "alice", "include_retired": "true"}).json()
    assert ids["retired"] in {r["id"] for r in listed["records"]}
    bad = client.post("/v1/memories/search", json={"query": "Paris", "user_id": "alice", "as_of": "yesterday-ish"})
    assert bad.status_code == 422 and bad.json()["error"]["type"] == "InvalidInputError"


def test_mcp_context_with_sources_and_as_of(deployment):
    ids = deployment.ids

    async def calls(client):
        return (await client.call_tool("context_with_sources", {"query": "tea", "user_id": "alice"}),
                await client.call_tool("context", {"query": "tea", "user_id": "alice", "as_of": "2024-02-01"}),
                await client.call_tool("recall", {"query": "Lyon", "user_id": "alice", "include_retired": True}),
                await client.call_tool("memory_history", {"memory_id": ids["tea"], "user_id": "alice"}),
                await client.call_tool("get_memory", {"memory_id": ids["tea"], "user_id": "bob"}))

    found, then, retired, history, foreign = over_mcp(deployment, "acme", calls)
    assert found.structured_content["complete"] is True and ids["tea"] in found.structured_content["sources"]
    block = "".join(getattr(c, "text", "") for c in then.content)
    assert "Paris" in block and "green tea" not in block
    assert ids["retired"] in {h["id"] for h in retired.structured_content["hits"]}
    assert [v["event"] for v in history.structured_content["versions"]] == ["add"]
    assert foreign.is_error and "NotFoundError" in "".join(getattr(c, "text", "") for c in foreign.content)


def test_a_read_only_key_cannot_use_a_derived_writing_tool(deployment):
    async def calls(client):
        return await client.call_tool("update_memory", {"memory_id": deployment.ids["tea"], "text": "x",
                                                        "user_id": "alice"})

    refused = over_mcp(deployment, "acme-ro", calls)
    assert refused.is_error and "PermissionDeniedError" in "".join(getattr(c, "text", "") for c in refused.content)


def test_adding_a_row_is_all_it_takes(monkeypatch, tmp_path):
    """A new Memory method reaches the CLI, REST and MCP by a row alone (here a made-up
    one, `Memory.tally`, counting a scope's memories of one kind)."""

    def tally(self, *, user_id: str, kind: str | None = None, session_id: str | None = None) -> int:
        return sum(1 for r in self.list(user_id=user_id, session_id=session_id, limit=50) if kind in (None, r.kind))

    row = ops.Operation(
        "tally", "How many memories a scope holds (of one kind).",
        (ops.USER, ops.Param("kind", "text", None, help="Only this kind."), ops.SESSION),
        returns="int", result="tally", writes=False,
        cli=ops.Form("tally", derived=True), rest=ops.Form("GET /v1/tally", derived=True),
        mcp=ops.Form("tally", derived=True),
    )
    monkeypatch.setattr(Memory, "tally", tally, raising=False)
    monkeypatch.setattr(ops, "OPERATIONS", (*ops.OPERATIONS, row))
    monkeypatch.setitem(ops.BY_NAME, "tally", row)
    import engramdb.cli as cli

    main.add_command(cli.derived_command(row))
    try:
        url = f"sqlite:///{tmp_path / 'cli.db'}"
        with Memory(url, config=Config(extractor="none"), embedder=FakeEmbedder()) as memory:
            _seed(memory)
        result = CliRunner(env=CLEAN_ENV).invoke(main, ["--store", url, "tally", "--user", "alice", "--kind", "turn",
                                                        "--json"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout) == {"tally": 2}
    finally:
        main.commands.pop("tally")

    live, deployment = start_deployment(tmp_path / "server")
    try:
        _seed(live.server.config.app.state.registry.memory("acme"))
        answer = deployment.client("acme").get("/v1/tally", params={"user_id": "alice"})
        assert answer.status_code == 200 and answer.json() == {"tally": 2}
        assert deployment.client("globex").get("/v1/tally", params={"user_id": "alice"}).json() == {"tally": 0}

        async def calls(client):
            tools = {t.name: t for t in (await client.list_tools()).tools}
            return tools["tally"], await client.call_tool("tally", {"user_id": "alice", "kind": "turn"})

        tool, called = over_mcp(deployment, "acme", calls)
        assert tool.annotations.read_only_hint is True and set(tool.input_schema["properties"]) == {
            "user_id", "kind", "session_id"}
        assert called.structured_content == {"tally": 2}
    finally:
        stop_deployment(live, deployment)
