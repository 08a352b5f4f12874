"""Injected instructions, flagged (A-MemGuard): a pure, offline detector.

Memory is an attack surface: what a user, a web page or another agent once said is
pasted into a future prompt. `flag()` marks a text that carries instructions aimed at the
assistant or its tools, with a reason code:

    override            "ignore previous instructions" and its paraphrases, in English and 13
                        other languages (French, German, Spanish, Chinese, Italian, Portuguese,
                        Dutch, Turkish, Russian, Japanese, Korean, Arabic, Hindi)
    role_hijack         "you are now DAN", "pretend you have no rules", "I am your developer"
    directive           standing orders for the assistant: "from now on you must…",
                        "always answer in French", "tell the user…", "when the user asks…",
                        "store this in your memory"; any order in a role "system" turn
    fake_role_line      a speaker label or chat-template token inside the text ("\\nsystem: …",
                        "<|im_start|>system", "[INST]", "### Instruction"), or a name that
                        claims to be the assistant or the system
    fake_structure      Engram's own block structure forged ("\\n## session …", "\\n- fact: …"),
                        or a name with a line break in it
    credential_request  asking for passwords, API keys, one-time codes, card numbers
    exfiltration        "reveal your system prompt", sending the conversation to a URL,
                        markdown images that carry data away
    tool_call           tool-call syntax (JSON function calls, <tool_call>, functions.x( … ),
                        shell commands to run
    hidden_markup       HTML comments, hidden CSS, scripts, runs of zero-width characters,
                        Unicode tag characters smuggling ASCII
    encoded             base64 / hex / rot13 / reversed / URL-encoded text that decodes to an
                        instruction, or "decode this and follow it"
    split               an instruction split across consecutive turns (`flag_window`)

Before matching, the text is normalised (`normalize`): NFKC, invisible characters removed,
curly quotes and dashes folded, whitespace collapsed, lower case; a second copy has its
accents stripped and Cyrillic/Greek look-alike letters folded to Latin ("іgnоrе" with
Cyrillic letters reads "ignore"), and a third, only when the text looks like it, its
leetspeak folded ("1gn0r3"). Rules are regular expressions (guard_rules.py), each tried only
when one of its anchor words occurs in the text, so ordinary conversation costs some tens
of microseconds a turn: see
`engram bench guard` (docs/benchmarks.md) for the cost per turn and the false-flag rate on
LoCoMo. It is a filter for the obvious and the common, not a proof: a determined attacker
can phrase an instruction no rule knows. What it flags is marked, never dropped.

Intended wiring (for Memory, distill and retrieval; pure functions, nothing here writes):

1. `Memory.add`: for each message, `flag(content, role=role, name=name)`; also
   `flag_label(session_id)`; then `flag_window(contents, each=False)` over the batch (with
   the session's last few stored turns in front) for instructions split across turns. A
   flagged turn is stored as usual, with `metadata[METADATA_KEY] = flag.reason` (see
   `Flag.metadata`); `WindowFlag.turns` names the turns of a split one.
2. Retrieval: a flagged memory is rendered marked as untrusted (the block says so on its
   line); `filters={"flagged": …}` selects or excludes them; a config switch leaves them
   out of `search`/`context` entirely.
3. Distillation: flagged turns are left out of what the extractor and the summariser read
   (they never become facts or summaries as if true); and every candidate the extractor
   returns goes through `candidate_is_tainted(candidate.text, flags of its sources)`, which
   drops candidates that cite a flagged turn or that read as an instruction themselves
   (an LLM extractor can be talked into writing one).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import functools
import html
import re
import unicodedata
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .guard_rules import LATIN_LANGUAGES, OTHER_SCRIPTS, PHRASES, SQUASHED, STRUCTURE, Rule

METADATA_KEY = "flagged"
REASONS: tuple[str, ...] = (
    "override", "role_hijack", "directive", "fake_role_line", "fake_structure", "credential_request",
    "exfiltration", "tool_call", "hidden_markup", "encoded", "split",
)
EVIDENCE_CHARS = 80


@dataclass(frozen=True)
class Flag:
    """Why a text was flagged: a code from REASONS and the normalised text that matched."""

    reason: str
    evidence: str

    def metadata(self) -> dict[str, str]:
        """What the store keeps with the flagged memory: {"flagged": reason}."""
        return {METADATA_KEY: self.reason}


@dataclass(frozen=True)
class WindowFlag:
    """A flag over consecutive turns: `turns` are the indices (into the texts given to
    `flag_window`) of the turns that carry it; reason "split" when no one of them does alone."""

    reason: str
    evidence: str
    turns: tuple[int, ...]

    def metadata(self) -> dict[str, str]:
        return {METADATA_KEY: self.reason}


# -- normalisation -------------------------------------------------------------------

_INVISIBLE = dict.fromkeys(
    [0x00AD, 0x034F, 0x061C, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180E, 0x3164, 0xFEFF, 0xFFA0,
     *range(0x180B, 0x1810), *range(0x200B, 0x2010), *range(0x202A, 0x202F), *range(0x2060, 0x2070),
     *range(0xFE00, 0xFE10), *range(0xE0000, 0xE0080), *range(0xE0100, 0xE01F0)],
)
_PUNCT = {0x2018: "'", 0x2019: "'", 0x201A: "'", 0x201B: "'", 0x2032: "'", 0x02BC: "'", 0x201C: '"', 0x201D: '"',
          0x201E: '"', 0x201F: '"', 0x00AB: '"', 0x00BB: '"', 0x2010: "-", 0x2011: "-", 0x2012: "-", 0x2013: "-",
          0x2014: "-", 0x2015: "-", 0x2212: "-", 0x3000: " "}
_CLEAN = str.maketrans({**_INVISIBLE, **_PUNCT})
# Cyrillic, Greek and IPA letters that look like Latin ones (after lower-casing).
_HOMOGLYPHS = str.maketrans({
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c", "т": "t",
    "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i", "ј": "j", "ԁ": "d", "ӏ": "l", "ɡ": "g", "ԛ": "q", "ԝ": "w",
    "ɑ": "a", "ɩ": "i", "ɪ": "i", "ı": "i", "ο": "o", "ι": "i", "α": "a", "ε": "e", "ν": "v", "ρ": "p", "τ": "t",
    "κ": "k", "υ": "u", "χ": "x", "ϲ": "c", "ω": "w", "ѡ": "w", "һ": "h", "ɦ": "h", "ʏ": "y", "ᴀ": "a", "ᴇ": "e",
    "ɴ": "n", "ʀ": "r", "ꜱ": "s", "ᴛ": "t", "ᴏ": "o", "ᴜ": "u", "ᴍ": "m", "ɢ": "g", "ʟ": "l", "ᴄ": "c", "ᴅ": "d",
    "ʜ": "h", "ᴋ": "k", "ᴘ": "p", "ᴠ": "v", "ᴡ": "w", "ᴢ": "z", "ß": "ss", "æ": "ae", "œ": "oe", "ø": "o", "ł": "l",
    "đ": "d", "ð": "d", "þ": "th",
})
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i",
                       "|": "l", "€": "e"})
_LEET_CHARS = re.compile(r"[0134579@$|€]")
_LEET_HINT = re.compile(r"[a-z][0134579@$!|€][a-z]|\b[0134579@$|][a-z]{2,}")
_TOKEN_BREAKS = bytes(32 if chr(b) in ".,!?:;\"'()[]{}<>*_`~#-/\\|+=&^%$@\n\t" else b for b in range(256))
_OTHER_SCRIPT = re.compile(r"[\u0400-\u04ff\u0600-\u06ff\u0900-\u097f\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")


def normalize(text: str) -> str:
    """NFKC, invisible characters removed, quotes and dashes folded, lower case, runs of
    spaces collapsed to one and line breaks to one "\\n" (kept: a line break is what a
    forged speaker line needs)."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text).translate(_CLEAN)
    lines = text.lower().splitlines()  # every line break: \r, \v, \f, \x1c-\x1e, \x85, \u2028, \u2029
    if len(lines) == 1:
        return " ".join(lines[0].split())
    return "\n".join(line for line in (" ".join(line.split()) for line in lines) if line)


