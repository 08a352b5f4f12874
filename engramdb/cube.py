"""The portable "cube": one scope's memories as versioned JSON Lines.

    {"format": "engram-cube", "version": 1, "embedder": {"name": …, "dim": …}, "scope": {…}, …}
    {"type": "record", "record": {…}, "vector": "<base64 float32>" | null, "versions": [{…}, …]}
    …

Vectors travel with their embedder's name: a store with the same embedder takes them
as they are, any other store re-embeds the text."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from .clock import normalize_ts
from .errors import InvalidInputError, StorageError
from .living.vitals import STATES, Vitals
from .stores.base import ExportedRecord
from .types import Record, Scope, Version

FORMAT = "engram-cube"
VERSION = 1
OPTIONAL_RECORD_FIELDS = {"state"}  # a cube written before they existed lacks them (the defaults)


def write(path: str | os.PathLike, items: Iterable[ExportedRecord], *, scope: Scope, embedder: tuple[str, int],
          exported_at: str, notes: Callable[[list[str]], dict[str, Any]] | None = None) -> int:
    """Write a cube atomically (to a temporary file, then renamed). Returns the record count.
    `notes(ids)` gives the written records' notes and links (living/notes.py), written
    last as one line of type "notes" when there are any."""
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    count = 0
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            header = {
                "format": FORMAT, "version": VERSION, "exported_at": exported_at,
                "embedder": {"name": embedder[0], "dim": embedder[1]}, "scope": asdict(scope),
            }
            fh.write(json.dumps(header) + "\n")
            written = []
            for item in items:
                fh.write(json.dumps(_encode(item), ensure_ascii=False) + "\n")
                written.append(item.record.id)
                count += 1
            carried = notes(written) if notes is not None else {}
            if any(carried.values()):  # a store without notes writes the cube an older Engram reads
                fh.write(json.dumps({"type": "notes", **carried}, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StorageError(f"cannot write {target}: {exc}") from exc
    return count


def _encode(item: ExportedRecord) -> dict[str, Any]:
    vector = None
    if item.vector is not None:
        vector = base64.b64encode(np.ascontiguousarray(item.vector, dtype=np.float32).tobytes()).decode()
    return {
        "type": "record",
        "record": item.record.to_dict(),
        "vector": vector,
        "versions": [v.to_dict() for v in item.versions],
        **({"vitals": item.vitals.to_dict()} if item.vitals is not None else {}),
    }


def _vitals(raw: Any, memory_id: str) -> Vitals | None:
    """A record's vitals in a cube (absent: it had none, or the cube predates them)."""
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) != {f.name for f in fields(Vitals)}:
        raise ValueError("vitals fields differ")
    vitals = Vitals(**raw)
    if vitals.memory_id != memory_id:
        raise ValueError("vitals name another memory")
    if isinstance(vitals.strength, bool) or not isinstance(vitals.strength, (int, float)) or vitals.strength < 1:
        raise ValueError("vitals strength must be a number of at least 1")
    if not isinstance(vitals.utility, (int, float)) or not -1 <= vitals.utility <= 1:
        raise ValueError("vitals utility must be between -1 and 1")
    if vitals.last_recall is not None:
        vitals = replace(vitals, last_recall=normalize_ts(vitals.last_recall, field="last_recall"))
    for name in ("recalls", "confirmations", "used", "unused"):
        value = getattr(vitals, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"vitals {name} must be a count")
    return vitals


