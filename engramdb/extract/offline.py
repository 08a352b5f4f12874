"""The default extractor: spaCy's small English model plus rules, no LLM.

For every turn: entities, keywords and the dates it talks about (`TurnNotes`, to index
the turn under more keys). For what a user says about themselves: facts and
preferences by rule (`rules`), dated events ("I went to a support group yesterday" ->
an event on the day before the turn), and per session an extractive `summary`.

Speakers: a turn's `speaker` names the subject; without one, a "Name: text" prefix
does (LoCoMo style), line by line when the turn joins several speakers' lines
(`base.speaker_parts`); otherwise the subject is "user". Assistant and system turns are
read for notes only: their "I" is not the user."""

from __future__ import annotations

import time
from collections.abc import Sequence

from . import events
from . import nlp as nlp_module
from . import rules
from .base import Candidate, Entity, ExtractionResult, TurnInput, TurnNotes, speaker_parts
from .summary import CAPTION, STOPWORDS, summarize
from .vocab import fact_text, is_exclusive

ENTITY_LABELS = frozenset({"PERSON", "NORP", "FAC", "ORG", "GPE", "LOC", "PRODUCT", "EVENT", "WORK_OF_ART",
                           "LANGUAGE"})
_DATE_VALUED = frozenset({"birthday"})  # the value is a date of every year: the day it was said is its time
USER_ROLES = frozenset({"user", "human"})
_CHATTER = frozenset("""thank thanks bye congrats congratulations hey hi hello wow lol haha yeah okay glad cool
awesome great sure""".split())


class OfflineExtractor:
    """Extractor without an LLM. `summary_min_turns`: a session needs that many turns
    (or speakers' parts of joined messages) in one call to get a summary (pass whole
    sessions for summaries)."""

    name = "offline"

    def __init__(self, *, summaries: bool = True, summary_min_turns: int = 4, batch_size: int = 64) -> None:
        self.summaries = summaries
        self.summary_min_turns = summary_min_turns
        self.batch_size = batch_size

    def extract(self, turns: Sequence[TurnInput], *,
                summaries_of: Sequence[TurnInput] | None = None) -> ExtractionResult:
        """Candidates and notes of `turns`, and the summaries of their sessions; with
        `summaries_of`, the summaries of those turns' sessions instead (a session's turns
        shared among processes: one of them gives its summary, extract/isolated.py)."""
        started = time.perf_counter()
        nlp = nlp_module.load()
        result = ExtractionResult()
        prepared = [_prepare(turn) for turn in turns]
        docs = iter(nlp.pipe([text for parts in prepared for _, text in parts], batch_size=self.batch_size))
        for turn, parts in zip(turns, prepared):
            dates: list[str] = []
            part_docs = []
            for part, text in parts:
                doc = next(docs)
                part_docs.append(doc)
                doc.user_data["anchor"] = part.moment.date()
                subject = part.subject
                caption = CAPTION.search(text)
                own_end = caption.start() if caption else len(text)
                if part.role in USER_ROLES:
                    for sentence in doc.sents:
                        if sentence.start_char >= own_end:
                            break
                        found = _read_sentence(sentence, part, subject)
                        result.candidates.extend(found[0])
                        dates.extend(found[1])
                else:
                    for sentence in doc.sents:
                        dates.extend(m.span.when for m in events.times(sentence, part.moment.date()).mentions)
            whole = part_docs[0] if len(part_docs) == 1 else _joined(part_docs)
            result.notes[turn.id] = notes(whole, turn.id, dates)
        if self.summaries:
            result.candidates.extend(self._summaries(turns if summaries_of is None else summaries_of))
        result.seconds = time.perf_counter() - started
        return result

    def _summaries(self, turns: Sequence[TurnInput]) -> list[Candidate]:
        sessions: dict[str | None, list[TurnInput]] = {}
        for turn in turns:
            sessions.setdefault(turn.session_id, []).append(turn)
        out = []
        for session_turns in sessions.values():
            parts = [part for t in session_turns for part, _ in _prepare(t)]  # a joined message: its speakers' lines
            if len(parts) >= self.summary_min_turns:
                summary = summarize(parts)
                if summary is not None:
                    out.append(summary)
        return out