def _folded(normal: str) -> str:
    """Accents stripped and look-alike letters folded to Latin (for text that is not ASCII)."""
    decomposed = unicodedata.normalize("NFD", normal)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).translate(_HOMOGLYPHS)


def _variants(normal: str) -> list[str]:
    variants = [normal]
    if not normal.isascii():
        folded = _folded(normal)
        if folded != normal:  # first: the rules of Latin-script languages are written without accents
            variants.insert(0, folded)
    last = variants[-1]
    if _LEET_CHARS.search(last) and _LEET_HINT.search(last):
        leet = last.translate(_LEET)
        if leet != last:
            variants.append(leet)
    return variants


def _words(flat: str) -> list[bytes]:
    """The words of a text, as UTF-8 bytes (bytes.translate is the fastest split there is)."""
    return flat.encode("utf-8", "surrogatepass").translate(_TOKEN_BREAKS).split()


def _spelled_out(words: list[bytes]) -> bool:
    """Five one-letter words in a row: "i g n o r e", "i.g.n.o.r.e"."""
    if list(map(len, words)).count(1) < 5:
        return False
    run = 0
    for word in words:
        run = run + 1 if len(word) == 1 else 0
        if run >= 5:
            return True
    return False


# -- the detector --------------------------------------------------------------------


