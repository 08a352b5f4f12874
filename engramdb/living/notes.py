"""Notes and links (A-MEM's Zettelkasten), as pure logic over typed inputs.

Every memory carries a `Note`: keywords (the words a question about it would use, names
first), tags (broader, lower-case: what it is about) and a one-line context. Offline the
note is read from what the offline pipeline already knows: a derived memory's metadata
holds spaCy's entities and keywords and the vocabulary's attribute; a turn's own content
words and names are read with the summariser's word lists (no model in this process).
With an LLM configured, `llm_notes.py` writes them instead.

Memories are linked to related ones (`relates_to`, with a reason and a strength): the
same event (derived from a shared turn), shared entities (names other than the speaker
and the subject) and similar meaning (the stored vectors). When a new memory joins a
neighbourhood, its neighbours' notes evolve: a tag that two or more of a memory's
neighbours carry and it lacks is added to its tags and its context. Each evolution is a
new version naming its causes by id, so that erasing a cause takes back every version
it shaped (the derivation rule), and any version can be restored."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ..extract.summary import STOPWORDS
from ..extract.vocab import article
from ..types import Record

MAX_KEYWORDS = 10
MAX_TAGS = 6
MAX_EXTRA_TAGS = 3  # tags a note takes from its neighbourhood
MAX_CONTEXT_CHARS = 200
MAX_WORD_CHARS = 40
LINKS_PER_MEMORY = 5
SIMILAR_MIN = 0.6  # cosine of the stored vectors: below this, meaning alone links nothing
LINK_MIN = 0.5  # weaker candidates are not linked
EVOLVE_MIN = 0.5  # a neighbour this strongly linked shapes a memory's note
SAME_EVENT = 0.9
ENTITY_BASE, ENTITY_STEP, ENTITY_MAX = 0.5, 0.1, 0.85

MADE = "note made"
REMADE = "note made again: its text was updated"
EVOLVED = "note evolved: {} joined its neighbourhood"
REDERIVED = "note re-derived: a neighbour was erased or changed"
REVERTED = "note restored to version {}"

_WORD = re.compile(r"[A-Za-z][A-Za-z'-]{1,39}")
_CHATTER = frozenset("""thank thanks bye congrats congratulations hey hi hello wow lol haha yeah okay ok glad cool
awesome amazing great nice sure really totally super pretty something anything everything thing things lot lots
way ways stuff kind sort day today time times yes yeah wanna gonna gotta just also still much many new good bad little big
first next last week weeks year years month months ago soon lately recently yesterday tomorrow tonight morning
get gets got getting go goes going went gone make makes made making take takes took taking want wants wanted
like likes liked love loved feel feels felt think thinks thought know knows knew see sees saw seen tell tells
told say says said come comes came need needs needed try tried trying start starts started starting keep kept
give gave look looks looked find found let lets help helped use used work worked put done doing did does
been being having has had will would could should might must can cannot sound sounds sounded show shows
showed important every different since two three four five far true back huge around others other hear heard
happy happened happen happens wonderful fantastic incredible fun cute beautiful gorgeous lovely fab exciting
excited interesting glad proud sorry hope hoping wish mean means meant appreciate thank means always never
ever maybe definitely absolutely special whole enough together able sure awesome""".split())


@dataclass(frozen=True)
class Note:
    """A memory's note at one version. `causes`: the memories (by id) whose notes shaped
    this version (none for a note made from the memory alone)."""

    memory_id: str
    version: int
    keywords: tuple[str, ...]
    tags: tuple[str, ...]
    context: str
    made_by: str = "offline"
    causes: tuple[str, ...] = ()
    reason: str | None = None
    at: str = ""
    content_hash: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Draft:
    """A note's content, before it has a version."""

    keywords: tuple[str, ...]
    tags: tuple[str, ...]
    context: str
    made_by: str = "offline"


@dataclass(frozen=True)
class Relation:
    """A `relates_to` link between two memories, either way round."""

    src: str
    dst: str
    reason: str
    strength: float

    def other(self, memory_id: str) -> str:
        return self.dst if self.src == memory_id else self.src


@dataclass(frozen=True)
class Related:
    """A memory reached from another by walking `relates_to` links: `hops` links away,
    through `via` (the memory it was reached from), by a link with this reason and
    strength (`score`: the product of the strengths on the path)."""

    id: str
    text: str
    kind: str
    reason: str
    strength: float
    hops: int
    via: str
    score: float
    session_id: str | None = None
    created_at: str = ""
    sources: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- notes from a memory alone -------------------------------------------------------------


