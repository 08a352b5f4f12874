"""Which way a time expression looks: the tense of the clause that holds it.

"in May" said in March is this May when the speaker is moving then ("I'm moving to
Lisbon in May"), and last May when they moved ("I moved in May"). `reltime` resolves
bare weekdays, months, days without a year, "this weekend", "in two weeks", "before
April" by the tense it is given:

- `FUTURE`: "will", "'ll", "going to", "gonna", a modal ("can", "should", "might"), an
  infinitive under a present verb ("I plan to…", "remind me to…"), an imperative, and the
  present progressive ("I'm flying to Japan in January": with a time named, a plan);
- `PAST`: the simple past, the perfect ("I've been", "we haven't talked in a few days"),
  "used to", "did";
- `PRESENT`: the simple present ("my exam is on Friday", "I start next week"): a named
  time then is the current or the coming one;
- None: no verb to tell (a fragment: "Japan! In October."); the nearest reading wins.

Two readers: `of_text` reads the words around the expression (no parser: the query side
and the summaries use it), `of_tokens` reads spaCy's tags and dependencies (the offline
extractor's sentences are parsed anyway)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal

Tense = Literal["past", "present", "future"]
PAST: Tense = "past"
PRESENT: Tense = "present"
FUTURE: Tense = "future"
TenseOf = Callable[[int, int], "Tense | None"]  # (start, end) character offsets -> the tense there

# --- from the words alone -----------------------------------------------------------------------------------------

_BOUNDARY = re.compile(r"[.!?;:,()\u2014\u2013]|\s-\s|\b(?:but|so|because|though|although|while|whereas)\b", re.I)
_ING_ADJECTIVES = frozenset("""amazing interesting exciting boring annoying relaxing inspiring tiring stunning charming
refreshing fascinating surprising thrilling rewarding satisfying fulfilling challenging overwhelming frustrating
encouraging disappointing embarrassing confusing depressing worrying amusing touching moving calming soothing
heartwarming exhausting intimidating terrifying stressful nothing something anything everything thing""".split())
IRREGULAR_PAST = frozenset("""was were did had went got made took saw came met bought found gave told said thought
felt left ran ate wrote began won lost kept brought heard sent spent built sat stood drove flew swam sang knew became
held paid taught caught fell chose broke woke wore rode threw grew drew forgot understood led fought sold hung hid
shook spoke stole struck swore tore froze bit dug fed fled slept slid spun sought wept""".split())
_AFTER_BE = frozenset("""am 'm is 's are 're be been being get got feel felt so very really pretty super quite too
more most totally""".split())
_CUES: list[tuple[Tense, re.Pattern[str]]] = [(tense, re.compile(pattern, re.I)) for tense, pattern in [
    (FUTURE, r"\b(?:will|shall|won't|wo|gonna|going\s+to|about\s+to|plan(?:s|ning|ned)?\s+to|intend(?:s|ing)?\s+to|"
             r"hop(?:e|es|ing)\s+to|want(?:s)?\s+to|wanna|need(?:s)?\s+to|ha(?:ve|s)\s+to|can't\s+wait|cannot\s+wait|"
             r"looking\s+forward|let's|upcoming|how\s+about|what\s+about|"
             r"(?:can|could|should|might|(?-i:may)|must|would)(?!\s+have\b))\b|'ll\b"),
    (PAST, r"\b(?:would|could|should|might|must)\s+have\b|\bused\s+to\b|\bago\b|(?:'ve|\bha(?:ve|s|d)(?:n't)?)\s+"
           r"(?:\w+ly\s+|just\s+|never\s+|not\s+|already\s+|finally\s+)?(?:been|\w+ed|\w+en)\b"),
    (FUTURE, r"(?:'m|'re|\b(?:am|is|are))\s+(?:\w+ly\s+|not\s+|also\s+|still\s+|just\s+|now\s+)?(?P<ing>\w+ing)\b"
             r"|(?<!\w)'s\s+(?P<ing2>\w+ing)\b"),
    (PAST, r"\b(?P<past>\w+)\b"),  # a past form: see _is_past
    (PRESENT, r"(?:'m|'re|\b(?:am|is|are|do|does|don't|doesn't|have|has))\b|(?<=\w)'s\b"),
]]


def of_text(text: str, start: int, end: int) -> Tense | None:
    """The tense of the clause around text[start:end], read from its words: the cue
    nearest before the expression, else the first one after it."""
    left = _clause_start(text, start)
    right = _clause_end(text, end)
    before = text[left:start]
    after = text[end:right]
    best: tuple[int, Tense] | None = None
    for tense, pattern in _CUES:
        for m in pattern.finditer(before):
            if _cue_holds(tense, m, before):
                if best is None or m.end() > best[0]:
                    best = (m.end(), tense)
    if best is not None:
        return best[1]
    for tense, pattern in _CUES:
        for m in pattern.finditer(after):
            if _cue_holds(tense, m, after):
                if best is None or m.start() < best[0]:
                    best = (m.start(), tense)
                break
    return best[1] if best else None


def _cue_holds(tense: Tense, m: re.Match[str], text: str) -> bool:
    groups = m.groupdict()
    ing = groups.get("ing") or groups.get("ing2")
    if ing is not None:
        return ing.lower() not in _ING_ADJECTIVES
    past = groups.get("past")
    if past is not None:
        return _is_past(past, text[:m.start()])
    return True


def _is_past(word: str, before: str) -> bool:
    low = word.lower()
    if low in IRREGULAR_PAST:
        return not (low == "got" and re.search(r"\b(?:have|'ve|has)\s*$", before, re.I))
    if not low.endswith("ed") or len(low) < 4 or low in ("need", "feed", "seed", "speed", "bed", "red", "shed"):
        return False
    previous = re.findall(r"[\w']+", before[-30:].lower())
    return not previous or previous[-1] not in _AFTER_BE  # "I'm excited", "so tired": adjectives


def _clause_start(text: str, at: int) -> int:
    starts = [m.end() for m in _BOUNDARY.finditer(text, 0, at)]
    return starts[-1] if starts else 0


def _clause_end(text: str, at: int) -> int:
    m = _BOUNDARY.search(text, at)
    return m.start() if m else len(text)


# --- from a spaCy parse -------------------------------------------------------------------------------------------

_WILL = frozenset({"will", "'ll", "ll", "shall", "wo", "wil"})
_HAVE = frozenset({"have", "has", "had", "'ve", "'d", "ve"})
_WAS = frozenset({"was", "were", "been"})
_IS = frozenset({"am", "'m", "is", "'s", "are", "'re", "m", "re"})


def of_tokens(sentence, start: int, end: int) -> Tense | None:
    """The tense of the verb that governs the characters [start, end) of a spaCy
    sentence (offsets within `sentence.text`), or None when no verb does."""
    span = sentence.char_span(start, end, alignment_mode="expand") if end > start else None
    if span is None or len(span) == 0:
        return None
    verb = _governor(span.root)
    return _verb_tense(verb, 0) if verb is not None else None


def _governor(token):
    seen = 0
    while seen < 12:
        if token.pos_ in ("VERB", "AUX") and token.dep_ not in ("aux", "auxpass"):
            return token
        if token.head.i == token.i:
            return None
        token, seen = token.head, seen + 1
    return None


def _verb_tense(verb, depth: int) -> Tense | None:
    aux = [c for c in verb.children if c.dep_ in ("aux", "auxpass")]
    words = {a.lower_ for a in aux}
    if words & _WILL:
        return FUTURE
    if verb.lower_ in ("gon", "gonna"):
        return PAST if words & _WAS else FUTURE
    infinitive = any(a.tag_ == "TO" for a in aux) or (verb.tag_ == "VB" and verb.dep_ in ("xcomp", "ccomp"))
    if infinitive and verb.head.i != verb.i and depth < 4:
        head = verb.head
        if head.lower_ in ("going", "gon"):  # "going to", "gonna"; "I was going to call on Friday": a past plan
            return PAST if {c.lower_ for c in head.children if c.dep_ == "aux"} & _WAS else FUTURE
        if head.lemma_ == "use" and head.tag_ == "VBD":  # "used to"
            return PAST
        return None if _verb_tense(head, depth + 1) == PAST else FUTURE  # "I decided to go in May": nearest
    if any(a.tag_ == "MD" for a in aux):
        return PAST if words & _HAVE and verb.tag_ == "VBN" else FUTURE  # "could have gone" / "can meet"
    if "did" in words:
        return PAST
    if words & {"do", "does"}:
        return PRESENT
    tag = verb.tag_
    if tag == "VBD":
        return PAST
    if tag == "VBN":
        if words & _HAVE or words & _WAS:
            return PAST
        if words & _IS:
            return PRESENT
        return _climb(verb, depth) if verb.dep_ in ("conj", "acl", "relcl", "advcl", "xcomp") else PAST
    if tag == "VBG":
        if words & _WAS or words & _HAVE:
            return PAST
        if words & _IS:
            return FUTURE  # the present progressive with a time named: a plan
        return _climb(verb, depth)
    if tag in ("VBZ", "VBP"):
        return PRESENT
    if tag == "MD":
        return FUTURE
    if tag == "VB":
        if verb.dep_ == "ROOT" and not any(c.dep_ in ("nsubj", "nsubjpass", "expl") for c in verb.children):
            return FUTURE  # an imperative: "remind me before April", "let's paint next Saturday"
        return _climb(verb, depth)
    return None


def _climb(verb, depth: int) -> Tense | None:
    """A verb without its own tense shares its head's ("…and volunteer next month")."""
    if verb.head.i == verb.i or depth >= 4:
        return None
    head = _governor(verb.head)
    return _verb_tense(head, depth + 1) if head is not None else None