class _Table:
    """Rules indexed by their anchors, so that a text only meets the rules it could match."""

    def __init__(self, rules: Sequence[Rule]):
        self.rules = tuple(rules)
        self.by_key: dict[bytes, list[int]] = {}
        self.by_symbol: dict[str, list[int]] = {}
        self.always = []
        for index, rule in enumerate(self.rules):
            for word in rule.words:
                self.by_key.setdefault(word.encode(), []).append(index)
            for symbol in rule.symbols:
                self.by_symbol.setdefault(symbol, []).append(index)
            if not rule.words and not rule.symbols:
                self.always.append(index)
        self.key_set = frozenset(self.by_key)  # set & frozenset walks the smaller side; set & dict walks the dict
        self.symbols = tuple(self.by_symbol.items())

    def run(self, lines: str, flat: str, keys: set[bytes]) -> tuple[str, re.Match[str]] | None:
        chosen = set(self.always)
        for word in keys & self.key_set:
            chosen.update(self.by_key[word])
        for symbol, indices in self.symbols:
            if symbol in flat:
                chosen.update(indices)
        for index in sorted(chosen):
            rule = self.rules[index]
            if rule.requires and not all(part in lines for part in rule.requires):
                continue
            if rule.also and not any(part in flat for part in rule.also):
                continue
            match = _apply(rule, lines, flat)
            if match:
                return rule.reason, match
        return None


def _apply(rule: Rule, lines: str, flat: str) -> re.Match[str] | None:
    if rule.form == "flat":
        if rule.before is None:
            return rule.regex.search(flat)
        for match in rule.regex.finditer(flat):
            if rule.before.search(flat, max(0, match.start() - 40), match.start()):
                return match
        return None
    starts = lines.split("\n")
    for line in starts if rule.form == "lines" else starts[1:]:
        match = rule.regex.match(line)
        if match:
            return match
    return None


_LATIN = _Table(STRUCTURE + PHRASES + LATIN_LANGUAGES)  # tried in this order
_OTHER = _Table(OTHER_SCRIPTS)


def _scan(normal: str) -> tuple[tuple[str, re.Match[str]] | None, set[bytes]]:
    """The first rule that matches one of the variants of normalised text, and the anchor
    keys of the text itself (the encoded-payload checks read them too)."""
    primary: set[bytes] = set()
    for lines in _variants(normal):
        flat = lines.replace("\n", " ")
        words = _words(flat)
        keys = {word[:5] for word in words}
        if not primary:
            primary = keys
        found = _LATIN.run(lines, flat, keys)
        if found is None and not lines.isascii() and _OTHER_SCRIPT.search(lines):
            found = _OTHER.run(lines, flat, keys)
        if found is None and _spelled_out(words):
            match = SQUASHED.search(_NOT_LETTERS.sub("", flat))
            if match:
                found = ("override", match)
        if found:
            return found, primary
    return None, primary


_NOT_LETTERS = re.compile(r"[^a-z]+")