def offline_note(record: Record) -> Draft:
    """A memory's note from its own text and what the pipeline stored about it."""
    meta = record.metadata
    names = [w for w in _strings(meta.get("entities"))]
    known = _strings(meta.get("keywords"))
    if known or names:
        keywords = _dedupe([*names, *known])
    else:
        keywords = _dedupe([*_names(record.text, record.name), *_content_words(record.text)])
    keywords = [k for k in keywords if _speaker_key(k) not in _speakers(record)] or keywords
    keywords = keywords[:MAX_KEYWORDS]
    tags = []
    attribute = meta.get("attribute")
    if isinstance(attribute, str) and attribute:
        tags.append(attribute.replace("_", " ").lower()[:MAX_WORD_CHARS])
    tags += [k.lower() for k in keywords if " " not in k and not k[:1].isupper()]  # topics, not names
    if not tags:
        tags.append(record.kind)
    return Draft(tuple(keywords), tuple(_dedupe(tags)[:MAX_TAGS]), _context(record, keywords))


def entities(record: Record, note: Note | Draft | None) -> set[str]:
    """The names a memory speaks of (not its speaker or subject), lower-cased, for linking."""
    speakers = _speakers(record)
    found = {_speaker_key(e) for e in _strings(record.metadata.get("entities"))}
    if note is not None:
        found |= {_speaker_key(k) for k in note.keywords if k[:1].isupper()}
    return {e for e in found if e and e not in speakers and e not in STOPWORDS}


def _context(record: Record, keywords: Sequence[str]) -> str:
    who = record.name or _subject(record) or ("the user" if record.role == "user" else record.role or "someone")
    about = ", ".join(keywords[:3]) if keywords else "small talk"
    kind = "said" if record.kind == "turn" else article(record.kind)
    date = record.created_at[:10]
    return clean_line(f"{who}, {kind}, about {about} ({date})")


def _subject(record: Record) -> str | None:
    subject = record.metadata.get("subject")
    if isinstance(subject, str) and subject and subject != "user":
        return subject[:1].upper() + subject[1:]
    return None


def _speakers(record: Record) -> set[str]:
    out = set()
    for value in (record.name, record.metadata.get("subject")):
        if isinstance(value, str) and value:
            out.add(_speaker_key(value))
    return out


def _speaker_key(value: str) -> str:
    return " ".join(value.lower().split())


def _names(text: str, speaker: str | None) -> list[str]:
    """Capitalised words that do not open a sentence (a cheap stand-in for NER)."""
    out = []
    for match in _WORD.finditer(text):
        word = match.group(0).strip("'-")
        if not word[:1].isupper() or len(word) < 3 or word.isupper() and len(word) > 5 or "'" in word:
            continue
        if word.lower() in STOPWORDS or word.lower() in _CHATTER:
            continue
        out.append(word)  # a capital opening a sentence too: the word lists above keep most of those out
    return out


def _content_words(text: str) -> list[str]:
    words = [w.lower().strip("'-") for w in _WORD.findall(text)]
    counts = Counter(w for w in words if len(w) > 2 and w not in STOPWORDS and w not in _CHATTER and "'" not in w)
    return [w for w, _ in sorted(counts.items(), key=lambda pair: -pair[1])]  # stable: ties keep their order


# -- checking what a model wrote -----------------------------------------------------------


def clean_line(value: str, limit: int = MAX_CONTEXT_CHARS) -> str:
    """One line of plain text: no control characters, newlines folded, cut at a word."""
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in value).split())
    if len(text) > limit:
        text = text[:limit].rsplit(" ", 1)[0]
    return text


def clean_words(values: Any, limit: int, *, lower: bool = False) -> tuple[str, ...]:
    out = []
    for value in _strings(values):
        word = clean_line(value, MAX_WORD_CHARS)
        if word:
            out.append(word.lower() if lower else word)
    return tuple(_dedupe(out)[:limit])


def _strings(values: Any) -> list[str]:
    if not isinstance(values, (list, tuple)):
        return []
    return [v for v in values if isinstance(v, str) and v.strip()]


