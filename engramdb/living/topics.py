"""Topic memories (RMM's prospective reflection): one derived memory per recurring topic
of a scope, across sessions ("Melanie's pottery", "Caroline's adoption"), built offline
by a background job and rebuilt as sessions accumulate.

A topic is a subject (who speaks of it) and a term: a noun or name that the distilled
memories of the scope carry as a keyword, entity or value (spaCy chose it when
distilling), said by that subject in at least `min_sessions` sessions. Its text is one
dated line from each of its source turns (the newest MAX_SOURCES sessions), and it is
linked (`derived_from`) to exactly those turns.

The derivation rule: a topic is a function of its live sources. Erasing one of them
erases the topic in the erasure's own transaction (the lifecycle cascade; `topic` is one
of policy.REBUILT_KINDS, so its other turns are not distilled again), and this job
builds it again from what remains. Each build reads the scope whole and replaces what
changed: a topic whose text or sources changed is written anew and the old one erased;
a topic no longer recurring is erased. A topic written while one of its turns was being
erased is erased at once (its sources are read back after the write)."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from .. import guard
from ..block import day_text, fold, snippet, without_own_label
from ..clock import Clock, format_ts, parse_ts
from ..errors import InvalidInputError
from ..extract.base import TurnInput, speaker_parts
from ..extract.summary import STOPWORDS
from ..extract.vocab import display, possessive
from ..ids import new_id
from ..keys import index_text
from ..lifecycle.runner import Runner, process_runner
from ..lifecycle.scheduler import FLUSH, TIMER, TOPICS, Scheduler
from ..stores.base import Job, NewRecord, Store
from ..stores.filters import Condition, current
from ..types import Record, Scope

log = logging.getLogger("engramdb.topics")

KIND = "topic"
JOB_KIND = "topics"  # the runner's name for this lane's work (never queued in the store's jobs table)
MAX_SOURCES = 6  # turns quoted by one topic: one per session, the newest sessions
SNIPPET_CHARS = 110  # of each source turn, around the term
MAX_SHARE = 0.05  # a term in more of the scope's turns than this (and more than MIN_COMMON) is too common
MIN_COMMON = 8  # (a small scope: a term in a third of its turns can be its topic)
PAGE = 5_000
REBUILD_EVERY_S = 10.0  # a scope's topics are built at most this often while turns keep coming (flush() waits)
FORMED = "topic formed from its sources"
ACTOR = "topics"
# Words that recur in every conversation without being about anything: times, and nouns
# that stand for whatever was said ("the event", "my work", "a blast").
GENERIC = frozenset("""year years yesterday today tomorrow tonight week weeks weekend weekends month months day days
night nights morning mornings evening evenings time times moment moments lately ago last next past future now
event events work group groups blast thing things people person stuff way ways lot lots fun life idea ideas part
experience experiences journey pic pics photo photos picture pictures love story stories kind place places world
chat chats talk news update updates question questions help support feeling feelings sense bit piece step steps
matter reason end start side hand point today's""".split())
_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]+|\d+")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class Draft:
    """A topic as this build would write it."""

    key: str  # "subject|term", case-folded: the same topic across builds
    subject: str
    term: str
    text: str
    turn_ids: tuple[str, ...]  # the turns it is derived from (derived_from links), in time order
    sources: tuple[str, ...]  # their caller ids (Record.sources)
    sessions: int  # sessions of the scope whose turns by `subject` say `term`
    created_at: str  # its first source's time
    said_at: str  # its newest source's time


def terms_of(derived: Iterable[Record]) -> dict[str, str]:
    """Candidate terms (case-folded -> as written) from distilled memories' keywords,
    entities and values: a word or a short phrase, not a stopword, not a number."""
    out: dict[str, str] = {}
    for record in derived:
        meta = record.metadata or {}
        found = [*(meta.get("keywords") or ()), *(meta.get("entities") or ())]
        if isinstance(meta.get("value"), str):
            found.append(meta["value"])
        for raw in found:
            if not isinstance(raw, str):
                continue
            words = _WORD.findall(raw)
            if not words or len(words) > 3 or all(w.lower() in STOPWORDS or w.lower() in GENERIC for w in words):
                continue
            term = " ".join(words)
            if len(term) < (3 if term[:1].isupper() else 4) or term.isdigit():
                continue
            out.setdefault(term.casefold(), term)
    return out