def _prepare(turn: TurnInput) -> list[tuple[TurnInput, str]]:
    """The turn's speakers' parts (`speaker_parts`: each with its speaker settled), each
    with its text normalised for the parser."""
    return [(part, part.text.replace("\u2019", "'").replace("\u2018", "'")) for part in speaker_parts(turn)]


def _joined(docs):
    from spacy.tokens import Doc  # spaCy is loaded by `nlp.load`, never at import

    return Doc.from_docs(docs, exclude=["user_data"])  # the parts share the one turn's anchor


def _read_sentence(sentence, turn: TurnInput, subject: str) -> tuple[list[Candidate], list[str]]:
    text = sentence.text
    found = events.times(sentence, turn.moment.date())
    when = found.most_specific
    keywords = _keywords(sentence)
    entities = tuple(dict.fromkeys(e.text for e in sentence.ents if e.label_ in ENTITY_LABELS))
    out: list[Candidate] = []
    for f in rules.find(sentence, text):
        dated = when if f.attribute not in _DATE_VALUED else None
        out.append(Candidate(
            kind=rules.attribute_kind(f.attribute),  # type: ignore[arg-type]
            text=fact_text(subject, f.attribute, f.value, qualifier=f.qualifier, operation=f.operation),
            subject=subject, sources=(turn.id,), said_at=turn.timestamp, attribute=f.attribute, value=f.value,
            qualifier=f.qualifier, exclusive=is_exclusive(f.attribute), operation=f.operation,  # type: ignore[arg-type]
            polarity=f.polarity, when=dated.span.when if dated else None,
            when_end=dated.span.when_end if dated else None, keywords=keywords, entities=entities,
            confidence=f.confidence,
        ))
    event = events.event(sentence, turn, subject, found, keywords=keywords, entities=entities)
    if event is not None:
        out.append(event)
    return out, [m.span.when for m in found.mentions]


def notes(doc, turn_id: str, dates: list[str]) -> TurnNotes:
    entities = tuple(dict.fromkeys(Entity(e.text, e.label_) for e in doc.ents if e.label_ in ENTITY_LABELS))
    return TurnNotes(turn_id=turn_id, keywords=_keywords(doc, limit=10), entities=entities,
                     dates=tuple(dict.fromkeys(dates)), phrases=_noun_phrases(doc))


_PHRASE_SKIP = frozenset({"DET", "PRON", "NUM", "PUNCT", "PART", "CCONJ", "ADP", "SYM", "X", "SPACE"})


def _noun_phrases(doc, limit: int = 8) -> tuple[str, ...]:
    """Noun chunks of two to four content words, their head lemmatised ("my home
    countries" -> "home country"): the specific things a turn talks about."""
    out: dict[str, None] = {}
    for chunk in doc.noun_chunks:
        kept = [t for t in chunk if t.pos_ not in _PHRASE_SKIP and t.is_alpha]
        if not 2 <= len(kept) <= 4 or kept[-1].pos_ not in ("NOUN", "PROPN"):
            continue
        head = kept[-1].text if kept[-1].pos_ == "PROPN" else kept[-1].lemma_
        out[" ".join([*(t.text.lower() for t in kept[:-1]), head.lower()])] = None
        if len(out) >= limit:
            break
    return tuple(out)


def _keywords(span, limit: int = 8) -> tuple[str, ...]:
    """Entity names first, then nouns (lemmatised) by frequency: the words a question
    about this text would use."""
    counts: dict[str, int] = {}
    for ent in span.ents:
        if ent.label_ in ENTITY_LABELS:
            counts[ent.text] = counts.get(ent.text, 0) + 3
    for token in span:
        if token.pos_ not in ("NOUN", "PROPN") or not token.is_alpha or len(token) < 3 or token.ent_type_:
            continue
        word = token.text if token.pos_ == "PROPN" else token.lemma_.lower()
        if word.lower() in STOPWORDS or word.lower() in _CHATTER:
            continue
        counts[word] = counts.get(word, 0) + (2 if token.pos_ == "PROPN" else 1)
    ranked = sorted(counts, key=lambda w: -counts[w])  # stable: ties keep the order of appearance
    return tuple(ranked[:limit])
