"""Dated events from a parsed sentence: the times it names, each read by the tense of
its clause, and the event it tells in the third person.

"I'm moving from Berlin to Lisbon in May", said on 4 March 2024, is "Alice is moving
from Berlin to Lisbon in May 2024", from 1 to 31 May 2024; "My exam is tomorrow" is an
event too (a possessed subject: "The user's exam is on 19 May 2024"); "I signed up for
lessons on Tuesday evenings" keeps its words and says `every Tuesday evening` instead
of a date. Verbs agree with the subject that replaces "I" ("I start my new job next
week" -> "The user starts the user's new job in the week of 13 May 2024"): the parser's
tags say which words are present-tense verbs."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date

from .base import Candidate, TurnInput
from .person import _inflect
from .reltime import Recurrence, TimeMention, absolute, find, recurrences
from .summary import rewrite
from .tense import IRREGULAR_PAST, of_tokens

_STATIVE = frozenset("""be feel think hope guess know want wish love like need mean wonder bet believe seem sound look
miss appreciate agree understand remember forget realize imagine care say tell thank hate enjoy""".split())
_OWN = frozenset({"my", "our"})
_SOMEONE = frozenset("""sister brother sis bro mom mum mother dad father parent parents son daughter kid kids child
children baby wife husband partner boyfriend girlfriend gf bf fiance fiancee fiancé fiancée spouse friend friends
buddy buddies pal pals bestie neighbor neighbour neighbors neighbours boss colleague colleagues coworker coworkers
cousin cousins aunt uncle niece nephew grandma grandmother grandpa grandfather grandparents family fam relatives
team teammate teammates roommate teacher coach doctor doc therapist mentor students student dog dogs cat cats
puppy pup pups kitten pet pets""".split())  # "my sister went to Rome": her event, not the speaker's
_MAX_TOKENS = 45


@dataclass(frozen=True)
class Times:
    """The times one sentence names: dated mentions and what repeats."""

    mentions: list[TimeMention]
    recurring: list[Recurrence]

    @property
    def most_specific(self) -> TimeMention | None:
        if not self.mentions:
            return None
        return min(self.mentions, key=lambda m: ((m.span.end - m.span.start).days, m.start))


def times(sentence, anchor: date) -> Times:
    """Every time a spaCy sentence names, resolved against `anchor` by the tense of the
    verb that governs each expression."""
    text = sentence.text
    recurring = recurrences(text)
    mentions = find(text, anchor, tense=lambda start, end: of_tokens(sentence, start, end), recurring=recurring)
    return Times(mentions, recurring)


def event(sentence, turn: TurnInput, subject: str, found: Times, *, keywords: tuple[str, ...] = (),
          entities: tuple[str, ...] = ()) -> Candidate | None:
    """The sentence as an event, when the speaker (or something of theirs) did, does or
    will do something at a time it names or on a schedule."""
    text = sentence.text
    when = found.most_specific
    recurring = found.recurring[0] if found.recurring else None
    if (when is None and recurring is None) or "?" in text or len(sentence) > _MAX_TOKENS or '"' in text:
        return None
    if not _has_actor(sentence):
        return None
    return Candidate(kind="event", text=event_text(sentence, turn, subject, found.mentions), subject=subject,
                     sources=(turn.id,), said_at=turn.timestamp, qualifier=recurring.every if recurring else None,
                     when=when.span.when if when else None, when_end=when.span.when_end if when else None,
                     keywords=keywords, entities=entities, confidence=0.6)


def event_text(sentence, turn: TurnInput, subject: str, mentions: list[TimeMention]) -> str:
    """The sentence in the third person, its relative dates replaced by the days found."""
    text = sentence.text
    edits = _agreement(sentence)
    for start, end, new in reversed(edits):
        text = text[:start] + new + text[end:]

    def moved(offset: int) -> int:
        return offset + sum(len(new) - (end - start) for start, end, new in edits if end <= offset)

    shifted = [replace(m, start=moved(m.start), end=moved(m.end)) for m in mentions]
    return rewrite(absolute(text, shifted), turn, subject, dates=False)


def _has_actor(sentence) -> bool:
    for token in sentence:
        if token.dep_ not in ("nsubj", "nsubjpass") or token.head.pos_ not in ("VERB", "AUX"):
            continue
        speaker = token.lower_ in ("i", "we") or any(c.dep_ == "conj" and c.lower_ in ("i", "we")
                                                     for c in token.children)  # "Toby and I are…"
        if speaker and token.head.lemma_ not in _STATIVE:
            return True  # "I went…", "we are flying…"
        if token.pos_ == "NOUN" and token.lower_ not in _SOMEONE and token.ent_type_ != "PERSON" \
                and any(c.dep_ == "poss" and c.lower_ in _OWN for c in token.children):
            return True  # "my exam is tomorrow", "our flight leaves on Friday"
    return False


def _agreement(sentence) -> list[tuple[int, int, str]]:
    """(start, end, replacement) for each present-tense verb whose subject is "I", so
    that it agrees with the third-person subject that replaces "I"."""
    edits = []
    base = sentence.start_char
    for token in sentence:
        if token.text != "I" or token.dep_ not in ("nsubj", "nsubjpass"):
            continue
        verb = next((t for t in token.doc[token.i + 1:min(token.i + 4, sentence.end)]
                     if t.tag_ not in ("RB", "ADV") and t.pos_ != "ADV"), None)
        if verb is None or verb.tag_ != "VBP" or not verb.text.isalpha() or verb.lower_ in ("am", "are", "was", "were"):
            continue
        if token.dep_ == "conj" or any(c.dep_ in ("conj", "cc") for c in token.children) or _looks_past(verb.lower_):
            continue  # "Toby and I are…"; "I retook…" (a past form the tagger did not know)
        start = verb.idx - base
        edits.append((start, start + len(verb.text), _inflect(verb.text)))
    return edits


def _looks_past(word: str) -> bool:
    if word.endswith("ed") and not word.endswith("eed"):  # "need", "succeed": present forms
        return True
    for prefix in ("", "re", "un", "over", "under", "mis", "out", "fore", "with"):
        if word.startswith(prefix) and word[len(prefix):] in IRREGULAR_PAST:
            return True
    return False
