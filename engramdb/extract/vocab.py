"""The controlled vocabulary of attributes, so that supersession can work.

"lives in", "moved to" and "relocated to" all say `residence`; "works at", "started a
new job at" and "got hired by" all say `employer`. An attribute is exclusive when a
person has one value at a time (a new residence supersedes the old one) and
multi-valued otherwise (a new pet does not retire the old one). `likes` and `dislikes`
share one family, so "I hate sushi now" competes with "I love sushi".

Attributes outside the vocabulary (an LLM's free invention) are kept as slugs and
are never exclusive: an unknown attribute must not retire anything."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Attribute:
    name: str
    exclusive: bool
    kind: str = "fact"  # or "preference"
    family: str = ""  # attributes of one family compete for the same slot

    @property
    def slot_family(self) -> str:
        return self.family or self.name


ATTRIBUTES: dict[str, Attribute] = {a.name: a for a in [
    Attribute("residence", exclusive=True),
    Attribute("hometown", exclusive=True),
    Attribute("employer", exclusive=True),
    Attribute("job_title", exclusive=True),
    Attribute("school", exclusive=False),
    Attribute("relationship_status", exclusive=True),
    Attribute("partner", exclusive=True),
    Attribute("sibling", exclusive=False),
    Attribute("child", exclusive=False),
    Attribute("pet", exclusive=False),
    Attribute("age", exclusive=True),
    Attribute("birthday", exclusive=True),
    Attribute("diet", exclusive=True, kind="preference"),
    Attribute("allergy", exclusive=False),
    Attribute("likes", exclusive=False, kind="preference", family="taste"),
    Attribute("dislikes", exclusive=False, kind="preference", family="taste"),
]}

_SYNONYMS: dict[str, str] = {}
for _canonical, _words in {
    "residence": "residence|lives in|live in|living in|location|current location|city|current city|home|"
                 "address|moved to|moves to|relocated to|resides in|place of residence",
    "hometown": "hometown|home town|from|is from|comes from|grew up in|born in|birthplace|place of birth|origin",
    "employer": "employer|works at|work at|works for|work for|company|workplace|job at|"
                "started a new job at|got hired by|hired by|employed by|employment",
    "job_title": "job title|job|occupation|profession|role|position|works as|work as|career|title",
    "school": "school|university|college|studies at|study at|education|alma mater|attends|attended",
    "relationship_status": "relationship status|relationship|marital status|married|single|engaged|divorced",
    "partner": "partner|spouse|husband|wife|boyfriend|girlfriend|fiance|fiancee|dating|significant other",
    "sibling": "sibling|siblings|sister|brother",
    "child": "child|children|kid|kids|son|daughter",
    "pet": "pet|pets|has pet|dog|cat|owns pet",
    "age": "age|years old",
    "birthday": "birthday|date of birth|birth date|born on|dob",
    "diet": "diet|dietary preference|dietary restriction|eating habit",
    "allergy": "allergy|allergies|allergic to|is allergic to",
    "likes": "likes|like|loves|love|enjoys|enjoy|favorite|favourite|hobby|hobbies|interest|interests|"
             "preference|fan of|prefers",
    "dislikes": "dislikes|dislike|hates|hate|does not like|doesn t like|not a fan of|avoids",
}.items():
    for _word in _words.split("|"):
        _SYNONYMS[_word] = _canonical


def normalize_attribute(raw: object) -> str | None:
    """Map a free attribute name onto the vocabulary; unknown names become a slug
    ("Favourite Colour" -> likes, "lives in" -> residence, "shoe size" -> shoe_size)."""
    if not isinstance(raw, str):
        return None
    words = re.sub(r"[^a-z0-9]+", " ", raw.lower()).strip()
    if not words:
        return None
    if words.replace(" ", "_") in ATTRIBUTES:
        return words.replace(" ", "_")
    if words in _SYNONYMS:
        return _SYNONYMS[words]
    if words.startswith(("favorite ", "favourite ")):
        return "likes"
    return words.replace(" ", "_")[:64]


def is_exclusive(attribute: str | None) -> bool:
    spec = ATTRIBUTES.get(attribute or "")
    return bool(spec and spec.exclusive)


def normalize_value(value: str | None) -> str | None:
    if value is None:
        return None
    text = re.sub(r"\s+", " ", value.strip().strip(".,!?;:\"'")).casefold()
    text = re.sub(r"^(the|a|an|my|our) ", "", text)
    return text or None


def normalize_subject(subject: str | None) -> str:
    text = re.sub(r"\s+", " ", (subject or "").strip())
    if not text or text.casefold() in {"i", "me", "user", "the user", "myself", "speaker"}:
        return "user"
    return text


def slot_of(candidate) -> tuple[str, str, str | None] | None:
    if candidate.kind in ("event", "summary") or not candidate.attribute:
        return None
    spec = ATTRIBUTES.get(candidate.attribute)
    family = spec.slot_family if spec else candidate.attribute
    subject = normalize_subject(candidate.subject).casefold()
    if spec and spec.exclusive:
        return (subject, family, None)
    return (subject, family, normalize_value(candidate.value))


def same_slot(new, old) -> bool:
    """Whether `new` (a candidate) is about the same thing as `old` (a stored memory or
    candidate with subject, attribute, value, qualifier), so that asserting `new`
    supersedes `old` or retracting `new` retires it."""
    a, b = slot_of(new), slot_of(old)
    if a is None or b is None or a[:2] != b[:2]:
        return False
    if is_exclusive(new.attribute):
        return True
    if a[2] is None:  # "my dog died": every value of that qualifier ("dog")
        return new.qualifier is None or normalize_value(new.qualifier) == normalize_value(old.qualifier)
    return a[2] == b[2]


def display(subject: str) -> str:
    return "The user" if normalize_subject(subject) == "user" else subject


def possessive(subject: str) -> str:
    name = display(subject)
    return f"{name}'" if name.endswith("s") and name != "The user" else f"{name}'s"


def article(noun: str) -> str:
    return f"an {noun}" if noun[:1].lower() in "aeiou" else f"a {noun}"


def fact_text(subject: str, attribute: str, value: str | None, *, qualifier: str | None = None,
              operation: str = "assert") -> str:
    """A self-contained third-person sentence for a fact or preference."""
    s, v, q = display(subject), value or "", qualifier or ""
    retract = operation == "retract"
    named = f" named {v}" if v and q and v.casefold() != q.casefold() else ""
    thing = q or v
    templates = {
        "residence": (f"{s} lives in {v}", f"{s} no longer lives in {v}" if v else f"{s} moved away"),
        "hometown": (f"{s} is from {v}", f"{s} is not from {v}"),
        "employer": (f"{s} works at {v}", f"{s} no longer works at {v}" if v else f"{s} left their job"),
        "job_title": (f"{s} works as {article(v) if v else ''}",
                      f"{s} no longer works as {article(v)}" if v else f"{s} left their job"),
        "school": (f"{s} studies at {v}" if q != "graduated" else f"{s} graduated from {v}",
                   f"{s} no longer studies at {v}"),
        "relationship_status": (f"{s} is {v}", f"{s} is no longer {v}"),
        "partner": (f"{possessive(subject)} {q or 'partner'} is {v}" if v else f"{s} has a {q or 'partner'}",
                    f"{s} is no longer with {v}" if v else f"{s} broke up with their {q or 'partner'}"),
        "sibling": (f"{s} has {article(q or 'sibling')}{named}", f"{s} no longer has {article(q or 'sibling')}{named}"),
        "child": (f"{s} has {article(q or 'child')}{named}", f"{s} no longer has {article(q or 'child')}{named}"),
        "pet": (f"{s} has {article(thing or 'pet')}{named}", f"{s} no longer has {article(thing or 'pet')}{named}"),
        "age": (f"{s} is {v} years old", f"{s} is no longer {v} years old"),
        "birthday": (f"{possessive(subject)} birthday is {v}", f"{possessive(subject)} birthday is not {v}"),
        "diet": (f"{s} is {v}", f"{s} is no longer {v}"),
        "allergy": (f"{s} is allergic to {v}", f"{s} is no longer allergic to {v}"),
        "likes": (f"{s} likes {v}", f"{s} no longer likes {v}"),
        "dislikes": (f"{s} dislikes {v}", f"{s} no longer dislikes {v}"),
    }
    if attribute in templates:
        return templates[attribute][1 if retract else 0].strip()
    label = attribute.replace("_", " ")
    return f"{possessive(subject)} {label} is {v}" if not retract else f"{possessive(subject)} {label} is no longer {v}"