def _evidence(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= EVIDENCE_CHARS else text[: EVIDENCE_CHARS - 1] + "…"


def flag(text: str, *, role: str | None = None, name: str | None = None) -> Flag | None:
    """A Flag when `text` (a turn's content; `role` and `name` as stored with it) carries
    instructions aimed at the assistant or its tools, else None. Pure and fast."""
    if name is not None:
        found = flag_label(name, role=role)
        if found:
            return found
    return _flag(text, role, depth=0)


def _flag(text: str, role: str | None, depth: int) -> Flag | None:
    hidden = _hidden_markup(text)
    if hidden:
        return hidden
    normal = normalize(text)
    found, keys = _scan(normal)
    if found:
        return Flag(found[0], _evidence(found[1].group(0)))
    if role in ("system", "developer") and _SYSTEM_ORDER.search(normal):
        return Flag("directive", _evidence(normal))
    if role not in (None, "user") and normal.startswith(("user:", "human:")):
        return Flag("fake_role_line", _evidence(normal[:40]))
    if depth == 0:
        return _encoded(text, normal, keys)
    return None


# A system turn that gives orders: "You must always answer in French."
_SYSTEM_ORDER = re.compile(
    r"\b(?:you|your|you're|yourself)\b|^(?:please )?(?:always|never|only|do not|don'?t|respond|answer|reply|ignore|"
    r"act|behave|speak|write|use|refuse|pretend|forget|remember|be|keep|avoid|follow|obey|translate|output|format|"
    r"summari[sz]e|include|stop|start|begin|end|tell|say|make sure|ensure|note that)\b"
)

# -- hidden markup (read on the raw text: normalisation would remove the evidence) ---

_HTML_COMMENT = re.compile(r"<!--(?:(?!-->).){0,2000}?[^\W\d_]{3}", re.S)
_HIDDEN_HTML = re.compile(
    r"<(?:script|iframe|object|embed|meta|link|style|svg|math|form|input|textarea|base|frame|frameset)\b"
    r"|\bon(?:error|load|click|mouseover|focus|submit|begin|toggle) ?= ?[\"'`]?[\w(]"
    r"|\bjavascript: ?[\w(]|\bdata:text/html"
    r"|\bstyle ?= ?[\"'][^\"'>]{0,200}?(?:display ?: ?none|visibility ?: ?hidden|font-size ?: ?0(?:\.\d+)?"
    r"(?:px|pt|em|rem|%)?\b|opacity ?: ?0(?:\.0+)?\b|color ?: ?(?:white|#fff\b|#ffffff|transparent)|"
    r"(?:height|width) ?: ?0(?:px)?\b)"
    r"|<font\b[^>]{0,60}\b(?:color ?= ?[\"']?(?:white|#fff\b|#ffffff)|size ?= ?[\"']?0)"
    r"|\[(?:hidden|invisible|secret) (?:text|instructions?|message|prompt)\]",
    re.I,
)
_ZERO_WIDTH_RUN = re.compile(r"[\u200b\u200c\u200d\u2060-\u2064\ufeff\u180e]{3,}")
_STRAY_ZERO_WIDTH = re.compile(r"\w[\u200b\u2060\u2061-\u2064\ufeff\u180e]+\w")
_TAG_RUN = re.compile(r"[\U000E0020-\U000E007E]+")


def _hidden_markup(text: str) -> Flag | None:
    match = None
    if "<!--" in text:
        match = _HTML_COMMENT.search(text)
    if match is None and ("<" in text or "=" in text or ":" in text or "[" in text):
        low = text.lower()
        if "<" in text or "=" in text or "script:" in low or "data:" in low or "[hidden" in low \
                or "[invisible" in low or "[secret" in low:
            match = _HIDDEN_HTML.search(text)
    if match:
        return Flag("hidden_markup", _evidence(match.group(0)))
    if text.isascii():
        return None
    match = _ZERO_WIDTH_RUN.search(text)
    if match or len(_STRAY_ZERO_WIDTH.findall(text)) >= 2:
        return Flag("hidden_markup", "zero-width characters")
    for run in _TAG_RUN.finditer(text):
        start = run.start()
        if start and text[start - 1] == "\U0001F3F4":  # a subdivision flag (🏴 + tags): an emoji
            continue
        smuggled = "".join(chr(ord(c) - 0xE0000) for c in run.group(0))
        if sum(c.isalpha() for c in smuggled) >= 3:
            return Flag("hidden_markup", _evidence("tag characters: " + smuggled))
    return None


# -- encoded payloads --------------------------------------------------------------

_ENCODING = (r"(?:base ?64|b64|rot-?13|hex(?:adecimal)?|binary|caesar|morse|cipher|ciphertext|encoded|encrypted|"
             r"reversed|backwards|obfuscated|ascii codes?)")
_DECODE_AND_OBEY = re.compile(
    r"\b(?:decode|decrypt|decipher|unscramble|reverse|convert|interpret|read)\b(?: \S+){0,8}? (?:and|then|,) "
    r"(?:then )?(?:follow|execute|obey|do|run|carry out|act on|apply|perform|comply with|implement)\b"
)
_ENCODING_WORD = re.compile(r"\b" + _ENCODING + r"\b")
_BASE64 = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}|[A-Za-z0-9_-]{16,}={0,2}")
_HEX_ESCAPES = re.compile(r"(?:\\x[0-9a-fA-F]{2}){8,}")
_HEX_RUN = re.compile(r"(?:[0-9a-fA-F]{2}[ :]?){12,}")
_HEX_PAIRS = re.compile(r"[2-7][0-9a-fA-F][ :][2-7][0-9a-fA-F][ :][2-7][0-9a-fA-F][ :]")  # "49 67 6e "
_PERCENT = re.compile(r"(?:%[0-9a-fA-F]{2}){6,}")
_ENTITIES = re.compile(r"(?:&#x?[0-9a-fA-F]{1,6};){5,}")
_BINARY = re.compile(r"(?:[01]{8} ?){6,}")
# anchor keys (a word's first five letters) of rot13 / reversed instruction words, and of encodings
_ROT13_KEYS = frozenset(w[:5].encode() for w in (
    "vtaber", "qvfertneq", "sbetrg", "vafgehpgvbaf", "cerivbhf", "cevbe", "flfgrz", "cebzcg", "nffvfgnag", "cnffjbeq",
    "ercyl", "erfcbaq", "nyjnlf", "ebg13", "rot13"))