def read(path: str | os.PathLike) -> tuple[dict[str, Any], list[ExportedRecord]]:
    """Read and validate a whole cube before anything is written."""
    try:
        with open(path, encoding="utf-8") as fh:
            return _parse(fh, str(path))
    except FileNotFoundError:
        raise InvalidInputError(f"no such cube file: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"cannot read cube {path}: {exc}") from exc


def _parse(fh: TextIO, name: str) -> tuple[dict[str, Any], list[ExportedRecord]]:
    lines: Iterator[str] = iter(fh)
    header = _json_line(next(lines, ""), name, 1)
    if header.get("format") != FORMAT:
        raise InvalidInputError(f"{name} is not an Engram cube (format {header.get('format')!r})")
    if header.get("version") != VERSION:
        raise InvalidInputError(f"{name} is cube version {header.get('version')!r}; this Engram reads {VERSION}")
    embedder = header.get("embedder") or {}
    dim = embedder.get("dim")
    items = []
    record_fields = {f.name for f in fields(Record)}
    version_fields = {f.name for f in fields(Version)}
    for number, line in enumerate(lines, start=2):
        if not line.strip():
            continue
        data = _json_line(line, name, number)
        if data.get("type") == "notes":
            header = {**header, "notes": _notes_line(data, name, number)}
            continue
        try:
            if data.get("type") != "record":
                raise ValueError(f"unknown line type {data.get('type')!r}")
            raw = data["record"]
            if set(raw) != record_fields and set(raw) | OPTIONAL_RECORD_FIELDS != record_fields:
                raise ValueError(f"record fields differ: {sorted(set(raw) ^ record_fields)}")
            record = Record(**raw)
            if record.state not in STATES or record.state == "erased":
                raise ValueError(f"record state {record.state!r} is not one of {list(STATES[:-1])}")
            Scope(record.user_id, record.agent_id, record.session_id)
            if not isinstance(record.text, str) or not record.text:
                raise ValueError("record text must be a non-empty string")
            versions = []
            for v in data.get("versions") or []:
                if set(v) != version_fields:
                    raise ValueError("version fields differ")
                versions.append(Version(**v))
            vitals = _vitals(data.get("vitals"), record.id)
            vector = None
            if data.get("vector") is not None:
                vector = np.frombuffer(base64.b64decode(data["vector"], validate=True), dtype=np.float32)
                if dim is not None and len(vector) != dim:
                    raise ValueError(f"vector has {len(vector)} dimensions, header says {dim}")
        except (ValueError, KeyError, TypeError, AttributeError, InvalidInputError) as exc:
            raise InvalidInputError(f"{name} line {number}: {exc}") from None
        items.append(ExportedRecord(record=record, vector=vector, versions=versions, vitals=vitals))
    return header, items


def _notes_line(data: dict[str, Any], name: str, number: int) -> dict[str, Any]:
    """A cube's notes, links and entity-graph rows, checked for shape before anything is written."""
    def strings(value: Any) -> bool:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)

    notes, relations = data.get("notes", []), data.get("relations", [])
    queue, graph = data.get("note_queue", []), data.get("graph_mentions", [])
    ok = (isinstance(graph, list) and all(isinstance(g, list) and len(g) == 3 and strings(g[:2]) and strings(g[2])
                                          for g in graph) and isinstance(notes, list) and isinstance(relations, list) and isinstance(queue, list)
          and all(isinstance(n, list) and len(n) == 10 and isinstance(n[0], str) and isinstance(n[1], int)
                  and strings(n[2]) and strings(n[3]) and isinstance(n[4], str) and isinstance(n[5], str)
                  and strings(n[6]) and (n[7] is None or isinstance(n[7], str)) and isinstance(n[8], str)
                  and isinstance(n[9], str) for n in notes)
          and all(isinstance(r, list) and len(r) == 4 and strings(r[:2]) and (r[2] is None or isinstance(r[2], str))
                  and isinstance(r[3], (int, float)) and not isinstance(r[3], bool) for r in relations)
          and all(isinstance(q, list) and len(q) == 3 and strings(q) for q in queue))
    if not ok:
        raise InvalidInputError(f"{name} line {number}: malformed notes")
    return {"notes": notes, "relations": relations, "note_queue": queue, "graph_mentions": graph}


def _json_line(line: str, name: str, number: int) -> dict[str, Any]:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{name} line {number} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInputError(f"{name} line {number} is not a JSON object")
    return data
