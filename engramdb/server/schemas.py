"""The REST API's request and response bodies (pydantic v2), one per `Memory` operation.

Requests forbid unknown fields and take strict types: a typo or a number where a
string belongs is a 422, not a silent default. Values are checked once more, and
finally, by `Memory` itself."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

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


Id = Annotated[StrictStr, Field(min_length=1, max_length=256)]
Json = Annotated[dict[str, Any], AfterValidator(shallow)]
Filters = Json


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Scoped(Request):
    user_id: Id
    agent_id: Id | None = None
    session_id: Id | None = None


class MessageIn(Request):
    content: StrictStr
    role: Literal["user", "assistant", "system", "tool", "event"] = "user"
    id: StrictStr | StrictInt | None = Field(default=None, description="The caller's id for the turn (its source).")
    name: StrictStr | None = Field(default=None, description="The speaker.")
    timestamp: StrictStr | None = Field(default=None, description="When it was said (ISO 8601); default: now.")


class AddRequest(Scoped):
    messages: StrictStr | MessageIn | list[StrictStr | MessageIn] = Field(
        description="One message (a string or an object) or a list of them."
    )
    metadata: Json | None = None

    def as_messages(self) -> Any:
        def one(item: str | MessageIn) -> Any:
            return item if isinstance(item, str) else item.model_dump(exclude_none=True)

        return [one(m) for m in self.messages] if isinstance(self.messages, list) else one(self.messages)


class SearchRequest(Scoped):
    query: StrictStr
    limit: StrictInt = 10
    filters: Filters | None = None


class ContextRequest(Scoped):
    query: StrictStr
    budget_tokens: StrictInt = 1500
    filters: Filters | None = None


class UpdateRequest(Request):
    text: StrictStr
    user_id: Id | None = Field(default=None, description="Only if the memory belongs to this user.")
    metadata: Json | None = None
    reason: StrictStr | None = None


class ForgetRequest(Scoped):
    confirm: StrictBool = Field(description="Must be true: erases every memory of the scope.")


class ExportRequest(Scoped):
    pass


# -- responses -------------------------------------------------------------------------


# Records, hits and versions are the library's own dataclasses: the API cannot drift from them.
RecordOut = Record
HitOut = Hit
VersionOut = Version


class AddResponse(BaseModel):
    records: list[RecordOut]


class SearchResponse(BaseModel):
    hits: list[HitOut]


class ContextResponse(BaseModel):
    context: str


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


class StatsResponse(BaseModel):
    model_config = ConfigDict(extra="allow")

    records: int


class Status(BaseModel):
    status: str
    version: str | None = None


class ErrorDetail(BaseModel):
    type: str = Field(description="The Engram error class, e.g. InvalidInputError or NotFoundError.")
    message: str
    request_id: str


class ErrorResponse(BaseModel):
    error: ErrorDetail