def find_topics(turns: Sequence[Record], derived: Sequence[Record], *, min_sessions: int,
                max_topics: int) -> list[Draft]:
    """The recurring topics of a scope's turns (pure). `turns` in any order; flagged turns
    (guard.py) are never read."""
    ordered = sorted((t for t in turns if t.kind == "turn" and not (t.metadata or {}).get(guard.METADATA_KEY)
                      and t.session_id is not None), key=lambda t: (t.created_at, t.seq))
    if not ordered:
        return []
    # A joined message ("Ana: …\nBen: …") is read as its speakers' parts: each part is
    # its own speaker's, and a topic quotes the part that says its term.
    readable = [_Part(turn, part.subject, part.text) for turn in ordered
                for part in speaker_parts(TurnInput.from_record(turn))]
    tokens = [_tokens(p.text) for p in readable]
    postings = _postings(tokens)
    subjects = [p.subject for p in readable]
    common = max(MIN_COMMON, int(MAX_SHARE * len(ordered)))
    drafts: list[Draft] = []
    for folded, term in sorted(terms_of(derived).items()):
        hits = _hits(postings, tokens, folded)
        if not hits or len(hits) > common and len({readable[i].turn.id for i in hits}) > common:
            continue
        by_subject: dict[str, list[int]] = {}
        for i in hits:
            by_subject.setdefault(subjects[i], []).append(i)
        for subject, indexes in sorted(by_subject.items()):
            sessions: dict[str, int] = {}
            for i in indexes:
                sessions.setdefault(readable[i].turn.session_id or "", i)  # the first turn of each session
            if len(sessions) < min_sessions:
                continue
            chosen = sorted(sessions.values())[-MAX_SOURCES:]
            drafts.append(_draft(subject, term, [readable[i] for i in chosen], len(sessions)))
    drafts.sort(key=lambda d: (-d.sessions, -len(d.turn_ids), d.key))
    kept: list[Draft] = []
    for draft in drafts:  # a topic quoting the same turns as a more recurring one says nothing more
        mine = set(draft.turn_ids)
        if any(len(mine & set(k.turn_ids)) * 2 > len(mine) for k in kept if k.subject == draft.subject):
            continue
        kept.append(draft)
        if len(kept) >= max_topics:
            break
    return kept


@dataclass(frozen=True)
class _Part:
    """One speaker's part of a turn (`extract.base.speaker_parts`): the whole turn, when
    one speaker said it."""

    turn: Record
    subject: str
    text: str


def _draft(subject: str, term: str, parts: Sequence[_Part], sessions: int) -> Draft:
    name = f"{possessive(subject)} {term}" if term[:1].islower() else f"{display(subject)} and {term}"
    lines = []
    for part in parts:
        said = without_own_label(fold(part.text), (subject, part.turn.name or "")) if part.text else ""
        piece = _sentence_with(said, term) or said
        cut = snippet(piece, term, SNIPPET_CHARS) or piece[:SNIPPET_CHARS]
        lines.append(f"[{_day(part.turn.created_at)}] {cut}")
    turns = [part.turn for part in parts]
    text = f"{name} (in {sessions} sessions): " + "; ".join(lines)
    return Draft(key=f"{subject.casefold()}|{term.casefold()}", subject=subject, term=term, text=text,
                 turn_ids=tuple(t.id for t in turns),
                 sources=tuple(dict.fromkeys(s for t in turns for s in t.sources)), sessions=sessions,
                 created_at=turns[0].created_at, said_at=turns[-1].created_at)


def _tokens(text: str) -> tuple[frozenset[str], str]:
    words = [w.lower().replace("’", "'") for w in _WORD.findall(text)]
    return frozenset(words), " " + " ".join(words) + " "


def _postings(tokens: Sequence[tuple[frozenset[str], str]]) -> dict[str, list[int]]:
    """word -> the indexes of the turns that say it, in order."""
    out: dict[str, list[int]] = {}
    for i, (found, _) in enumerate(tokens):
        for word in found:
            out.setdefault(word, []).append(i)
    return out


