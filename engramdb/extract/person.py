"""First person to third person: "I went to my sister's" -> "Caroline went to Caroline's
sister's". Good enough for the short declarative sentences memories are made of; a
subject's gender is never guessed."""

from __future__ import annotations

import re

from .vocab import display, possessive

_IRREGULAR = {"am": "is", "'m": "is", "have": "has", "'ve": "has", "do": "does", "go": "goes", "don't": "doesn't",
              "haven't": "hasn't", "was": "was", "'d": "would", "'ll": "will"}
_PRESENT = set("""love like want think feel need know hope enjoy go do have try work live plan miss wish believe guess
mean see get make take play read write paint run teach study use spend find keep remember forget prefer hate agree
appreciate understand say volunteer cook bake dance sing walk visit own adore dislike practice struggle care
start begin move leave join drive ride watch listen eat drink sleep travel look fly swim climb hike train teach
learn speak meet call text help build fix grow raise collect draw paint sew knit garden shop wear carry bring
stay wake finish need plan attend host lead manage run coach mentor support celebrate worry wonder""".split())


def _inflect(verb: str) -> str:
    low = verb.lower()
    if low in _IRREGULAR:
        return _IRREGULAR[low]
    if low.endswith(("s", "sh", "ch", "x", "z", "o")):
        return verb + "es"
    if low.endswith("y") and low[-2:-1] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"


_I_VERB = re.compile(r"\bI(?:(?P<clitic>'m|'ve|'d|'ll)|\s+(?P<verb>[a-z]+|don't|haven't))?\b(?!')")
_OTHER = re.compile(r"\b(?P<w>[Mm]y|me|[Mm]ine|[Mm]yself|[Ww]e|[Oo]ur|us|ours|ourselves)(?P<clitic>'re|'ve|'ll|'d)?\b")
_WE_CLITIC = {"'re": "are", "'ve": "have", "'ll": "will", "'d": "would"}
_YOU = re.compile(r"\b(?P<w>[Yy]ou|[Yy]our|[Yy]ours|[Yy]ourself)(?P<clitic>'re|'ve|'ll|'d)?\b(?!\s+guys\b)")


def third_person(text: str, subject: str) -> str:
    """Rewrite first-person references to name `subject` ("user" -> "the user")."""
    name = display(subject)
    mid_name = "the user" if name == "The user" else name

    def pick(at: int, upper: str, lower: str) -> str:
        return upper if at == 0 or re.search(r"[.!?]\s*$", text[:at]) else lower

    def i_verb(m: re.Match[str]) -> str:
        who = pick(m.start(), name, mid_name)
        if m.group("clitic"):
            return f"{who} {_IRREGULAR[m.group('clitic')]}"
        verb = m.group("verb")
        if verb is None:
            return who
        if verb in _IRREGULAR and verb not in ("was",):
            return f"{who} {_IRREGULAR[verb]}"
        if verb in _PRESENT:
            return f"{who} {_inflect(verb)}"
        return f"{who} {verb}"

    text = _I_VERB.sub(i_verb, text)
    own = possessive(subject)
    mid_own = "the user's" if own == "The user's" else own

    def other(m: re.Match[str]) -> str:
        word = m.group("w").lower()
        who, whose = pick(m.start(), name, mid_name), pick(m.start(), own, mid_own)
        if word in ("my", "mine"):
            return whose
        if word == "me":
            return who
        if word == "myself":
            return "themself"
        if word in ("our", "ours"):
            return whose
        clitic = f" {_WE_CLITIC[m.group('clitic')]}" if m.group("clitic") else ""
        return f"{who} and others{clitic}" if word in ("we", "us", "ourselves") else who

    return _OTHER.sub(other, text)


def second_person(text: str, listener: str) -> str:
    """Rewrite "you" to name `listener` (in a two-person conversation, the other one)."""
    name, own = display(listener), possessive(listener)

    def sub(m: re.Match[str]) -> str:
        word = m.group("w").lower()
        clitic = {"'re": " is", "'ve": " has", "'ll": " will", "'d": " would"}.get(m.group("clitic") or "", "")
        if word in ("your", "yours"):
            return own
        if word == "yourself":
            return "themself"
        return f"{name}{clitic}"

    return _YOU.sub(sub, text)