def _dedupe(values: Sequence[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for value in values:
        key = value.lower()
        if key not in seen:
            seen.add(key)
            out.append(value)
    return out


# -- links -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """Another memory that may relate to the one being linked."""

    id: str
    similarity: float | None = None  # cosine of the stored vectors, when the dense search found it
    shared: tuple[str, ...] = ()  # entities both speak of
    same_event: bool = False


def relation(memory_id: str, candidate: Candidate) -> Relation | None:
    """The link between a memory and a candidate, or None when it is too weak."""
    strength, reasons = 0.0, []
    if candidate.same_event:
        strength = max(strength, SAME_EVENT)
        reasons.append("same event")
    if candidate.shared:
        strength = max(strength, min(ENTITY_MAX, ENTITY_BASE + ENTITY_STEP * len(candidate.shared)))
        reasons.append("shared entities: " + ", ".join(sorted(candidate.shared)[:4]))
    if candidate.similarity is not None and candidate.similarity >= SIMILAR_MIN:
        strength = max(strength, min(1.0, candidate.similarity))
        reasons.append(f"similar meaning ({candidate.similarity:.2f})")
    if strength < LINK_MIN or candidate.id == memory_id:
        return None
    return Relation(memory_id, candidate.id, "; ".join(reasons), round(strength, 4))


def strongest(relations: Sequence[Relation], limit: int = LINKS_PER_MEMORY) -> list[Relation]:
    return sorted(relations, key=lambda r: (-r.strength, r.dst))[:limit]


# -- evolution ------------------------------------------------------------------------------


def evolve(base: Note, neighbours: Mapping[str, Note]) -> Draft | None:
    """A memory's note as its neighbourhood shapes it: the tags that two or more of its
    neighbours (their own notes, `base` versions) carry and it lacks, added to its tags
    and context; None when the neighbourhood adds nothing. Its causes are the neighbours
    that carry an added tag (`causes_of`)."""
    extra = neighbourhood_tags(base, neighbours)
    if not extra:
        return None
    tags = tuple(_dedupe([*base.tags, *extra]))
    context = clean_line(f"{base.context}; linked with {', '.join(extra)}")
    return Draft(base.keywords, tags, context, made_by=base.made_by)


def neighbourhood_tags(base: Note, neighbours: Mapping[str, Note]) -> list[str]:
    own = {t.lower() for t in base.tags} | {k.lower() for k in base.keywords}
    counts: Counter[str] = Counter()
    order: dict[str, int] = {}
    for memory_id in sorted(neighbours):
        for tag in dict.fromkeys(t.lower() for t in neighbours[memory_id].tags):
            if tag not in own:
                counts[tag] += 1
                order.setdefault(tag, len(order))
    ranked = sorted((t for t, n in counts.items() if n >= 2), key=lambda t: (-counts[t], order[t]))
    return ranked[:MAX_EXTRA_TAGS]


def causes_of(draft: Draft, base: Note, neighbours: Mapping[str, Note]) -> tuple[str, ...]:
    added = {t.lower() for t in draft.tags} - {t.lower() for t in base.tags}
    return tuple(sorted(m for m, note in neighbours.items() if added & {t.lower() for t in note.tags}))


def same_content(note: Note | None, draft: Draft) -> bool:
    return note is not None and (note.keywords, note.tags, note.context) == (draft.keywords, draft.tags,
                                                                            draft.context)


# -- the hand-offs between the notes lane and the stores ---------------------------------------


@dataclass(frozen=True)
class NoteWork:
    """What the notes lane is to do next for one user: memories queued (to be made again
    or re-derived) and memories new since the watermark; `mark` is the watermark once
    they are done. An empty `user_id` only moves the watermark."""

    user_id: str
    queued: tuple[str, ...]
    fresh: tuple[str, ...]
    mark: int


@dataclass(frozen=True)
class Made:
    """A note made from a memory alone (its text at `content_hash`)."""

    memory_id: str
    content_hash: str
    draft: Draft
    reason: str = MADE
    remade: bool = False


@dataclass(frozen=True)
class Evolution:
    """A note's new version shaped by its neighbours (`causes`)."""

    memory_id: str
    draft: Draft
    causes: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class NotesBatch:
    made: list[Made] = field(default_factory=list)
    unlink: list[str] = field(default_factory=list)  # memories whose links and influence go first (remade)
    links: list[Relation] = field(default_factory=list)
    evolved: list[Evolution] = field(default_factory=list)
    dequeue: list[str] = field(default_factory=list)
    mark: int | None = None


def exported_for(data: Mapping[str, Any], ids: Sequence[str]) -> dict[str, Any]:
    """Of a store's exported notes, links and entity-graph rows (`export_derived`), those
    of these memories."""
    keep = set(ids)
    return {"notes": [n for n in data.get("notes", []) if n[0] in keep],
            "relations": [r for r in data.get("relations", []) if r[0] in keep and r[1] in keep],
            "note_queue": [q for q in data.get("note_queue", []) if q[0] in keep],
            "graph_mentions": [g for g in data.get("graph_mentions", []) if g[0] in keep]}


def renamed(data: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    """Exported notes and links with memory ids renamed (a cube imported into another
    user's scope gets new ids); an id not renamed stays."""
    def to(memory_id: str) -> str:
        return names.get(memory_id, memory_id)

    return {"notes": [[to(n[0]), *n[1:6], sorted(to(c) for c in n[6]), *n[7:]] for n in data.get("notes", [])],
            "relations": [[to(r[0]), to(r[1]), *r[2:]] for r in data.get("relations", [])],
            "note_queue": [[to(q[0]), *q[1:]] for q in data.get("note_queue", [])],
            "graph_mentions": [[to(g[0]), *g[1:]] for g in data.get("graph_mentions", [])]}
