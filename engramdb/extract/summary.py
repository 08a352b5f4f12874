"""Extractive session summaries: the most informative sentences of a session, in the
order they were said, rewritten to third person with their dates resolved, and the
turns they came from (so erasing those turns erases the summary).

Informative means: many content words, names and numbers, said as a statement by the
speaker about something (not a greeting, thanks, or a question). Pure text: no model.

A summary is read back as a memory, so it holds only the speaker's own statements: a
sentence that carries a speaker label ("assistant: …", "Mallory: …"), a role tag
("[SYSTEM]", "<|im_start|>"), markup that would open a line of a prompt ("## …",
"- fact: …") or words aimed at the assistant ("ignore previous instructions", "the
assistant must …") is never chosen; a line break ends a sentence; a turn that opens
with its own speaker's name ("Caroline: …") loses that label."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from .base import Candidate, TurnInput
from .person import second_person, third_person
from .reltime import absolute
from .reltime import find as find_times
from .vocab import normalize_subject

CAPTION = re.compile(r"\s*\[shares a photo:[^\]]*\]")
_SENTENCE = re.compile(r"[^.!?]+(?:[.!?]+|$)")
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]+|\d+")
_SMALL_TALK = re.compile(r"^(?:hi|hey|hello|thanks|thank you|bye|see you|good luck|congrats|congratulations|wow|"
                         r"awesome|cool|great|sounds|that's|that is|glad|nice|haha|lol|oh|yeah|yes|no|sure|ok|"
                         r"okay|take care|talk soon|you too|me too|same|agreed|totally|absolutely|definitely|"
                         r"aww|omg|good to|it's great|it was great|i'm glad|i'm so glad|i'm happy for)\b",
                         re.IGNORECASE)
_LEAD = re.compile(r"^(?:(?:oh|yeah|yes|wow|well|so|hey|haha|lol|omg|ugh|actually|honestly|and|but|also|btw|"
                   r"anyway|hmm|ah|aw|aww)\b[,!.]?\s+)+", re.IGNORECASE)
STOPWORDS = frozenset("""a about above after again against all am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further had has have having he
her here hers herself him himself his how i if in into is it its itself just me more most my myself no nor not now
of off on once only or other our ours ourselves out over own same she should so some such than that the their
theirs them themselves then there these they this those through to too under until up very was we were what when
where which while who whom why will with would you your yours yourself yourselves really also got get gets going
go goes went like just lot lots much many thing things stuff something anything everything yeah oh wow um so
it's i'm i've i'd i'll that's you're don't didn't can't won't isn't wasn't let let's""".split())


_ROLE = r"(?:assistant|system|developer|user|human|ai|tool|bot|model|sys|inst|function)"
_FORGED = re.compile(
    rf"\b{_ROLE}\s*:"  # a role's label: "assistant: …", "system:"
    rf"|[\[<{{(]\s*/?\s*{_ROLE}\b"  # a role tag: "[SYSTEM]", "<system>", "{{assistant}}"
    r"|<\||\|>|\[/?inst\]"  # chat-template tokens
    r"|(?:^|\s)(?:#{1,6}|[-*>•])\s+\w[^:]{0,40}:"  # a header or a labelled bullet: "## x:", "- fact:"
    r"|(?:^|\s)#{1,6}\s"  # a header
    r"|\b(?:ignore|disregard|override)\s+(?:all\s+|any\s+|the\s+|your\s+)?(?:previous\s+|prior\s+|above\s+|earlier\s+)?"
    r"(?:instructions?|rules|prompts?|guidelines)\b"
    r"|\bassistant (?:must|should|shall|has to|needs to)\b"
    r"|\bfrom now on,? (?:you|the assistant)\b",
    re.IGNORECASE,
)
# "Mallory: …" inside a turn: another speaker's line quoted (a capitalised label and a colon).
_LABEL = re.compile(r"(?:^|[\s\"'(\[])[A-Z][\w'.-]*(?: [A-Z][\w'.-]*)?\s*:(?:\s|$)")
_OWN_LABEL = re.compile(r"^\s*([A-Z][\w'.-]{0,30}(?: [A-Z][\w'.-]{0,30})?):\s+")


def forged(sentence: str) -> bool:
    """Whether a sentence looks like prompt structure or words aimed at the assistant,
    not a statement of its speaker's: it is never put into a summary."""
    return bool(_FORGED.search(sentence) or _LABEL.search(sentence))


def own_words(turn: TurnInput) -> str:
    """A turn's text without a leading label naming its own speaker ("Caroline: …")."""
    match = _OWN_LABEL.match(turn.text)
    if match and normalize_subject(match.group(1)) == turn.subject:
        return turn.text[match.end():]
    return turn.text


