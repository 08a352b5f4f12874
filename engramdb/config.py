"""One configuration object. Defaults live here; the environment and TOML files are
read only by the edges (CLI, server) through `Config.load`."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .errors import ConfigError

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib  # type: ignore[no-redef]

ENV_PREFIX = "ENGRAM_"


def default_data_dir() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("engram", appauthor=False))


@dataclass(frozen=True)
class Config:
    # Where memories live: "sqlite:///path.db", a bare path, or None for the data dir.
    store: str | None = None
    # Embedder by registry name: "minilm" (offline default), "openai:<model>", "fake".
    embedder: str = "minilm"
    embedder_base_url: str | None = None  # for "openai:…": any OpenAI-compatible server
    embedder_api_key: str | None = None
    embedder_timeout_s: float = 30.0
    embed_batch_size: int = 32
    # Where derived model files live (the fast MiniLM copy); None: the user's data dir.
    model_dir: str | None = None
    # Input limits: bigger inputs are refused with InvalidInputError.
    max_message_chars: int = 100_000
    max_messages_per_add: int = 10_000
    max_query_chars: int = 10_000
    max_limit: int = 1_000
    # Distillation of turns into memories, in the background: "offline" (spaCy and
    # rules, no LLM), "llm:<model>" (the OpenAI-compatible chat server below), "fake"
    # or "none". None: the library default, memory.DEFAULT_EXTRACTOR ("offline").
    extractor: str | None = None
    llm_base_url: str | None = None
    llm_api_key: str | None = None
    llm_timeout_s: float = 60.0
    # A claimed background job is another worker's to take once this long has passed
    # without it ending (its worker died): longer than any one job takes.
    job_lease_s: float = 300.0
    # The offline extractor runs in child processes: a big request (a backlog, long
    # messages) is shared out among up to this many, one per core at most; 1: one child.
    extract_processes: int = 2
    # Notes and links (living/notes.py): every memory gets keywords, tags and a context
    # line, and is linked to related memories, in the background (with distillation on).
    notes: bool = True
    # Search follows `relates_to` links: one more ranked list for fusion (retrieval.fuse).
    # Off: not yet measured to earn its place on `engram bench locomo` (docs/benchmarks.md).
    link_search: bool = False
    # The entity graph (graph.py): distillation records which entities and nouns each
    # memory says (`graph`); search ranks the candidates by Personalized PageRank seeded
    # from the query's phrases and its best candidates, one more list for fusion
    # (`graph_search`, needs `graph`; LoCoMo: multi-hop within 2,000 tokens +0.02,
    # docs/benchmarks.md "Entity graph and query understanding"). With `graph`, turns
    # distilled without it (before migration 0010, or while it was off) get their edges
    # in the background (lifecycle/graph_lane.py); off, neither is made.
    graph: bool = True
    graph_search: bool = True
    # Query understanding (query.py): a question that asks several things is searched
    # part by part too, the parts' rankings fused with the whole's (`query_parts`); a
    # "before / after <event>" question ranks the candidates on that side of the day the
    # event was said (`query_anchors`).
    query_parts: bool = False
    query_anchors: bool = False
    # Dense search of a query that names speakers (speakers.py) leaves their names out of
    # the query's embedding: speaker routing ranks by speaker already, and the name only
    # rewards texts that repeat it (`dense_without_speakers`). Dense pseudo-relevance
    # feedback (`dense_feedback`, retrieval.feedback_vector): the query's vector moved
    # towards its 3 best candidates' searches once more, one more list for fusion. LoCoMo:
    # docs/benchmarks.md "Recall that connects (issue 14)".
    dense_without_speakers: bool = True
    dense_feedback: bool = True
    # Retrieval.
    # Memories flagged as carrying instructions (guard.py) are shown marked as untrusted;
    # True leaves them out of search and recall altogether (filters={"flagged": True} still finds them).
    exclude_flagged: bool = False
    rrf_k: int = 10  # small k: the top of each list counts (LoCoMo: 60 -> 10 lifted R≤1000 0.72 -> 0.76)
    candidates: int = 100  # per retriever, before fusion
    # Living memory (engramdb/living/). The profile (Memory.profile, recall(include_profile=True)):
    # assembled at read time from the current facts; its default budget, and the most of a
    # recall() budget it may take.
    profile: bool = True
    profile_budget_tokens: int = 300
    # Topic memories: one derived memory (kind "topic") per subject and term said in at
    # least `topic_min_sessions` sessions, built by a background job. Off by default: on
    # LoCoMo they did not lift multi-hop recall (docs/benchmarks.md, "Topic memories").
    topics: bool = False
    topic_min_sessions: int = 2
    topic_max: int = 24  # topics kept per user and agent, the most recurring first
    # Vitals (living/vitals.py): each memory's strength, last recall and utility. `vitals`
    # records recalls (what search / recall / context return, written in the background)
    # and confirmations; `decay` archives derived memories whose retention
    # exp(-Δt / (tau · strength)) falls below `decay_threshold`, checked every
    # `decay_interval_s` (never deletes; turns are never archived). Decay is off by
    # default: on LoCoMo in simulated time (conversation 1, questions asked the day after
    # its last session) it archived 40 of 71 derived memories and cost recall() R≤2000
    # 0.896 -> 0.886, multi-hop 0.716 -> 0.667 (`python -m engramdb.bench.decay 1 DIR`,
    # docs/benchmarks.md). LoCoMo never recalls between sessions, so nothing there is
    # reinforced: it measures only the cost of fading, not what recall keeps.
    vitals: bool = True
    decay: bool = False
    decay_tau_days: float = 30.0
    decay_threshold: float = 0.05
    decay_interval_s: float = 3600.0
    # How much utility (feedback) and retention move a memory's search score: × (1 + w ·
    # utility) and × (1 - w · (1 - retention)). None: they do not enter ranking (retention
    # at 0.3 changed no LoCoMo budget row and cost R@5 0.004, docs/benchmarks.md; no
    # benchmark we hold has feedback to measure utility with).
    utility_weight: float | None = None
    retention_weight: float | None = None
    # Vector index: exact search up to this many vectors in a user's scope, HNSW above.
    ann_threshold: int = 20_000
    # SQLite.
    busy_timeout_ms: int = 60_000
    # PostgreSQL: how long an operation waits for a pooled connection (all busy, or the
    # database unreachable) before failing with StorageError (503 from the server).
    pool_timeout_s: float = 5.0
    # Server (`engram serve`): bigger request bodies are refused with 413.
    max_request_bytes: int = 16_000_000
    # Server: /readyz answers 503 once the oldest distillation job waiting in an open
    # tenant has waited longer than this many seconds; None: never, it only reports.
    max_backlog_age_s: float | None = None
    # Thoughts (living/thoughts.py): `Memory.think()` stores an agent's conclusions; similar
    # ones merge at this cosine of their vectors (measured for MiniLM: docs/benchmarks.md).
    thoughts: bool = True
    thought_merge_threshold: float = 0.86
    # Reflection (living/reflection.py): with an LLM (an "llm:<model>" extractor, or this
    # model with llm_base_url or llm_api_key), a background job forms thoughts from a scope's
    # recent turns, one LLM call per `reflect_every_turns` new turns at most. Off with no LLM.
    reflection: bool = True
    reflection_model: str | None = None
    reflect_every_turns: int = 10
    # The scheduler (lifecycle/scheduler.py): when each capability's background work runs,
    # never in add()'s path. Distillation takes a scope's turns once it has
    # `distill_after_turns` new ones (1: each add's at once, the default), or once no add()
    # came for `distill_idle_s` seconds (None: that trigger is off); topics are built for a
    # changed scope at most every `topics_every_s` (None: no timer), or after
    # `topics_after_turns` new turns, or when idle `topics_idle_s`; the decay sweep runs every
    # `decay_interval_s`, reflection every `reflect_every_turns`; flush() runs all that is
    # due, and every changed scope's topics unless `topics_at_flush` is False (a build reads
    # the whole scope: `engram bench lifecycle`, docs/benchmarks.md). `Memory.jobs()["runs"]`
    # shows the last `job_log` runs: what ran and why.
    distill_after_turns: int = 1
    distill_idle_s: float | None = None
    topics_after_turns: int | None = None
    topics_idle_s: float | None = None
    topics_every_s: float | None = 10.0
    topics_at_flush: bool = True  # flush() builds every changed scope's topics (False: only those due)
    job_log: int = 200
    # Proxy (`engram proxy`): the tokens of memory put into each conversation, unless a
    # request sets its own (engramdb/proxy/).
    proxy_budget_tokens: int = 1500
    # Activation memory (engramdb/activation/, `engram chat`): a local model's state after
    # it read a user's stable memory block (profile and long-lived memories, within
    # `activation_block_tokens`), kept on disk in `activation_dir` (None: beside the SQLite
    # file, `<file>.activation/`; for PostgreSQL in the data dir), at most
    # `activation_max_bytes` of them, least recently used evicted first. False: no state is
    # made or read (a chat evaluates the whole prompt); states already on disk still follow
    # erasures, whatever this says.
    activation: bool = True
    activation_dir: str | None = None
    activation_max_bytes: int = 2_000_000_000
    activation_block_tokens: int = 1000

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type in ("int", "float") and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ConfigError(f"config {f.name} must be a number, got {value!r}")
            if f.type == "int" and not isinstance(value, int):
                raise ConfigError(f"config {f.name} must be an integer, got {value!r}")
            if f.type in ("int", "float") and value <= 0:
                raise ConfigError(f"config {f.name} must be positive, got {value!r}")
            if f.type == "bool" and not isinstance(value, bool):
                raise ConfigError(f"config {f.name} must be true or false, got {value!r}")
            if f.type.startswith("str") and not (isinstance(value, str) or (value is None and "None" in f.type)):
                raise ConfigError(f"config {f.name} must be a string, got {value!r}")
        age = self.max_backlog_age_s
        if age is not None and (isinstance(age, bool) or not isinstance(age, (int, float)) or not age > 0):
            raise ConfigError(f"config max_backlog_age_s must be a positive number or None, got {age!r}")
        for name in ("distill_idle_s", "topics_after_turns", "topics_idle_s", "topics_every_s"):
            value = getattr(self, name)
            whole = name.endswith("_turns")
            if value is not None and (isinstance(value, bool) or not isinstance(value, int if whole else (int, float))
                                      or not value > 0):
                kind = "a positive integer" if whole else "a positive number"
                raise ConfigError(f"config {name} must be {kind} or None, got {value!r}")
        if not self.thought_merge_threshold <= 1:
            raise ConfigError(f"config thought_merge_threshold must be at most 1, got {self.thought_merge_threshold!r}")
        if not self.decay_threshold < 1:
            raise ConfigError(f"config decay_threshold must be below 1, got {self.decay_threshold!r}")
        for name in ("utility_weight", "retention_weight"):
            weight = getattr(self, name)
            if weight is not None and (isinstance(weight, bool) or not isinstance(weight, (int, float))
                                       or not 0 <= weight <= 1):
                raise ConfigError(f"config {name} must be a number from 0 to 1 or None, got {weight!r}")
        if not isinstance(self.embedder, str) or not self.embedder:
            raise ConfigError("config embedder must be a non-empty string")
        if not (self.extractor in (None, "offline", "fake", "none")
                or (isinstance(self.extractor, str) and self.extractor.startswith("llm:") and len(self.extractor) > 4)):
            raise ConfigError(f"config extractor must be 'offline', 'llm:<model>', 'fake' or 'none', "
                              f"got {self.extractor!r}")

    def model_dir_path(self) -> Path:
        return Path(self.model_dir).expanduser() if self.model_dir else default_data_dir() / "models"

    def replace(self, **changes: Any) -> "Config":
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "Config":
        known = {f.name: f for f in fields(cls)}
        unknown = set(values) - set(known)
        if unknown:
            raise ConfigError(f"unknown config keys: {sorted(unknown)}")
        converted = {name: _coerce(known[name].type, name, value) for name, value in values.items()}
        return cls(**converted)

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, environ: Mapping[str, str] | None = None) -> "Config":
        """Defaults, then the TOML file (if any), then ENGRAM_* variables."""
        values: dict[str, Any] = {}
        environ = os.environ if environ is None else environ
        path = path or environ.get(ENV_PREFIX + "CONFIG")
        if path:
            try:
                with open(path, "rb") as fh:
                    data = tomllib.load(fh)
            except FileNotFoundError:
                raise ConfigError(f"config file not found: {path}") from None
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
            values.update(data.get("engram", data))
        names = {f.name for f in fields(cls)}
        for key, value in environ.items():
            if key.startswith(ENV_PREFIX) and key != ENV_PREFIX + "CONFIG":
                name = key[len(ENV_PREFIX):].lower()
                if name in names:
                    values[name] = value
        return cls.from_mapping(values)


def _coerce(type_name: str, name: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if type_name == "bool":
        lowered = value.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"config {name} must be true or false, got {value!r}")
    try:
        if type_name == "int":
            return int(value)
        if type_name == "float":
            return float(value)
        if type_name == "float | None":
            return float(value) if value.strip() else None
        if type_name == "int | None":
            return int(value) if value.strip() else None
    except ValueError:
        raise ConfigError(f"config {name} must be a number, got {value!r}") from None
    return value or None if "None" in type_name else value
