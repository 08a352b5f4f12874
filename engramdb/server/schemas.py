"""The REST API's request and response bodies (pydantic v2), one per `Memory` operation.

Requests forbid unknown fields and take strict types: a typo or a number where a
string belongs is a 422, not a silent default. Values are checked once more, and
finally, by `Memory` itself."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr,
                      create_model, model_validator)
from pydantic_core import PydanticCustomError

from .. import operations as ops
from ..messages import ROLE_ORDER
from ..types import Hit, Record, Version

MAX_DEPTH = 32  # nesting of metadata and filters: deeper JSON is refused, not recursed into


def shallow(value: Any, depth: int = 0) -> Any:
    """`value` unchanged, or ValueError when it nests deeper than MAX_DEPTH."""
    if depth > MAX_DEPTH:
        raise ValueError(f"nests deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        for item in value.values():
            shallow(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            shallow(item, depth + 1)
    return value


_SURROGATE = re.compile("[\ud800-\udfff]")


def json_problem(value: Any, where: str = "") -> str | None:
    """What is wrong with `value`, a parsed JSON document, that no store can keep: a
    string (or key) holding a lone surrogate (JSON's `\\ud800` escapes decode to one; no
    UTF-8 text can hold it), or NaN / Infinity (Python's JSON reader takes them; JSON has
    no such numbers). The place and the problem, without the value; None when sound."""
    stack: list[tuple[str, Any]] = [(where, value)]
    while stack:
        at, item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return f"{at or 'the body'} is not valid Unicode (it holds a lone surrogate)"
        elif isinstance(item, float):
            if item != item or item in (float("inf"), float("-inf")):
                return f"{at or 'the body'} is not a finite number (JSON has no NaN or Infinity)"
        elif isinstance(item, dict):
            for key, inner in item.items():
                if isinstance(key, str) and _SURROGATE.search(key):
                    return f"a key of {at or 'the body'} is not valid Unicode (it holds a lone surrogate)"
                stack.append((f"{at}.{key}" if at else str(key), inner))
        elif isinstance(item, list):
            stack.extend((f"{at}[{i}]", inner) for i, inner in enumerate(item))
    return None


Id = Annotated[StrictStr, Field(min_length=1, max_length=256)]
Json = Annotated[dict[str, Any], AfterValidator(shallow)]
Filters = Json


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Body(Request):
    """A request body: refused whole when any value in it is one no store can keep
    (`json_problem`)."""

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        problem = json_problem(data)
        if problem is not None:
            raise PydanticCustomError("json_value", "{problem}", {"problem": problem})
        return data


Role = Literal[ROLE_ORDER]  # the roles messages.py declares, in its order


class MessageIn(Request):
    content: StrictStr
    role: Role = "user"
    id: StrictStr | None = Field(default=None, description="The caller's id for the turn (its source).")
    name: StrictStr | None = Field(default=None, description="The speaker.")
    timestamp: StrictStr | None = Field(default=None, description="When it was said (ISO 8601); default: now.")


Messages = StrictStr | MessageIn | list[StrictStr | MessageIn]

# What each kind of parameter (operations.Kind) is in a request body.
KINDS: dict[str, Any] = {"id": Id, "text": StrictStr, "query": StrictStr, "int": StrictInt, "float": StrictFloat,
                         "bool": StrictBool, "json": Json, "timestamp": StrictStr, "ids": list[Id],
                         "messages": Messages}
DEFAULT_USER = "Whose memory; default: the API key's default user."
EXTRA_FIELDS: dict[str, tuple[Any, Any]] = {  # parameters of the REST surface's own (Form.extra)
    "confirm": (StrictBool, Field(description="Must be true: erases every memory of the scope.")),
}


class Scoped(Body):
    """The base of every request body derived from an operation."""

    def as_messages(self) -> Any:
        """`messages` as Memory.add takes them."""
        def one(item: str | MessageIn) -> Any:
            return item if isinstance(item, str) else item.model_dump(exclude_none=True)

        messages = getattr(self, "messages")
        return [one(m) for m in messages] if isinstance(messages, list) else one(messages)


def request_field(param: ops.Param) -> tuple[Any, Any]:
    """A body field for an operation's parameter: strict, with the row's default; a
    `user_id` is never required (the key's default user stands in)."""
    kind = KINDS[param.kind]
    if param.name == "user_id":
        return kind | None, Field(default=None, description=param.help if param.default is None else DEFAULT_USER)
    if param.required:
        return kind, Field(description=param.help or None)
    default = param.shown_default
    return (kind | None if default is None else kind), Field(default=default, description=param.help or None)


def request_model(op: ops.Operation, *, exclude: tuple[str, ...] = ()) -> type[Scoped]:
    """The body of `op`'s REST route: one field per parameter its REST form takes (not
    those in its path, `exclude`), then the form's own (`confirm`)."""
    form = op.form("rest")
    assert form is not None, op.name
    fields: dict[str, Any] = {p.public: request_field(p) for p in op.surface_params("rest") if p.public not in exclude}
    fields.update({name: EXTRA_FIELDS[name] for name in form.extra if name in EXTRA_FIELDS})
    name = "".join(part.capitalize() for part in op.name.strip("_").split("_")) + "Request"
    return create_model(name, __base__=Scoped, __module__=__name__, **fields)


def path_params(op: ops.Operation) -> tuple[str, ...]:
    form = op.form("rest")
    return tuple(re.findall(r"{(\w+)}", form.name)) if form is not None else ()


REQUESTS: dict[str, type[Scoped]] = {
    op.name: request_model(op, exclude=path_params(op))
    for op in ops.OPERATIONS
    if (form := op.form("rest")) is not None and form.name.split()[0] in ("POST", "PATCH") and op.name != "import_"
}
AddRequest = REQUESTS["add"]
SearchRequest = REQUESTS["search"]
ContextRequest = REQUESTS["context"]
RecallRequest = REQUESTS["recall"]
UpdateRequest = REQUESTS["update"]
ForgetRequest = REQUESTS["forget"]
ExportRequest = REQUESTS["export"]


# -- responses -------------------------------------------------------------------------


# Records, hits and versions are the library's own dataclasses: the API cannot drift from them.
RecordOut = Record
HitOut = Hit
VersionOut = Version


class AddResponse(BaseModel):
    records: list[RecordOut]
    skipped: int = Field(default=0, description="Empty messages left out (with `skip_empty`).")


class SearchResponse(BaseModel):
    hits: list[HitOut]


class ContextResponse(BaseModel):
    context: str


class RecallResponse(BaseModel):
    text: str = Field(description="The prompt block (what /v1/context returns).")
    hits: list[HitOut] = Field(description="The memories in the block, in block order.")
    complete: bool = Field(description="The whole scope fit the budget: nothing was left out.")
    sources: list[str] = Field(description="The source ids of every memory in the block, once each.")


class ListResponse(BaseModel):
    records: list[RecordOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")
    next_offset: int | None = Field(description="The same position as an offset; null on the last page.")


class HistoryResponse(BaseModel):
    versions: list[VersionOut]


class DeleteResponse(BaseModel):
    deleted: str


class ForgetResponse(BaseModel):
    forgotten: int


class ImportResponse(BaseModel):
    imported: int


class JobError(BaseModel):
    job: int
    error: str


class JobsResponse(BaseModel):
    model_config = ConfigDict(extra="allow")

    pending: int = Field(description="Jobs waiting to be distilled (some may be waiting out a retry backoff).")
    running: int = Field(description="Jobs being distilled now.")
    failed: int = Field(description="Jobs parked after their last attempt failed.")
    ready: int | None = Field(default=None, description="Jobs running or due now (not waiting out a backoff).")
    oldest: str | None = Field(default=None, description="When the oldest job in the queue, in any state, was queued.")
    backlog_age_s: float | None = Field(default=None, description=(
        "Seconds the oldest job not yet done (pending or running) has waited since it was queued; "
        "null when none waits."))
    distilled: int | None = Field(default=None, description=(
        "Jobs this server has distilled for the tenant since it opened the tenant's store (whole-tenant "
        "queries only)."))
    recent_errors: list[JobError] = Field(default_factory=list, description="The last errors, newest first.")


class StatsResponse(BaseModel):
    model_config = ConfigDict(extra="allow")

    records: int


class Status(BaseModel):
    status: str
    version: str | None = None


class Backlog(BaseModel):
    """The distillation queue over the tenants this server process has open."""

    tenants: int = Field(description="Tenants whose store this process has open (the figures cover these).")
    pending: int
    running: int
    failed: int
    ready: int = Field(description="Jobs running or due now (not waiting out a retry backoff).")
    backlog_age_s: float | None = Field(description=(
        "Seconds the oldest job not yet done (pending or running) has waited; null when none waits."))
    distilled: int = Field(description="Jobs this process has distilled since its tenants opened.")
    unreadable: int = Field(default=0, description="Open tenants whose queue could not be read (see the log).")
    max_backlog_age_s: float | None = Field(default=None, description=(
        "Past this backlog age /readyz answers 503 (config max_backlog_age_s); null: never."))


class Readiness(Status):
    jobs: Backlog | None = Field(default=None, description="The distillation backlog.")


class ErrorDetail(BaseModel):
    type: str = Field(description="The Engram error class, e.g. InvalidInputError or NotFoundError.")
    message: str
    request_id: str


class ErrorResponse(BaseModel):
    error: ErrorDetail
