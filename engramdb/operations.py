"""Every public `Memory` operation, described once; the CLI, REST and MCP derive from it.

A row (`Operation`) says what the operation is called, its parameters with their
types and defaults, whether it reads or writes, whether it destroys, whether calling it
twice is the same as once, and what it returns; then, for each surface, the form it
takes there (`Form`: the command, the route, the tool, and the parameters that surface
names differently or leaves out, each with its reason) or why it has none (a string).

The surfaces build from the rows: click options and arguments for each parameter
(`cli.options`, `cli.call_args`), pydantic request bodies (`server/schemas.py`
`REQUESTS`), REST routes with their query, path and body parameters
(`server/rest.py` `_add_derived_route`), MCP tools with their annotations
(`server/mcp_server.py` `derived_tool`), each calling the method through the caller's
key (`server/access.py` `ScopedMemory.run`). `tests/test_operations.py` fails when a
`Memory` method or parameter has no row, when a row's defaults drift from the
signature, when a surface lacks a form or a parameter the row gives it (hand-written
forms included), and when docs/cli.md or docs/openapi.json is stale.

Adding an operation, e.g. `Memory.related(id, *, user_id=None, limit=10)`:

    Operation(
        "related", "Memories linked to one memory, nearest first.",
        (MEMORY_ID, USER_OPTIONAL, Param("limit", "int", 10, help="How many.")),
        returns="list[Hit]", result="hits", writes=False, target="memory",
        cli=Form("related", derived=True),
        rest=Form("GET /v1/memories/{memory_id}/related", derived=True),
        mcp=Form("related_memories", derived=True, title="Related memories"),
    ),

That row is the whole change: `engram related ID`, the route (GET/DELETE: query and
path parameters; POST/PATCH: a JSON body) and the tool are built from it. `target` says
how a key's scope applies ("scope": its `user_id` checked; "memory": the memory's owner;
"tenant": the whole tenant for an unscoped key). A surface with no form gets a reason
instead (`mcp="an operator's figures, not an agent's"`); a parameter one surface does
not take goes in that Form's `omit` with its reason; a Memory parameter no surface
takes goes in `internal`. Then `python -m engramdb.server.rest > docs/openapi.json`
and a section for the command in docs/cli.md naming each option."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

REQUIRED: Any = ...  # a parameter without a default

# What a parameter holds. Each surface maps the kind to its own type (click, pydantic, MCP).
Kind = Literal["id", "text", "query", "int", "float", "bool", "json", "timestamp", "ids", "messages", "path"]


@dataclass(frozen=True)
class Param:
    name: str  # the keyword Memory's method takes
    kind: Kind
    default: Any = REQUIRED
    help: str = ""
    surface_default: Any = REQUIRED  # what the surfaces default to, when not Memory's default (page sizes)
    wire: str | None = None  # the name every surface gives it, when not `name` (`id` -> `memory_id`)
    flag: str | None = None  # the CLI option, when not --<wire with dashes> (`--user`, `--budget`)

    @property
    def public(self) -> str:
        return self.wire or self.name

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def shown_default(self) -> Any:
        """The default every surface offers."""
        return self.default if self.surface_default is REQUIRED else self.surface_default


@dataclass(frozen=True)
class Form:
    """An operation on one surface: the CLI command name, the REST route
    ("POST /v1/recall"), or the MCP tool name."""

    name: str
    omit: dict[str, str] = field(default_factory=dict)  # parameter -> why this surface has no such parameter
    extra: tuple[str, ...] = ()  # parameters of the surface's own (`confirm`, `cursor`, `--wait`)
    derived: bool = False  # built from the row by the surface's generic code, not written by hand
    title: str = ""  # MCP: the tool's title (default: from the name)
    help: str = ""  # what this surface says the operation does, when not the row's summary (an agent's tool)


@dataclass(frozen=True)
class Operation:
    name: str  # the Memory method
    summary: str
    params: tuple[Param, ...]
    returns: str  # what the method returns (a Python type)
    result: str  # the key under which REST and MCP give a plain result back (a `to_dict()` result is the body)
    writes: bool
    destructive: bool = False
    idempotent: bool = True
    target: Literal["scope", "memory", "tenant", "store"] = "scope"  # what it acts on, for access checks
    cli: Form | str = ""  # a Form, or why the CLI has none
    rest: Form | str = ""
    mcp: Form | str = ""
    internal: dict[str, str] = field(default_factory=dict)  # Memory parameters no surface takes, and why

    @property
    def reads(self) -> bool:
        return not self.writes

    def param(self, name: str) -> Param:
        return next(p for p in self.params if p.name == name)

    def form(self, surface: str) -> Form | None:
        found = getattr(self, surface)
        return found if isinstance(found, Form) else None

    def surface_params(self, surface: str) -> tuple[Param, ...]:
        """The row's parameters that `surface`'s form takes."""
        form = self.form(surface)
        return tuple(p for p in self.params if form is not None and p.name not in form.omit)


SURFACES = ("cli", "rest", "mcp")

# -- the parameters shared by many operations --------------------------------------------

USER = Param("user_id", "id", help="Whose memories.", flag="--user")
USER_OPTIONAL = Param("user_id", "id", None, help="Only if the memory belongs to this user.", flag="--user")
SESSION = Param("session_id", "id", None, help="Only this session.", flag="--session")
AGENT = Param("agent_id", "id", None, help="Only this agent.", flag="--agent")
MEMORY_ID = Param("id", "id", help="The memory's id.", wire="memory_id")
QUERY = Param("query", "query", help="What to look for (a question or keywords).")
FILTERS = Param("filters", "json", None, help='A filter object, e.g. {"role": "user"} (operators eq ne gt gte lt '
                "lte in nin).")
AS_OF = Param("as_of", "timestamp", None, help="Answer as of this date (ISO 8601): what was true then.")
RETIRED = Param("include_retired", "bool", False, help="Also superseded and retracted memories.")
ARCHIVED = Param("include_archived", "bool", False, help="Also memories archived by decay (Config.decay).")
BUDGET = Param("budget_tokens", "int", 1500, help="Token budget of the block.", flag="--budget")
METADATA = Param("metadata", "json", None, help="A JSON object stored with every message.")
PROFILE = Param("include_profile", "bool", False, help="Lead with the user's profile, paid from the budget.")

NO_FILES = "names a file on the server's disk: the REST route carries the cube in the request or response body"
OPERATOR = "an operator's command over the whole store, run where the store is (engram CLI)"

OPERATIONS: tuple[Operation, ...] = (
    # -- writes ----------------------------------------------------------------------
    Operation(
        "add", "Store messages; each is searchable when this returns.",
        (Param("messages", "messages", help="A string, a {role, content, id, name, timestamp} object, or a list."),
         USER, SESSION, AGENT, METADATA,
         Param("skip_empty", "bool", False, help="Leave out empty messages (counted) instead of refusing the batch.")),
        returns="AddResult", result="records", writes=True, idempotent=False,
        cli=Form("add", extra=("file", "role", "wait", "batch_size")),
        rest=Form("POST /v1/memories"),
        mcp=Form("remember", extra=("text", "role", "name", "timestamp")),
    ),
    Operation(
        "update", "Replace a memory's text; the old text stays in its history.",
        (MEMORY_ID, Param("text", "text", help="The new text."), USER_OPTIONAL, METADATA,
         Param("reason", "text", None, help="Why (kept in the history).")),
        returns="Record", result="record", writes=True, idempotent=False, target="memory",
        cli=Form("update"), rest=Form("PATCH /v1/memories/{memory_id}", derived=True),
        mcp=Form("update_memory", derived=True, title="Correct a memory"),
    ),
    Operation(
        "delete", "Erase one memory: its text leaves the store, its indexes and its history.",
        (MEMORY_ID, USER_OPTIONAL),
        returns="None", result="deleted", writes=True, destructive=True, target="memory",
        cli=Form("delete"), rest=Form("DELETE /v1/memories/{memory_id}"),
        mcp=Form("forget", extra=("confirm",)),  # one tool erases a memory or a scope
    ),
    Operation(
        "forget", "Erase every memory of a user, or of one of their sessions or agents.",
        (Param("user_id", "id", help="Whose memories.", flag="--user"), SESSION, AGENT),
        returns="int", result="forgotten", writes=True, destructive=True,
        cli=Form("forget", extra=("yes",)), rest=Form("POST /v1/forget", extra=("confirm",), derived=True),
        mcp=Form("forget", extra=("confirm", "memory_id")),
    ),
    Operation(
        "reset", "Erase every memory of every user.", (Param("confirm", "bool", False),),
        returns="None", result="reset", writes=True, destructive=True, target="store",
        cli="the store is a file (or a database) of the user's: delete it, or `engram forget` each user",
        rest="a key's tenant holds many users' memories: erasing them all is not an API call (forget a user)",
        mcp="an agent never erases every user's memories",
    ),
    # -- reads -----------------------------------------------------------------------
    Operation(
        "get", "One memory.", (MEMORY_ID, USER_OPTIONAL),
        returns="Record", result="record", writes=False, target="memory",
        cli=Form("get"), rest=Form("GET /v1/memories/{memory_id}", derived=True),
        mcp=Form("get_memory", derived=True, title="Get a memory"),
    ),
    Operation(
        "list", "A scope's memories in time order, a page at a time.",
        (USER, AGENT, SESSION, Param("limit", "int", 100, help="Page size.", surface_default=20),
         Param("offset", "int", 0, help="Skip this many."), FILTERS, AS_OF, RETIRED, ARCHIVED),
        returns="list[Record]", result="records", writes=False,
        cli=Form("list"), rest=Form("GET /v1/memories", extra=("cursor",)),
        mcp=Form("list_memories", title="List memories"),
    ),
    Operation(
        "history", "Every version of a memory, oldest first; an erased one keeps only hashes.",
        (MEMORY_ID, USER_OPTIONAL),
        returns="list[Version]", result="versions", writes=False, target="memory",
        cli=Form("history"), rest=Form("GET /v1/memories/{memory_id}/history", derived=True),
        mcp=Form("memory_history", derived=True, title="History of a memory", help=(
            "Every version of a memory, oldest first (added, updated, superseded, retracted, erased), with the "
            "reason; an erased one keeps only hashes.")),
    ),
    Operation(
        "search", "The memories that best match a query (keywords and meaning, fused).",
        (QUERY, USER, Param("limit", "int", 10, help="How many hits."), FILTERS, SESSION, AGENT, AS_OF, RETIRED,
         ARCHIVED),
        returns="list[Hit]", result="hits", writes=False,
        cli=Form("search"), rest=Form("POST /v1/memories/search", derived=True),
        mcp=Form("recall", derived=True, title="Recall",
                 help="Search the user's memories: the best matches for `query`, best first."),
    ),
    Operation(
        "context", "A prompt block of what matters for a query, within a token budget.",
        (QUERY, USER, BUDGET, SESSION, AGENT, FILTERS, AS_OF, PROFILE),
        returns="str", result="context", writes=False,
        cli=Form("context"), rest=Form("POST /v1/context", derived=True),
        mcp=Form("context", derived=True, title="Context for a reply", help=(
            "Call before answering: a block of what you know about the user that matters for `query`, within "
            "`budget_tokens`, ready to put in your prompt.")),
    ),
    Operation(
        "recall", "The prompt block of `context` with the memories in it, their sources, and whether the whole "
        "scope fit (`complete`).",
        (QUERY, USER, BUDGET, SESSION, AGENT, FILTERS, AS_OF, PROFILE),
        returns="Recall", result="recall", writes=False,
        cli=Form("recall"),
        rest=Form("POST /v1/recall", derived=True),
        mcp=Form("context_with_sources", derived=True, title="Context with its sources", help=(
            "The block `context` gives, with the memories in it, the ids of the turns they came from "
            "(`sources`), and `complete`: whether the user's whole memory fit the budget.")),
    ),
    Operation(
        "profile", "The user's current facts and preferences by topic (home, work, family, tastes, plans, …), "
        "as a block and as items with their sources.",
        (USER, AGENT, Param("budget_tokens", "int", None, help="Token budget of the profile (default: the "
                            "config's profile_budget_tokens).", flag="--budget"), AS_OF),
        returns="Profile", result="profile", writes=False,
        cli=Form("profile", derived=True), rest=Form("GET /v1/profile", derived=True),
        mcp=Form("profile", derived=True, title="The user's profile", help=(
            "What is true of the user now (or `as_of` a date), by topic: home, work, family, health, tastes, "
            "plans. Each item names the memories it rests on.")),
    ),
    # -- notes and links ---------------------------------------------------------------
    Operation(
        "note", "A memory's note: keywords, tags and a one-line context, at its current version or an earlier one.",
        (MEMORY_ID, USER_OPTIONAL, Param("version", "int", None, help="This version of the note (default: the "
                                         "current one).")),
        returns="Note", result="note", writes=False, target="memory",
        cli=Form("note", derived=True), rest=Form("GET /v1/memories/{memory_id}/note", derived=True),
        mcp=Form("memory_note", derived=True, title="A memory's note"),
    ),
    Operation(
        "related", "Memories linked to one memory (same event, shared names, similar meaning), best first, "
        "each with the reason and strength of its link.",
        (MEMORY_ID, USER_OPTIONAL, Param("depth", "int", 1, help="Links to walk (1-5)."),
         Param("limit", "int", 10, help="How many."),
         Param("min_strength", "float", 0.0, help="Only links at least this strong (0-1)."), RETIRED),
        returns="list[Related]", result="related", writes=False, target="memory",
        cli=Form("related", derived=True), rest=Form("GET /v1/memories/{memory_id}/related", derived=True),
        mcp=Form("related_memories", derived=True, title="Related memories"),
    ),
    Operation(
        "revert_note", "Restore an earlier version of a memory's note, as a new version (kept in its history).",
        (MEMORY_ID, Param("version", "int", help="The version to restore."), USER_OPTIONAL),
        returns="Note", result="note", writes=True, idempotent=False, target="memory",
        cli=Form("revert-note", derived=True), rest=Form("POST /v1/memories/{memory_id}/note/revert", derived=True),
        mcp="notes are tidied by people inspecting the store (CLI, REST), not by an agent mid-conversation",
    ),
    # -- conclusions -------------------------------------------------------------------
    Operation(
        "think", "Store a conclusion reached about the user, resting on some of their memories: it is retired "
        "when one of them stops being current and erased with an erased one.",
        (Param("text", "text", help="The conclusion."), USER,
         Param("sources", "ids", help="Ids of the user's memories or turns it rests on."),
         Param("agent_id", "id", None, help="The agent that reached it.", flag="--agent"),
         Param("session_id", "id", None, help="The session it was reached in.", flag="--session"),
         Param("metadata", "json", None, help="A JSON object stored with the thought.")),
        returns="Record", result="record", writes=True, idempotent=False,
        cli=Form("think", derived=True), rest=Form("POST /v1/thoughts", derived=True),
        mcp=Form("think", derived=True, title="Record a conclusion"),
    ),
    Operation(
        "feedback", "Say which memories an answer to a query used (cited) and which it was given but did not: "
        "each one's utility moves up or down.",
        (QUERY, Param("used", "ids", None, help="Ids of the memories the answer used."),
         Param("unused", "ids", None, help="Ids of the memories it was given but did not use."),
         Param("user_id", "id", None, help="Whose memories.", flag="--user")),
        returns="None", result="noted", writes=True, idempotent=False,
        cli=Form("feedback", derived=True), rest=Form("POST /v1/feedback", derived=True),
        mcp=Form("feedback", derived=True, title="Which memories an answer used"),
    ),
    Operation(
        "vitals", "What use and time did to a memory: strength, last recall, recalls, confirmations, utility.",
        (MEMORY_ID, USER_OPTIONAL),
        returns="Vitals", result="vitals", writes=False, target="memory",
        cli=Form("vitals", derived=True), rest=Form("GET /v1/memories/{memory_id}/vitals", derived=True),
        mcp="a memory's figures are for people and programs inspecting the store (REST "
            "/v1/memories/{memory_id}/vitals), not for an agent's context",
    ),
    # -- cubes -----------------------------------------------------------------------
    Operation(
        "export", "A scope's memories as a portable JSONL cube.",
        (Param("path", "path", help="Where to write the cube."), USER, AGENT, SESSION),
        returns="int", result="exported", writes=False,
        cli=Form("export"), rest=Form("POST /v1/export", omit={"path": NO_FILES}),
        mcp="a cube is a file for people and programs, not for an agent's context: REST /v1/export",
    ),
    Operation(
        "import_", "Load a cube; records already present are skipped.",
        (Param("path", "path", help="The cube to load."),
         Param("user_id", "id", None, help="Move every record into this user's scope (under new ids).",
               flag="--user")),
        returns="int", result="imported", writes=True, idempotent=True,
        cli=Form("import"), rest=Form("POST /v1/import", omit={"path": NO_FILES}),
        mcp="a cube is a file for people and programs, not for an agent's context: REST /v1/import",
    ),
    # -- housekeeping ----------------------------------------------------------------
    Operation(
        "stats", "Counts for the store, or for one user.",
        (Param("user_id", "id", None, help="Only this user's memories.", flag="--user"),),
        returns="dict", result="stats", writes=False, target="tenant",
        cli=Form("stats"), rest=Form("GET /v1/stats"),
        mcp="an operator's figures, not an agent's: REST /v1/stats",
    ),
    Operation(
        "jobs", "The distillation queue: pending, running and failed jobs, recent errors.",
        (Param("user_id", "id", None, help="Only this user's jobs.", flag="--user"),),
        returns="dict", result="jobs", writes=False, target="tenant",
        cli=Form("jobs", extra=("wait",)), rest=Form("GET /v1/jobs", derived=True),
        mcp="an operator's figures, not an agent's: REST /v1/jobs",
    ),
    Operation(
        "flush", "Wait for background work (distillation, index builds).",
        (Param("timeout", "int", None, help="Seconds to wait at most."),),
        returns="bool", result="finished", writes=False, target="store",
        cli="`engram jobs --wait` runs the queue until nothing is ready",
        rest="the server distils in the background and never holds a request for it: GET /v1/jobs shows progress",
        mcp="the server distils in the background: nothing for an agent to wait for",
    ),
    Operation(
        "compact", "Rewrite the store so erased text leaves the file (slow on a big store).", (),
        returns="None", result="compacted", writes=True, target="store",
        cli=Form("compact"), rest=OPERATOR, mcp=OPERATOR,
    ),
)

BY_NAME: dict[str, Operation] = {op.name: op for op in OPERATIONS}

# Public attributes of Memory that are not operations a surface serves.
NOT_OPERATIONS: dict[str, str] = {
    "close": "ends the Memory object's life in the process; a surface closes its own Memory",
    "store": "the Store object (a Python handle), not an operation",
    "embedder": "the Embedder object (a Python handle), not an operation",
    "config": "the Config object; surfaces build it from their options and the environment",
    "tenant": "the tenant this Memory was opened for (set by the server), not an operation",
    "read_only": "how this Memory was opened, not an operation",
    "changes": "the hub of change listeners (engramdb/changes.py), a Python handle, not an operation",
    "activation_states": "the local model states kept beside the store (a Python handle); `engram chat` uses them",
    # Notes and links (issue 12): Python only for now; their rows (CLI, REST, MCP) come with the merge.
}

# Memory's constructor options the CLI offers as commands (not rows: they are not methods).
COMMANDS_OF_OPTIONS: dict[str, str] = {
    "reembed": "engram reembed: open the store with Memory(..., reembed=True) and re-embed every memory",
}


def body_of(op: Operation, result: Any) -> Any:
    """What REST and MCP answer with `op`'s `result`: its own `to_dict()`, or under the
    row's `result` key (a list of such, or a plain value)."""
    if hasattr(result, "to_dict"):
        return result.to_dict()
    if isinstance(result, dict):  # figures (jobs, stats): the body itself
        return result
    if isinstance(result, list):
        return {op.result: [item.to_dict() if hasattr(item, "to_dict") else item for item in result]}
    return {op.result: result}


def operation(name: str) -> Operation:
    return BY_NAME[name]


def by_form(surface: str, name: str) -> list[Operation]:
    """The operations whose form on `surface` is called `name` (one MCP tool may serve two)."""
    return [op for op in OPERATIONS if (f := op.form(surface)) is not None and f.name == name]