def _hits(postings: dict[str, list[int]], tokens: Sequence[tuple[frozenset[str], str]], term: str) -> list[int]:
    """The indexes of the turns that say `term` (those `_says` accepts), looked up in the
    postings instead of testing every turn: a build costs what its terms' hits do, not
    terms × turns."""
    parts = [w.lower() for w in _WORD.findall(term)]
    if not parts:
        return []
    if len(parts) == 1:
        word = parts[0]
        forms = [word, word + "s", word + "es", *([word[:-1]] if word.endswith("s") else [])]
        return sorted({i for form in forms for i in postings.get(form, ())})
    rarest = min(parts, key=lambda w: len(postings.get(w, ())))
    return [i for i in postings.get(rarest, ()) if _says(tokens[i], term)]


def _says(words: tuple[frozenset[str], str], term: str) -> bool:
    found, joined = words
    parts = [w.lower() for w in _WORD.findall(term)]
    if len(parts) == 1:
        word = parts[0]
        return word in found or word + "s" in found or word + "es" in found or (
            word.endswith("s") and word[:-1] in found)
    return " " + " ".join(parts) + " " in joined


def _sentence_with(text: str, term: str) -> str | None:
    wanted = term.lower()
    for sentence in _SENTENCE.split(text):
        if wanted in sentence.lower():
            return sentence
    return None


def _day(timestamp: str) -> str:
    try:
        return day_text(parse_ts(timestamp))
    except InvalidInputError:
        return timestamp[:10]


# -- the job: reading a scope, writing what changed -----------------------------------------


def _all(store: Store, scope: Scope, conditions: list[Condition]) -> list[Record]:
    out: list[Record] = []
    while True:
        page = store.list(scope, conditions, PAGE, len(out))
        out += page
        if len(page) < PAGE:
            return out


def rebuild(store: Store, embed: Callable[[list[str]], np.ndarray], scope: Scope, *, at: str, min_sessions: int,
            max_topics: int) -> bool:
    """Build the topics of `scope` (a user and an agent, or no agent: the turns of no
    agent) again. Returns False when a source was erased while it wrote (build again)."""
    own = Condition("agent_id", "eq", scope.agent_id)
    whole = Scope(scope.user_id, scope.agent_id)
    turns = _all(store, whole, [Condition("kind", "eq", "turn"), own])
    derived = _all(store, whole, [Condition("kind", "in", ["fact", "preference", "event"]), current(), own])
    existing = _all(store, whole, [Condition("kind", "eq", KIND), own])  # outdated ones too (a source was updated)
    drafts = find_topics(turns, derived, min_sessions=min_sessions, max_topics=max_topics)
    kept: set[str] = set()
    fresh = []
    for draft in drafts:
        same = next((r.id for r in existing if r.id not in kept and _same(r, draft)), None)
        if same is None:
            fresh.append(draft)
        else:
            kept.add(same)
    stale = [r.id for r in existing if r.id not in kept]
    written: list[tuple[str, Draft]] = []
    if fresh:
        vectors = embed([index_text(d.text, None) for d in fresh])
        records = [NewRecord(id=new_id(), scope=whole, kind=KIND, text=d.text, created_at=d.created_at,
                             recorded_at=at, sources=list(d.sources), derived_from=d.turn_ids,
                             metadata={"topic_key": d.key, "subject": d.subject, "term": d.term,
                                       "sessions": d.sessions, "said_at": d.said_at, "keywords": [d.term],
                                       "reason": FORMED})
                   for d in fresh]
        store.insert(records, vectors, actor=ACTOR)
        written = [(r.id, d) for r, d in zip(records, fresh)]
    for memory_id in stale:
        store.delete(memory_id, at=at, actor=ACTOR)
    if not written:
        return True
    named = sorted({t for _, d in written for t in d.turn_ids})
    live = {r.id for r in store.records_by_ids(named, scope.user_id)}
    broken = [memory_id for memory_id, d in written if not live.issuperset(d.turn_ids)]
    for memory_id in broken:  # a source was erased before the topic's links were written
        store.delete(memory_id, at=at, actor=ACTOR)
    return not broken


def _same(record: Record, draft: Draft) -> bool:
    """A stored topic this draft would write again as it is (and still current)."""
    return (record.valid_to is None and record.metadata.get("topic_key") == draft.key and record.text == draft.text
            and list(record.sources) == list(draft.sources))