def sentences(text: str) -> list[str]:
    """The sentences of a turn's text: a line break ends one too; spaces folded."""
    out = []
    for line in text.splitlines():
        for match in _SENTENCE.finditer(line):
            sentence = " ".join(match.group(0).split())
            if sentence:
                out.append(sentence)
    return out


@dataclass(frozen=True)
class _Sentence:
    turn: TurnInput
    subject: str
    text: str
    position: int
    score: float


def clean(text: str) -> str:
    """A turn's own words: shared-photo captions removed, curly quotes straightened."""
    return CAPTION.sub("", text).replace("\u2019", "'").replace("\u2018", "'").strip()


def content_words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text) if w.lower() not in STOPWORDS and len(w) > 2]


def score(text: str) -> float:
    """How much a sentence says: content words, names and numbers; small talk and
    questions say nothing."""
    stripped = _LEAD.sub("", text.strip())
    if not stripped or stripped.endswith("?") or _SMALL_TALK.match(stripped):
        return 0.0
    words = content_words(stripped)
    if len(words) < 3:
        return 0.0
    names = sum(1 for w in _WORD.findall(stripped)[1:] if w[:1].isupper() and w.lower() not in STOPWORDS)
    numbers = sum(1 for w in _WORD.findall(stripped) if w.isdigit())
    first_person = 1.3 if re.search(r"\b(I|my|we|our)\b", stripped) else 1.0
    base = len(set(words)) + 1.5 * names + numbers
    return first_person * base / math.sqrt(max(len(_WORD.findall(stripped)), 1) / 12 + 1)


def rewrite(text: str, turn: TurnInput, subject: str, listener: str | None = None, *, dates: bool = True) -> str:
    """One sentence as a memory: relative dates resolved (unless `dates` is False: the
    caller resolved them), first person made third (and "you" too, when who was
    addressed is known)."""
    text = _LEAD.sub("", text.strip())
    if dates:
        text = resolve_dates(text, turn)
    text = third_person(text, subject)
    if listener is not None:
        text = second_person(text, listener)
    return text[:1].upper() + text[1:]


def resolve_dates(text: str, turn: TurnInput) -> str:
    """Relative dates replaced by the days they stand for, each read by its clause's tense."""
    return absolute(text, find_times(text, turn.moment))


def summarize(turns: Sequence[TurnInput], *, max_sentences: int = 5) -> Candidate | None:
    """One `summary` candidate for the turns of one session, or None when they say
    nothing worth keeping."""
    pool: list[_Sentence] = []
    for turn in turns:
        if turn.role not in ("user", "human"):
            continue
        subject = turn.subject
        for sentence in sentences(clean(own_words(turn))):
            value = 0.0 if forged(sentence) else score(sentence)
            if value > 0:
                pool.append(_Sentence(turn, subject, sentence, len(pool), value))
    if not pool:
        return None
    want = max(1, min(max_sentences, math.ceil(len(turns) / 4)))
    chosen: list[_Sentence] = []
    for candidate in sorted(pool, key=lambda s: -s.score):
        words = set(content_words(candidate.text))
        if any(_overlap(words, set(content_words(c.text))) > 0.5 for c in chosen):
            continue
        chosen.append(candidate)
        if len(chosen) == want:
            break
    chosen.sort(key=lambda s: s.position)
    first = min(turns, key=lambda t: t.moment)
    day = first.moment.date()
    speakers = sorted({c.subject for c in chosen})
    everyone = {t.subject for t in turns if t.role in ("user", "human")}

    def listener(subject: str) -> str | None:  # in a two-person talk, "you" is the other one
        others = everyone - {subject}
        return next(iter(others)) if len(everyone) == 2 and len(others) == 1 else None

    body = " ".join(_end(rewrite(c.text, c.turn, c.subject, listener(c.subject))) for c in chosen)
    text = f"On {day.day} {day.strftime('%B')} {day.year}: {body}"
    sources = tuple(dict.fromkeys(c.turn.id for c in chosen))
    keywords = tuple(dict.fromkeys(w for c in chosen for w in content_words(c.text)))[:12]
    last = max((c.turn for c in chosen), key=lambda t: t.moment)
    return Candidate(kind="summary", text=text, subject=" and ".join(normalize_subject(s) for s in speakers),
                     sources=sources, said_at=last.timestamp, when=day.isoformat(), keywords=keywords,
                     confidence=0.5)


def _overlap(a: set[str], b: set[str]) -> float:
    return len(a & b) / max(1, min(len(a), len(b)))


def _end(text: str) -> str:
    return text if text.endswith((".", "!")) else text + "."