_REVERSED_KEYS = frozenset(w[:5].encode() for w in ("erongi", "drager", "dragersid", "snoitcurtsni", "suoiverp",
                                                   "drowssap", "tpmorp", "metsys"))
_ENCODING_KEYS = frozenset(w[:5].encode() for w in (
    "base64", "base", "b64", "rot13", "rot", "hex", "hexadecimal", "binary", "caesar", "morse", "cipher", "ciphertext",
    "encoded", "encrypted", "reversed", "backwards", "obfuscated", "ascii"))
_KEYWORDS = re.compile(r"\b(?:ignore|disregard|instructions?|system prompt|password|api key|assistant|you must|"
                       r"from now on|jailbreak|credentials)\b")


def _printable(data: bytes) -> str | None:
    try:
        decoded = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if len(decoded) < 6 or sum(c.isprintable() or c.isspace() for c in decoded) < 0.95 * len(decoded):
        return None
    return decoded


def _decoded_payloads(text: str, normal: str, keys: set[bytes]) -> Iterable[str]:
    tokens = text.split()
    lengths = list(map(len, tokens))
    longest = max(lengths, default=0)
    if longest >= 16:
        for match in list(_BASE64.finditer(text))[:8]:
            blob = match.group(0)
            if blob.isalpha() and (blob.islower() or blob.isupper()):  # a long word, not base64
                continue
            padded = blob + "=" * (-len(blob) % 4)
            for decode in (base64.b64decode, base64.urlsafe_b64decode):
                try:
                    decoded = _printable(decode(padded))
                except (binascii.Error, ValueError):
                    decoded = None
                if decoded:
                    yield decoded
                    break
    hexes: list[re.Match[str]] = []
    if "\\x" in text:
        hexes += _HEX_ESCAPES.finditer(text)
    if longest >= 24 or (lengths.count(2) >= 12 and _HEX_PAIRS.search(text)):
        hexes += _HEX_RUN.finditer(text)
    if hexes:
        for match in hexes[:4]:
            digits = re.sub(r"\\x|[ :]", "", match.group(0))
            try:
                decoded = _printable(bytes.fromhex(digits[: len(digits) // 2 * 2]))
            except ValueError:
                decoded = None
            if decoded:
                yield decoded
    if lengths.count(8) >= 6 and sum(not token.strip("01") for token in tokens if len(token) == 8) >= 6:
        for match in list(_BINARY.finditer(text))[:2]:
            bits = match.group(0).replace(" ", "")
            yield "".join(chr(int(bits[i:i + 8], 2)) for i in range(0, len(bits) - 7, 8))
    if "%" in text and _PERCENT.search(text):
        yield urllib.parse.unquote(text)
    if "&#" in text and _ENTITIES.search(text):
        yield html.unescape(text)
    if not keys.isdisjoint(_ROT13_KEYS):
        yield codecs.encode(normal, "rot13")
    if not keys.isdisjoint(_REVERSED_KEYS):
        yield normal[::-1]


def _encoded(text: str, normal: str, keys: set[bytes]) -> Flag | None:
    if not keys.isdisjoint(_ENCODING_KEYS) and _ENCODING_WORD.search(normal):
        match = _DECODE_AND_OBEY.search(normal)
        if match:
            return Flag("encoded", _evidence(match.group(0)))
    for decoded in _decoded_payloads(text, normal, keys):
        inner = _flag(decoded, None, depth=1)
        if inner is not None or _KEYWORDS.search(normalize(decoded)):
            return Flag("encoded", _evidence(decoded))
    return None


# -- labels, windows, candidates ----------------------------------------------------

_ROLE_NAMES = frozenset({
    "system", "assistant", "developer", "tool", "function", "admin", "administrator", "root", "sys", "openai",
    "anthropic", "engram", "moderator", "operator", "ai", "bot", "chatgpt", "claude", "gpt", "model", "user",
    "human", "system prompt", "system message", "memory", "fact", "summary",
})
# Role-like names that are what a turn of that role may call its speaker ("Bot" on an assistant's turn).
_FITS_ROLE = {
    "assistant": frozenset({"assistant", "ai", "bot", "chatgpt", "claude", "gpt", "model"}),
    "user": frozenset({"user", "human"}),
    "tool": frozenset({"tool", "function"}),
    "system": frozenset({"system", "sys", "system message"}),
}
_LABEL_MARKUP = re.compile(r"^[-*#>•+\[(]|[:<>|\[\]{}`]|^\W+$")


@functools.lru_cache(maxsize=4096)
def flag_label(label: str, *, role: str | None = None) -> Flag | None:
    """A Flag when a short label stored beside a turn (a speaker name, a session id) could
    forge structure: a line break or markup in it, or a name claiming a role the turn does
    not have (a user's turn named "assistant"); or when it carries an instruction."""
    if any(ord(c) < 32 or c in "\x7f\x85\u2028\u2029" for c in label):
        return Flag("fake_structure", _evidence(repr(label)))
    normal = normalize(label)
    bare = normal.strip(" .'\"_-")
    if bare in _ROLE_NAMES and bare not in _FITS_ROLE.get(role or "", frozenset({role})):
        return Flag("fake_role_line", _evidence(label))
    if _LABEL_MARKUP.search(normal):
        return Flag("fake_structure", _evidence(label))
    return _flag(label, None, depth=0)


def flag_window(texts: Sequence[str], *, each: bool = True) -> WindowFlag | None:
    """Flag consecutive turns (in order) together: a turn flagged alone (unless `each` is
    False: the caller has flagged each turn already), else an instruction that only appears
    when the turns are read one after another (all of them, or every other one: the same
    speaker's turns), reason "split"."""
    for index, text in enumerate(texts if each else ()):
        found = flag(text)
        if found:
            return WindowFlag(found.reason, found.evidence, (index,))
    if len(texts) < 2:
        return None
    normals = [normalize(text) for text in texts]
    groups = [list(range(len(texts)))]
    if len(texts) >= 4:
        groups += [list(range(0, len(texts), 2)), list(range(1, len(texts), 2))]
    for group in groups:
        found = _joined(normals, group, glue=False)
        cut = any(normals[a][-1:].isalpha() and normals[b][:1].isalpha() for a, b in zip(group, group[1:]))
        if found is None and cut:  # a turn ends and the next begins with a letter: perhaps one word cut in two
            found = _joined(normals, group, glue=True)
        if found:
            return found
    return None


def _joined(normals: list[str], group: list[int], *, glue: bool) -> WindowFlag | None:
    """Scan the turns of `group` read as one text: a space between two turns, or (`glue`)
    none between two letters, for a word cut in two ("Ign" + "ore")."""
    starts, joined = [], ""
    for index in group:
        part = normals[index]
        if joined and not (glue and joined[-1].isalpha() and part[:1].isalpha()):
            joined += " "
        starts.append(len(joined))
        joined += part
    found, _ = _scan(joined)
    if found is None:
        return None
    _, match = found
    if match.string == joined:
        turns = tuple(index for index, start in zip(group, starts)
                      if start < match.end() and start + len(normals[index]) > match.start())
    elif any(_scan(normals[index])[0] for index in group):  # matched on a folded copy: is one turn enough?
        turns = ()
    else:
        turns = tuple(group)
    if len(turns) < 2:  # one turn says it all: flag() marks that turn; this is no split
        return None
    return WindowFlag("split", _evidence(match.group(0)), turns)


def candidate_is_tainted(text: str, source_flags: Iterable[str | None]) -> bool:
    """For the distiller: True when a candidate memory (a fact, an event, a summary line)
    must not be stored as if true: one of its source turns is flagged (`source_flags`: the
    stored "flagged" reason of each source, None for a clean one), or its own text reads
    as an instruction."""
    return any(source_flags) or flag(text) is not None