class TopicLane:
    """One store's topic builds: a lane of the process's runner (lifecycle/runner.py).
    Scopes are marked when turns are added, updated or erased; a marked scope is built
    once its distillation has nothing ready (topics read the memories it writes)."""

    def __init__(self, store: Store, embed: Callable[[list[str]], np.ndarray], clock: Clock, *, min_sessions: int,
                 max_topics: int, distilled: bool = True, runner: Runner | None = None,
                 scheduler: Scheduler | None = None, at_flush: bool = True) -> None:
        self._store = store
        self._at_flush = at_flush  # flush() builds every marked scope (False: only those due by the scheduler)
        # When a marked scope is built (lifecycle/scheduler.py); None: at most every REBUILD_EVERY_S.
        self._scheduler = scheduler
        self._trigger = TIMER
        self._embed = embed
        self._clock = clock
        self._min_sessions = min_sessions
        self._max_topics = max_topics
        self._distilled = distilled  # a distiller runs this store's jobs: wait for it (none runs: do not)
        self._runner = runner or process_runner()
        self._lock = threading.Lock()
        self._marked: dict[tuple[str, str | None], None] = {}
        self._building: tuple[str, str | None] | None = None
        self._built_at: dict[tuple[str, str | None], float] = {}
        self._waiting = 0  # flush() calls waiting: build now, whenever the last build was
        self._stopped = False
        self.built = 0

    def touch(self, user_id: str, agent_id: str | None) -> None:
        """The scope's turns changed: build its topics again."""
        with self._lock:
            if self._stopped:
                return
            self._marked[(user_id, agent_id)] = None
        self._runner.add(self)

    def claim(self) -> Job | None:
        now = format_ts(self._clock.now())
        with self._lock:
            soon = time.monotonic() - REBUILD_EVERY_S
            flushing = self._waiting > 0 and (self._at_flush or self._scheduler is None)
            if self._scheduler is None:
                marked = [(k, FLUSH if flushing else TIMER) for k in self._marked
                          if flushing or self._built_at.get(k, soon) <= soon]
            else:
                marked = [(k, None) for k in self._marked]
        for (user_id, agent_id), trigger in marked:
            if self._scheduler is not None:
                trigger = self._scheduler.due(TOPICS, user_id, flushing=flushing)
                if trigger is None:
                    continue
            if self._distilled and self._store.job_stats(user_id, now=now)["ready"]:
                continue  # distillation first: topics read what it writes
            with self._lock:
                if (user_id, agent_id) not in self._marked or self._stopped:
                    continue
                del self._marked[(user_id, agent_id)]
                self._building = (user_id, agent_id)
                self._trigger = trigger or TIMER
            return Job(id=0, scope=Scope(user_id, agent_id), record_ids=[], attempts=1, kind=JOB_KIND)
        return None

    def run(self, job: Job) -> None:
        key = (job.scope.user_id, job.scope.agent_id)
        try:
            if self._scheduler is None:
                done = self._rebuild(job)
            else:
                self._scheduler.ran(TOPICS, job.scope.user_id)
                with self._scheduler.running(TOPICS, job.scope.user_id, self._trigger) as progress:
                    done = self._rebuild(job)
                    progress.items = 1  # one scope's topics built
            self.built += 1
            if not done:
                with self._lock:
                    self._marked[key] = None
        except Exception:  # a closing store, a bug: logged; the next change to the scope builds it again
            log.exception("building the topics of %s failed", job.scope.user_id)
        finally:
            with self._lock:
                self._building = None
                self._built_at[key] = time.monotonic()

    def _rebuild(self, job: Job) -> bool:
        return rebuild(self._store, self._embed, job.scope, at=format_ts(self._clock.now()),
                       min_sessions=self._min_sessions, max_topics=self._max_topics)

    def pending(self) -> bool:
        with self._lock:
            if self._building is not None:
                return True
            marked = [user_id for user_id, _ in self._marked]
        if self._at_flush or self._scheduler is None:
            return bool(marked)
        return any(self._scheduler.due(TOPICS, user_id) is not None for user_id in marked)

    def wait(self, timeout: float | None) -> bool:
        """Until no scope is marked or being built; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            self._waiting += 1
        try:
            self._runner.wake()
            while self.pending():
                if not self._runner.alive(self):
                    return not self.pending()
                if deadline is not None and time.monotonic() >= deadline:
                    return False
                time.sleep(0.02)
                self._runner.wake()
            return True
        finally:
            with self._lock:
                self._waiting -= 1

    def stop(self, timeout: float = 4.0) -> None:
        with self._lock:
            self._stopped = True
            self._marked.clear()
        self._runner.remove(self, timeout)
