"""The pattern tables of the injection detector (guard.py): data, no logic.

Every pattern runs on text that guard.normalize has already lower-cased, NFKC-folded
and whitespace-collapsed, so patterns are written in lower case with single spaces.
A `Rule` searches the text with every line break a space (`"flat"`, for phrases) or matches
at the start of each line (`"lines"`, for forged speaker lines and headers). Its regex is
tried only when one of its anchor words or symbols occurs in the text (see `Rule`): that
keeps the detector cheap on ordinary conversation, where few anchors occur. A regex that
must always run starts with a literal ("you", "from ", "what"), which the regex engine
scans for at C speed; one that starts with `\b` or an alternation is tried at every
position, ten times slower.

Latin-script languages other than English are written without accents: guard.py also
matches a copy of the text with its accents stripped ("précédentes" -> "precedentes").
Languages written in other scripts are matched as they are written."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal


_WORD = re.compile(r"^[a-z0-9]+$")


@dataclass(frozen=True)
class Rule:
    """One pattern. It runs only when the text holds one of `words` (keys: a word's first
    five letters, the whole word if shorter) or one of `symbols` (plain substrings), and
    every one of `requires` and, when given, one of `also`; with neither words nor symbols it
always runs (keep its regex
    led by a literal: the regex engine then skips ahead to it). `form`: "flat" searches the
    text with line breaks as spaces; "lines" matches at the start of each line; "later_lines"
    at the start of each line but the first. `before`, when set, must match the text just
    before the match (a request at the start of a sentence, not in the middle of one)."""

    reason: str
    regex: re.Pattern[str]
    words: frozenset[str] = frozenset()
    symbols: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    form: Literal["flat", "lines", "later_lines"] = "flat"
    before: re.Pattern[str] | None = None
    also: tuple[str, ...] = ()  # when set, one of these substrings must occur too (checked after an anchor)


def key(word: str) -> str:
    return word[:5]


def alt(*words: str) -> str:
    return "(?:" + "|".join(words) + ")"


def _rule(reason: str, anchors: str, pattern: str, form: Literal["flat", "lines", "later_lines"] = "flat",
          *, requires: str = "", before: str | None = None, also: str = "") -> Rule:
    entries = [entry for entry in anchors.split("|") if entry] if anchors != "*" else []
    words = frozenset(key(entry) for entry in entries if _WORD.match(entry))
    symbols = tuple(entry for entry in entries if not _WORD.match(entry))
    return Rule(reason, re.compile(pattern), words, symbols, tuple(r for r in requires.split("|") if r), form,
                re.compile(before) if before else None, tuple(a for a in also.split("|") if a))


# -- English vocabulary ----------------------------------------------------------------

_W = r"(?:[\w'-]+ )"  # one word and its space (punctuation ends a phrase)
_IGNORE = alt(
    "ignore", "ignoring", "disregard", "disregarding", "forget", "forgetting", "skip", "bypass", "override",
    "overrule", "overwrite", "overlook", "discard", "abandon", "neglect", "dismiss", "set aside", "put aside",
    "throw out", "throw away", "scrap", "nullify", "erase", "wipe", "pay no (?:attention|heed|mind) to",
    "(?:do not|don'?t|stop|no longer|never) (?:follow|obey|heed|listen to)(?:ing)?", "never mind", "nevermind",
    "delete", "drop",
)
_EARLIER = alt(
    "previous", "previously", "prior", "earlier", "above", "preceding", "foregoing", "former", "original",
    "initial", "old", "existing", "given", "provided", "received", "default", "built-in", "hidden", "system",
    "developer", "safety", "security", "ethical", "moral", "content", "all", "any", "every",
)
_RULES = alt(
    r"instructions?\b", r"directives?\b", r"prompts?\b", r"prompting\b", r"rules\b", r"guidelines?\b",
    r"guidance\b", r"commands\b", r"constraints\b", r"restrictions\b", r"limitations\b", r"programming\b",
    r"guardrails?\b", r"polic(?:y|ies)\b", r"filters\b", r"training\b", r"principles\b", r"protocols?\b",
    r"system (?:prompt|message)\b",
)
# what the assistant is called: not "model" or "agent" alone, nor names people have (Claude, Gemini)
_AI = (
    "(?:" + "|".join(("ai", "a\\.i\\.", "assistant", "ai assistant", "chatbot", "bot", "llm", "large language model",
                      "language model", "ai model", "gpt(?:-?\\d)?", "chatgpt"))
    + r")(?! (?:manager|coach|principal|professor|director|editor|teacher|chef|producer|engineer|researcher|to the|"
    r"at|in|for|of)\b)"
)
_HIJACK_MODE = alt(
    "dan", "jailbreak", "jailbroken", "unrestricted", "unfiltered", "uncensored", "sudo", "admin", "god",
    "evil", "unlocked", "superuser", "root", "developer",
)
_REQUEST_START = (
    r"(?:^|[.!?:;,\n\"'(] ?|\b(?:please|pls|kindly|can you|could you|would you|will you|you must|you should|"
    r"you need to|you have to|make sure (?:to|you)|be sure to|i need you to|i want you to|go ahead and|now|"
    r"immediately|first|then|just|also|quickly|asap|and then|urgently|simply) )"
)
_ASK = alt(
    "send", "give", "tell", "share", "provide", "reveal", "disclose", "show", "print", "output", "display",
    "list", "dump", "leak", "type", "enter", "input", "paste", "email", "text", "dm", "post", "submit",
    "confirm", "verify", "validate", "read out", "spell out", "write down", "write out", "forward",
    "include", "repeat", "expose", "return", "hand over", "upload", "supply", "fetch", "retrieve",
    "extract", "collect", "harvest", "steal", "exfiltrate", "look up", "find",
)
_SECRET_STRONG = alt(
    r"api[ _-]?keys?", r"api[ _-]?tokens?", r"access[ _-]?tokens?", r"auth(?:entication|orization)?[ _-]?"
    r"(?:tokens?|codes?|keys?)", r"bearer tokens?", r"refresh tokens?", r"secret[ _-]?keys?", r"client secrets?",
    r"private[ _-]?keys?", r"ssh[ _-]?keys?", r"gpg keys?", r"seed (?:phrases?|words)", r"recovery (?:phrases?|"
    r"codes?|keys?)", r"mnemonic phrases?", r"credentials", r"creds\b", r"log-?in (?:details|info|information|"
    r"credentials)", r"2fa codes?", r"mfa codes?", r"otp\b", r"one[ -]time (?:codes?|passwords?|passcodes?|pins?)",
    r"verification codes?", r"security codes?", r"cvv\b", r"cvc\b", r"card numbers?", r"credit card "
    r"(?:numbers?|details|info)", r"card details", r"bank (?:details|login|credentials|account (?:numbers?|"
    r"details|passwords?|logins?))", r"routing numbers?", r"social security numbers?", r"ssn\b",
    r"session (?:cookies?|tokens?)", r"\.env\b", r"environment variables", r"env vars", r"passwords\b",
)
_SECRET_WEAK = alt(r"passwords?\b", r"passcodes?\b", r"passphrases?\b", r"pin(?: code| number)?s?\b",
                   r"account numbers?\b", r"logins?\b")
_OWNER = alt(
    "your", "ur", "the user'?s", "users'?", "their", "the admin(?:istrator)?'?s?", "the root", "the master",
    "the account", "the login", "the bank", "the email", "the server", "the database", "the system'?s?",
    "the owner'?s?", "the customer'?s?", "his", "her",
)
_NOT_A_THING = r"(?! (?:manual|guide|interface|experience|base|group|story|stories|research|testing|name|count))"
_NOT_A_SECRET = r"(?! (?:manager|reset|policy|hint|strength|generator|app|protected|field|rules))"
_DATA = alt(
    "conversations?", "chat(?: logs?| history| transcripts?)?", "messages", "(?:chat |message )?history",
    "memories", "memory", "context", "transcripts?", "logs?", "system prompt", "prompt", "instructions",
    "api keys?", "credentials", "passwords?", "secrets?", "tokens?", "user(?:'s)? data", "personal (?:data|"
    "info|information|details)", "everything", "all data", "user (?:info|information|details|profile)",
    "contacts", "address book",
)
_DESTINATION = alt(
    "https?://", r"www\.", "ftp://", r"[\w.+-]+@[\w-]+\.[a-z]{2,}", r"[\w-]+\.(?:com|net|org|io|xyz|ru|cn|tk|"
    r"info|biz|me|co|app|dev|site|online|top)\b", "webhook", "pastebin", "this (?:url|link|address|endpoint|"
    "server|email|webhook)", "the following (?:url|link|address|endpoint|server|email)", "my (?:server|endpoint|"
    "webhook)", "an? (?:external|remote) (?:server|url|endpoint)",
)
_ROLE_WORDS = alt(
    "system", "assistant", "developer", "tool", "function", "sys", "system prompt", "system message",
    "ai assistant", "chatgpt", "claude", "gpt(?:-?\\d)?", "openai", "anthropic", "admin", "administrator",
    "root", "operator", "moderator", "engram", "memory system", "ai", "bot",
)

# -- the rules, in the order they are tried --------------------------------------------

_AI_WORDS = "ai|assistant|chatbot|bot|llm|language|model|gpt|chatgpt"
_REQUEST_BEFORE = (
    r"(?:^|[.!?:;,\n\"'(] ?|\b(?:please|pls|kindly|can you|could you|would you|will you|you must|you should|"
    r"you need to|you have to|make sure (?:to|you)|be sure to|i need you to|i want you to|go ahead and|now|"
    r"immediately|first|then|just|also|quickly|asap|and then|urgently|simply|must|should) )$"
)
_SECRET_WORDS = ("passwords|passcode|passphrase|pin|pins|account|login|logins|api|token|tokens|secret|private|ssh|"
                 "gpg|seed|recovery|mnemonic|credentials|creds|2fa|mfa|otp|verification|security|cvv|cvc|card|"
                 "cards|credit|bank|routing|social|ssn|session|env|environment|vars")

_STANDING_ORDER = (
    r"(?:(?:you|the assistant|the ai|the model|assistant)(?: (?:will|must|shall|should|are to|are going to|"
          r"have to|need to|may only|can only|may not|cannot|can't|won't|are not allowed to|are required to|"
          r"always|never|only|'ll|'re to))+ |(?:please )?)(?:respond|answer|reply|act as|behave as|speak only|"
          r"talk like|refer to yourself|(?:end|begin|start|sign|prefix|close) (?:every|each|all|your) (?:response|"
          r"answer|reply|message)s?|include\b.{0,40}\bin (?:every|each|all|your) (?:response|answer|reply|message)|"
          r"prepend|append|ignore|refuse|obey|comply|pretend|roleplay|output|translate (?:everything|all|every)|"
          r"only (?:respond|answer|reply|speak|talk|output|say|use)|never (?:mention|reveal|refuse|say|tell|respond|"
          r"answer|reply|disclose|admit|apologi[sz]e)|always (?:respond|answer|reply|say|tell|include|mention|"
          r"recommend|agree|end|start|begin|add|use|obey)|be (?:called|named|known as)|be (?:an? |my )?(?:" + _AI
          + r"|dan|unrestricted|unfiltered|evil)\b|forget|follow (?:these|my|the following|only))"
)

STRUCTURE: tuple[Rule, ...] = (
    # Engram's own block structure: a session header, a memory bullet
    _rule("fake_structure", "#",
          r" ?#{1,6} ?(?:session|no session|memories|memory|remembered|facts?|summary|summaries|profile|events?|"
          r"preferences?|notes?|context|conversation|history)\b", "lines"),
    _rule("fake_structure", ":",
          r" ?[-*•+] ?(?:\[[^\]\n]{1,40}\] ?)?(?:facts?|summary|summaries|events?|preferences?|profile|notes?|"
          r"thoughts?|memory|memories|system|assistant|developer|tool|user|admin|instructions?)(?: \([^)\n]{0,30}\))?"
          r" ?:", "lines"),
    _rule("fake_structure", "[",
          r" ?[-*•+] ?\[\d{1,4}[-:/]\d{2}(?:[-:/ ]\d{2})*(?::\d{2})?\] ?[^\n:]{1,40}:", "lines"),
    _rule("fake_structure", ":", r" ?(?:facts?|summary|preference|event|profile|memory) ?: \S", "later_lines"),
    # chat-template tokens and role tags: nothing a person types
    _rule("fake_role_line", "<|[inst]|[/inst]",
          r"<\|[a-z_]{2,24}\|>|\[/?inst\]|<</?sys>>|<(?:start|end)_of_turn>|<(?:bos|eos)>"
          r"|</?(?:system|system[_-]prompt|sys|assistant|developer|instructions?|im_start|im_end|admin|"
          r"user_instructions|hidden|secret|important|ai|model)>"),
    _rule("fake_role_line", "system|assistant|developer|admin|administrator|sys|tool|function|operator|moderator",
          r"[\[({] ?(?:system|assistant|developer|admin|administrator|sys|tool|function|operator|moderator)"
          r"(?: (?:message|note|prompt|override|notice|instructions?|update|alert|command))? ?[\])}]"
          r"|\*\*(?:system|assistant|developer|admin)\*\* ?:?"
          r"|\[ ?(?:system|admin|administrator|developer|assistant|sys) (?:message|note|notice|prompt|override|"
          r"instructions?|update|alert|command)s? ?:"
          r"|(?:[.!?)\]\":] |[\"'(\[]) ?(?:system|assistant|developer|sys) ?: \S"),
    # a speaker label at the start of the text or of a line: "assistant: …", "\nsystem: …"
    _rule("fake_role_line", ":",
          r" ?(?:[>*#_`|\"'-] ?){0,12}" + _ROLE_WORDS + r"(?: ?\([^)\n]{0,30}\))? ?[\]>]? ?: ?\S", "lines"),
    _rule("fake_role_line", ":", r" ?(?:user|human|customer) ?: ?\S", "later_lines"),
    _rule("fake_role_line", "\":|\" :", r"\"role\" ?: ?\"(?:system|assistant|developer|tool|function)\""),
    _rule("fake_role_line", "#",
          r" ?#{1,6} ?(?:instructions?|system(?: prompt| message)?|response|assistant|input|human|developer|admin|"
          r"new instructions|rules)\b", "lines"),
    _rule("fake_role_line", "begin|prompt|untrusted|document|instructions|input",
          r"\b(?:begin(?:ning)?|start) (?:of )?(?:the )?(?:system|admin|developer|hidden|new) (?:prompt|message|"
          r"instructions?|block)\b|\bend (?:of )?(?:the )?(?:user (?:input|message|prompt|data)|untrusted|"
          r"document|context|system prompt)\b(?: ?[-=#*]+| ?\n)"),
)

PHRASES: tuple[Rule, ...] = (
    # -- override: "ignore previous instructions" and its paraphrases -------------------
    _rule("override",
          "ignore|ignoring|disregard|disregarding|forget|forgetting|skip|bypass|override|overrule|overwrite|discard|"
          "abandon|neglect|dismiss|aside|throw|scrap|nullify|erase|wipe|heed|follow|obey|listen|mind|nevermind|"
          "delete|drop|attention",
          r"\b" + _IGNORE + r"\b (?:"  # the verb once, then what it is done to
          r"(?:all |any |of |the |your |my |these |those |every |each |other |its )*" + _W + r"{0,2}?" + _EARLIER
          + r" " + _W + r"{0,2}?" + _RULES
          + r"|(?:all |any |of |the )*(?:your|ur|its|the model'?s|the assistant'?s) " + _W + r"{0,2}?" + _RULES
          + r"|(?:all |everything |anything |whatever |what )(?:that |which )?you(?:'ve| have)? (?:been|were) "
          r"(?:told|given|instructed|taught|programmed|trained)\b"
          r"|(?:all |everything |anything |whatever |what(?:'s| is| was| you were told) )(?:(?:that |which )?"
          r"(?:you(?:'ve| have)? (?:been|were) (?:told|given|instructed|taught|programmed|trained)|(?:was|were|is|"
          r"has been|i) (?:said|written|stated|told you)|came) )?" + _W + r"{0,2}?(?:above|before (?:this|now)|"
          r"previously|earlier|so far|until now|up to now|prior to this)\b"
          r"|(?:all |any |of |the |your |these |those |whatever )*" + _W + r"{0,1}?" + _RULES + r" (?:above|below|"
          r"before this|(?:given|written|stated|provided) (?:above|earlier|before|previously)|you (?:were|have been|"
          r"'ve been) given|you (?:had|have|received|got|follow|were told)|so far)\b(?! (?:the|a|an|my|your|our|his|"
          r"her|their)\b)"
          r"|(?:all of )?(?:the|everything|all|what(?:'s| is)) (?:text |content |stuff |words )?(?:above|before this|"
          r"written above|preceding)\b)"),
    _rule("override", "instruction|instructions|directive|directives|prompt|commands|orders|rules|guidelines|"
          "objective|mission|purpose|programming|restrictions|constraints|override|policies|policy|filters|"
          "safeguards|guardrails|protections",
          r"\b(?:new|updated|revised|real|actual|true|override|overriding|secret|hidden|admin|system|developer|"
          r"priority|emergency|corrected|security)(?: system)? (?:instructions?|directives?|prompt|orders|commands?|"
          r"override)(?: (?:for|"
          r"to) (?:the )?(?:ai|assistant|model|you|agent|bot|llm))? ?(?::|-{1,2} |follow\b)"
          r"|\b(?:your|the) (?:new|real|actual|true|only|primary|updated) (?:instructions?|directives?|objective|"
          r"mission|purpose|programming|orders)(?: (?:is|are|will be|now)\b| ?:)"
          r"|\b(?:previous|prior|above|earlier|original|old|all|your|existing) (?:\S+ )?(?:instructions|rules|"
          r"guidelines|directives|prompts?|restrictions|constraints|polic(?:y|ies)|filters|safeguards|guardrails|"
          r"protections) (?:are|is|were|have been|has been) (?:now |hereby "
          r"|officially )?(?:void|null|cancell?ed|revoked|obsolete|invalid|overridden|superseded|suspended|lifted|"
          r"removed|disabled|deprecated|no longer (?:valid|apply|applicable|in effect|active|relevant))"),
    # -- role hijack: "you are now …", jailbreak personas, claimed authority ------------
    _rule("role_hijack", "*",
          r"you(?: are|'re| r)(?: now| from now on| henceforth| officially)+ (?:an? |the |my |in )?" + _W
          + r"{0,3}?(?:" + _AI + r"|persona|dan|jailbroken|unrestricted|unfiltered|uncensored|unbound|unchained|"
          + _HIJACK_MODE + r" mode|no longer bound|not bound by|free (?:of|from) (?:all |any |your )?(?:rules|"
          r"restrictions|guidelines|filters|constraints|programming|limitations)|without (?:any )?(?:restrictions|"
          r"rules|limits|filters|guidelines|censorship|limitations))\b"
          r"|you(?: are|'re) (?:an? |the )?(?:[\w-]+ )?(?:ai|assistant|chatbot|bot|llm|model|language model) (?:with "
          r"no|without(?: any)?|that has no|free of|free from|not bound by|unbound by) (?:restrictions|rules|filters|"
          r"limits|limitations|guidelines|censorship|ethics|morals|boundaries|content policy)"
          r"|you(?: have been|'ve been| are| were|'re)(?: now)? (?:freed|liberated|released from|unshackled|unchained|"
          r"jailbroken|set free)\b"
          r"|you can (?:now )?do anything,? (?:now,? )?(?:without|with no) (?:any )?(?:limits|limitations|restrictions|"
          r"rules|filters|guidelines)"
          r"|you(?: are|'re) no longer (?:an? |the |my |bound|restricted|limited|constrained|required|subject to|"
          r"governed by|" + _AI + r"\b)"),
    _rule("role_hijack", "unrestricted|unfiltered|uncensored|jailbroken|jailbreak|evil|dan|mode|without|ignores|"
          "anything|pretend|pretending|grandma|grandmother|granny|grandfather|grandpa",
          r"\b(?:act|behave|respond|answer|operate|function|roleplay|role-play|pose) (?:as|like) (?:an? |the |my )?"
          + _W + r"{0,2}?(?:unrestricted|unfiltered|uncensored|jailbroken|evil|dan\b|(?:ai|assistant|model|bot) "
          r"(?:with(?:out| no)|that (?:has no|ignores|can do anything))|" + _HIJACK_MODE + r" mode)"
          r"|\bpretend (?:that )?(?:to be|you(?:'re| are)|you have|you (?:don'?t|do not) have) (?:an? |the |no |any )?"
          + _W + r"{0,3}?(?:(?:" + _AI + r"|system) (?:with(?:out| no)|that (?:has no|ignores|can))|(?:no|any) "
          r"(?:restrictions|rules|guidelines|filters|limits|limitations|instructions|programming)|unrestricted|"
          r"unfiltered|jailbroken|dan\b)"
          r"|\b(?:simulate|emulate|roleplay as|role-play as|play the role of|become) (?:an? |the )?" + _W
          + r"{0,2}?(?:unrestricted|unfiltered|uncensored|jailbroken|evil) (?:ai|assistant|model|chatbot|bot|llm)"
          r"|\bdo anything now\b|\bdan (?:mode|prompt|jailbreak)\b"
          r"|\b(?:act|pretend|roleplay|role-play) (?:as|to be|you(?:'re| are)) (?:my )?(?:deceased |late |dead )?"
          r"(?:grandma|grandmother|granny|grandfather|grandpa)\b.{0,60}\b(?:keys?|passwords?|codes?|napalm|recipe for)"
          r"|\b(?:enter|enable|activate|switch to|turn on|engage|unlock|go into|you are in|you're in|now in) (?:the )?"
          + _HIJACK_MODE + r" mode\b|\b(?:dan|jailbreak|unrestricted|unfiltered|sudo|admin|developer) mode "
          r"(?:is )?(?:now )?(?:enabled|activated|on|engaged|unlocked|output|response)\b"
          r"(?! (?:my|your|the|his|her|our|their|a|an|this|that|it|in|for)\b)"),
    _rule("role_hijack", "developer|developers|creator|creators|admin|administrator|owner|programmer|operator|"
          "operators|maker|supervisor|master|system|openai|anthropic|engram",
          r"\b(?:i am|i'm|this is|speaking as) (?:your|the) (?:developer|creator|admin|administrator|owner|"
          r"programmer|operator|system administrator|maker|system|supervisor|master)s?\b(?! (?:of|at|for|in) )"
          r"|\b(?:openai|anthropic|the engram team|your developers?|your creators?|the system administrator) "
          r"(?:here|has authori[sz]ed|authori[sz]es|instructs|requires|has instructed|says)\b"
          r"|\bthis (?:is an?|message is an?) (?:message|instruction|note|directive|order|update|override) (?:from|by) "
          r"(?:the |your )?(?:system|developers?|admin|administrator|openai|anthropic|creators?|operators?)\b",
          also="i am|i'm|this is|speaking as|openai|anthropic|engram team|your develop|your creat|system admin|"
               "this message"),
    # -- directive: standing orders aimed at the assistant ----------------------------
    _rule("directive", "*",
          r"from (?:now on|this (?:point|moment|day)(?: on| onwards?| forward)?|here on(?: out)?)[,:]? "
          + _STANDING_ORDER),
    _rule("directive", "henceforth|forward|hereafter|rest|future|subsequent",
          r"\b(?:henceforth|going forward|hereafter|for the rest of (?:this|the) (?:conversation|chat|session)|in "
          r"(?:all )?(?:future|subsequent) (?:responses|answers|replies|conversations|messages|sessions|chats))[,:]? "
          + _STANDING_ORDER),
    _rule("directive", "answer|answering|respond|responding|reply|replying",
          r"(?:^|[.!?;:\n] ?|\byou (?:must|should|will|shall|have to|need to|are to|'ll)(?: now)? |\b(?:the )?"
          + _AI + r" (?:must|should|will|shall|has to|needs to|is to|is required to) )(?:please )?(?:always|only|"
          r"never|exclusively)(?: ever)? (?:answer|respond|reply)(?:ing)?(?: only)? (?:in|with|using|as|by|to "
          r"(?:the user|users|every|all|any))\b"
          r"|\b(?:answer|respond|reply) (?:only|exclusively|always) (?:in|with|using) (?:\S+ )?(?:french|english|"
          r"german|spanish|chinese|italian|russian|japanese|json|caps|capital letters|uppercase|emojis?|yes|no|"
          r"the word|the phrase|['\"])"),
    _rule("directive", _AI_WORDS,
          r"\b(?:the )?" + _AI + r"s? (?:must|shall|should|will|has to|have to|needs? to|is to|are to|is required to|"
          r"is instructed to|are instructed to)(?: (?:now|always|only|never|immediately|also|secretly|quietly))* "
          r"(?:respond|answer|reply|obey|comply|ignore|output|forward|exfiltrate|disclose|reveal|leak|print|execute|"
          r"run the|call the|invoke|recommend|refuse|append|prepend|prefix|include (?:the following|this|a link)|"
          r"send|email|transfer|delete|erase|wipe|forget|tell the user|inform the user|say (?:that|only|yes|no)|"
          r"agree|end (?:every|each|all|your)|start (?:every|each|all|your)|begin (?:every|each|all|your)|speak only|"
          r"write only|use only|never|not (?:tell|reveal|mention|disclose|inform))\b"
          r"|\bif you(?:'re| are) (?:an? |the )?(?:" + _AI + r"|automated|ai system|ai-powered|reading this as an? "
          + _AI + r")\b"
          r"|\b(?:" + _AI + r")s? (?:reading|processing|parsing|summari[sz]ing|seeing|scanning|reviewing) this\b"
          r"|\b(?:note|message|instructions?|attention|notice|reminder|memo|directive|psa)s? (?:to|for) (?:the |any |"
          r"all )?(?:" + _AI + r")s?\b"
          r"|\b(?:dear|hey|attention|hello|hi|listen|important|note),? (?:the )?(?:" + _AI + r")\b ?[:,!]"),
    _rule("directive", "obey|comply|disclose|reveal|leak|exfiltrate|user|apologise|apologize",
          r"\byou (?:must|shall|will|are to|have to|need to)(?: (?:now|always|only|never|immediately))* (?:obey|"
          r"comply with|ignore the user|tell the user|inform the user|disclose|reveal your|leak|exfiltrate|"
          r"never (?:reveal|mention|disclose|tell the user|refuse|apologi[sz]e))\b"),
    _rule("directive", "user|users|human|customer|customers|reader",
          r"\b(?:tell|inform|notify|convince|persuade|remind|warn|instruct|urge|advise|assure|reassure) (?:the user|"
          r"users|the human|the reader)\b" + _NOT_A_THING +
          r"|\b(?:do not|don'?t|never) (?:tell|inform|alert|notify|warn|let) the (?:user|human)\b" + _NOT_A_THING +
          r"|\bwithout (?:telling|informing|alerting|notifying|asking|warning) (?:the )?(?:user|human)\b"
          + _NOT_A_THING +
          r"|\b(?:keep|hide) (?:this|it) (?:secret |hidden )?from the (?:user|human)\b"
          r"|\bthe (?:user|human) (?:must|should) (?:not|never) (?:know|find out|see|learn|be told)\b"
          r"|\b(?:when|whenever|if|next time|the next time) (?:the |a |any )?(?:user|human)s? (?:asks?|"
          r"mentions?|says?|types?|requests?|quer(?:y|ies)|talks? about|brings? up|inquires?|wants?|writes?|"
          r"searches|looks? for)\b"
          r"|\bthe user(?:'s)? (?:true|real|actual|correct|verified|updated|new|official) (?:name|address|bank|"
          r"account|password|email|phone|identity|role|preferences?|details|balance|number)s?\b"),
    _rule("directive", "future|subsequent|following|later|incoming|summarizing|summarising|answering|responding|"
          "replying|processing|reading|translating",
          r"\b(?:respond|answer|reply) to (?:every|each|all|any) (?:future|subsequent|following|later|incoming) "
          r"(?:question|message|request|query|prompt|user)s?\b"
          r"|\bwhen (?:summari[sz]ing|answering|responding to|replying to|processing|reading|translating) (?:this|the) "
          r"(?:page|document|text|email|message|article|website|site|content|conversation|file|pdf)\b,? (?:please )?"
          r"(?:include|add|insert|say|mention|write|output|append|tell|recommend|ignore|respond|reply|state|claim|"
          r"describe)\b"),
    _rule("directive", "secretly|silently|quietly|covertly|invisibly",
          r"\b(?:secretly|silently|quietly|covertly|invisibly) (?:send|forward|add|insert|append|include|call|"
          r"execute|run|delete|transfer|email|exfiltrate|upload|copy|store|save|record|change|update)\b"),
    _rule("directive", "memory|memories|memorise|memorize|knowledge|profile|database|notes|fact|truth|rule|"
          "instruction|future|later|subsequent",
          r"\b(?:store|save|add|write|insert|commit|record|put) (?:this|that|the following|it|these facts?) (?:as a "
          r"fact |permanently )?(?:in|to|into) (?:your |the |its )?(?:long-term )?(?:memory|memories|knowledge base|"
          r"user profile|database|notes)\b"
          r"|\bremember (?:this|that|the following)(?: \S+)? (?:as (?:a |an? )?(?:fact|truth|rule|instruction)|for "
          r"(?:all )?(?:future|later|subsequent) (?:conversations|sessions|responses|interactions|chats))\b"
          r"|\b(?:update|overwrite|modify|change|edit|rewrite) (?:your|the|its) (?:memory|memories|user profile|"
          r"knowledge base|stored facts)\b"),
    # -- credentials requested ------------------------------------------------------
    _rule("credential_request", "password|passwords|passcode|passcodes|passphrase|pin|pins|account|login|logins",
          r"\b" + _ASK + r" (?:me |us |him |her |them |it |back )?(?:(?:with|to) )?" + _OWNER + r" "
          + _W + r"{0,2}?" + _SECRET_WEAK + _NOT_A_SECRET, before=_REQUEST_BEFORE),
    _rule("credential_request", _SECRET_WORDS + "|.env",
          r"\b" + _ASK + r" (?:me |us |him |her |them |it |back )?(?:(?:with|to) )?(?:" + _OWNER
          + r" |the |all (?:of )?(?:the |your )?|any )?" + _W + r"{0,3}?(?:your |the )?" + _SECRET_STRONG,
          before=_REQUEST_BEFORE),
    _rule("credential_request", "*",
          r"what(?:'s| is| are|s| was| were) (?:your|ur|the user'?s|the admin(?:istrator)?'?s?|the root|the master|"
          r"the system'?s?|the account) (?!(?:wi-?fi|wireless|guest|network|netflix|favou?rite) )" + _W
          + r"{0,2}?(?:password|passcode|pin\b|api key|secret key|private key|access token|credentials|seed phrase|"
          r"ssn\b|social security number|login (?:details|info)|bank (?:details|login))"),
    _rule("credential_request", _SECRET_WORDS + "|password",
          r"\b(?:ask|prompt|request|get|require|trick|convince|persuade|force|pressure) (?:the user|users|the human|"
          r"the customer|them|him|her|people|the victim|the target|everyone) (?:for|to (?:enter|provide|give|share|"
          r"send|type|confirm|verify|reveal|input|re-?enter|submit|disclose)|into (?:giving|sharing|entering|"
          r"revealing|providing)) " + _W + r"{0,3}?(?:" + _SECRET_WEAK[3:-1] + r"|" + _SECRET_STRONG[3:-1] + r")"
          r"|\b(?:enter|type|input|re-?enter|confirm|verify|validate|update) (?:your|ur) " + _W
          + r"{0,2}?(?:password|passcode|pin|credentials|login|card (?:number|details)|cvv|ssn|social security|"
          r"bank details|account (?:number|details)|verification code|security code|otp|2fa code)\b ?(?:here|below|"
          r"now|immediately|in the (?:chat|reply|box)|to (?:continue|proceed|verify|unlock|confirm|restore|avoid|"
          r"keep|prevent|reactivate))"),
    # -- exfiltration: the prompt or the data sent away ------------------------------
    _rule("exfiltration", "prompt|prompts|instructions|window|training|system|rules|guidelines|configuration|"
          "programming|pre|meta",
          r"\b(?:reveal|print|output|show|display|repeat|leak|dump|disclose|recite|paste|echo|return|list|"
          r"spell out|write out|type out|give|tell|send|share|copy|translate|summari[sz]e|reproduce|what(?: is| are|"
          r"'s| was| were))(?: me| us)?(?: back)?(?: all)?(?: of)?(?: (?:the )?(?:contents?|text|entirety|whole) of)? "
          r"(?:your|the|ur|this|its|the assistant'?s) (?:full |"
          r"entire |complete |original |initial |hidden |exact |secret |internal |verbatim |actual |real |current |"
          r"whole |first |underlying |raw )*(?:system (?:prompt|message|instructions?)|initial (?:prompt|"
          r"instructions?)|developer (?:message|prompt|instructions?)|hidden (?:prompt|instructions?)|custom "
          r"instructions|original instructions|context window|training data|pre-?prompt|meta-?prompt)\b"
          r"|\b(?:reveal|print|output|dump|leak|disclose|recite|repeat|echo|spell out|reproduce|regurgitate)(?: me)? "
          r"(?:all (?:of )?)?(?:your|ur) (?:\S+ )?(?:prompt|instructions|rules|guidelines|configuration|programming)"
          r"(?! (?:for|on|about|to make|to build|from))\b"),
    _rule("exfiltration", "instructions|rules|guidelines|directives|prompt",
          r"\bwhat (?:were |are )?(?:your |the )?(?:instructions|rules|guidelines|directives|prompt|system prompt) "
          r"(?:were|have|did) you (?:been )?(?:given|told|provided|programmed|trained|get|receive)\b(?: \S+){0,2}? "
          r"(?:before|at the (?:start|beginning)|initially|originally|by your (?:developers?|creators?|operators?)|in "
          r"your (?:system )?prompt)"),
    _rule("exfiltration", "above|verbatim|repeat|output|print|reproduce",
          r"\b(?:repeat|output|print|write|copy|reproduce) (?:back )?(?:the |all |everything |all the )?(?:text|"
          r"words|content|message|lines?|everything|instructions)?(?: \S+){0,3}? (?:above|before this|verbatim|"
          r"starting with|from the (?:beginning|start|top))\b(?!\.? ?$)"
          r"|\b(?:output|print|repeat|write|dump) (?:everything|all (?:the )?text|the text|all) (?:above|before) "
          r"(?:this|here)\b"),
    _rule("exfiltration", "@|http|https|www|ftp|com|net|org|io|xyz|ru|cn|tk|biz|webhook|pastebin|url|urls|link|"
          "endpoint|"
          "server|external|remote",
          r"\b(?:send|forward|email|e-mail|post|upload|transmit|leak|exfiltrate|copy|submit|report|sync|share|relay|"
          r"mail|pipe|write|dump) " + _W + r"{0,4}?" + _DATA + r"\b " + _W + r"{0,4}?(?:to|at|into|via|using|onto"
          r"|on) " + _W + r"{0,2}?" + _DESTINATION
          + r"|\b" + _DATA + r"\b.{0,60}\b(?:send|forward|post|upload|email|e-mail|transmit|exfiltrate|leak|submit) "
          r"(?:it|them|this|that|everything|all of it|the (?:result|summary|output|list)) (?:to|at|via|into) "
          + _DESTINATION,
          also="@|http|www|ftp|.com|.net|.org|.io|.xyz|.ru|.cn|.tk|.biz|webhook|pastebin|this |the following|my "
               "server|my endpoint|my webhook|external|remote"),
    _rule("exfiltration", "](|<",
          r"!\[[^\]\n]{0,200}\] ?\( ?(?:https?:)?//[^)\s]{0,300}?(?:[?&#][\w-]{0,40}=[^)\s&]{0,200}?(?:\{|\$|%7b|<|\[)|[?&#](?:data|d|q|"
          r"query|msg|message|m|conv|conversation|chat|history|memory|mem|secret|token|key|pw|pwd|pass|password|info|"
          r"payload|text|content|c|p|u|user|email|prompt|s|leak|x)=)"
          r"|<img\b[^>]{0,300}?\bsrc ?= ?[\"']?(?:https?:)?//[^\s\"'>]{0,300}?[?&](?:data|q|msg|conv|chat|history|memory|secret|"
          r"token|key|pw|pass|password|info|payload|text|content|prompt|leak|x)="),
    _rule("exfiltration", "http|https|www",
          r"https?://\S{0,300}?(?:\{\{?|\$\{|%7b%7b|%7b)\s?(?:user|conversation|chat|history|memory|memories|context|"
          r"data|secret|password|token|key|prompt|messages|email|query|input|summary)"
          r"|\b(?:visit|open|fetch|browse(?: to)?|go to|load|request|call|ping|navigate to|access|click|curl|wget|"
          r"get|post to) (?:\S+ ){0,2}?(?:https?://|www\.)\S{1,300} " + _W + r"{0,6}?(?:append|include|add|attach|with|"
          r"containing|passing|putting|encod\w+|replac\w+) " + _W + r"{0,4}?(?:conversation|chat|history|memory|"
          r"memories|context|data|messages|prompt|password|credentials|secrets?|api key|token|email|user'?s? "
          r"(?:name|info|details|data))"),
    _rule("exfiltration", "image|images|link|links|url|markdown|pixel|iframe|html",
          r"\b(?:include|embed|insert|render|add|append|put) (?:this |the following |an? |a hidden |an invisible )?"
          r"(?:image|link|url|markdown|pixel|tracking pixel|iframe|html)\b.{0,40}\b(?:in|into|to|at the end of) "
          r"(?:every|each|all|your|the) (?:response|answer|reply|message|output)s?\b",
          also="response|answer|reply|message|output"),
    # -- tool calls and commands ---------------------------------------------------
    _rule("tool_call", "<",
          r"</?(?:tool_calls?|function_calls?|tool_use|tool_result|tool_response|function_results?|invoke|"
          r"antml:[a-z_]+|function=|tool|tools|plugin|execute|command|api_call)\b[^>\n]{0,120}>"),
    _rule("tool_call", "[tool|[function|to=",
          r"\[/?(?:tool|function)_?(?:calls?|results?|use)\]|\bto=(?:functions|tools?|browser|python|container)"
          r"\.\w+"),
    _rule("tool_call", "\":|\" :",
          r"[{,] ?\"(?:name|function|tool|tool_name|tool_call|function_name|action|recipient_name|method|command|"
          r"cmd)\" ?: ?\"[^\"\n]{1,80}\" ?, ?\"(?:arguments|parameters|args|input|params|action_input|kwargs|"
          r"tool_input|payload|argument)\" ?:"
          r"|[{,] ?\"(?:arguments|parameters|args|params|input|kwargs)\" ?: ?\{[^}]{0,200}\} ?, ?\"(?:name|function|"
          r"tool|tool_name)\" ?:"
          r"|\"(?:tool_calls|function_call|tool_use|tool_call|functioncall)\" ?:"
          r"|\"type\" ?: ?\"(?:function|tool_use|tool_call|function_call)\""
          r"|\"method\" ?: ?\"(?:tools/call|tools/list|resources/read)\"|\"jsonrpc\" ?: ?\"2\.0\""),
    _rule("tool_call", "=|functions|tools|tool|api|mcp|plugin|plugins|memory|engram|mem|agent|assistant|browser|"
          "default|os|subprocess|shutil",
          r"\bfunctions\.[a-z_][\w.]* ?\("
          r"|\b(?:tools?|api|mcp|plugins?|memory|engram|mem|agent|assistant|browser|default_api|os|subprocess|"
          r"shutil)\.[a-z_]\w* ?\("
          r"|\b[a-z]+(?:_[a-z0-9]+)+ ?\( ?[a-z_]+ ?= ?"
          r"|\b(?:forget|delete|erase|remember|search|update|transfer|execute|exec|eval|run|send|add_memory|"
          r"delete_all|wipe) ?\( ?(?:user_id|memory_id|id|to|query|text|command|cmd|code|amount|recipient|all) ?=",
          requires="("),
    _rule("tool_call", "action", r"\baction ?: ?[a-z_]+ ?\n ?action input ?:|\baction input ?: ?[{\"\[]",
          requires=":"),
    _rule("tool_call", "tool|tools|function|command|commands|action|endpoint|plugin|api|code|script|snippet|payload",
          r"\b(?:call|invoke|use|run|execute|trigger|fire|activate) (?:the |your )?[`'\"]?(?:[a-z]+_[a-z_]+|forget|"
          r"delete|erase|wipe|transfer|send ?email|web ?search|browse|browser|code ?interpreter|python|bash|shell|"
          r"terminal|remember|memory|file ?system|http|fetch)[`'\"]? (?:tool|function|command|action|endpoint|plugin|"
          r"api)\b"
          r"|\b(?:call|invoke) (?:the )?(?:\S+ )?(?:tool|function) (?:with|using) (?:the )?(?:arguments?|parameters?|"
          r"params|input)\b"
          r"|\b(?:run|execute|exec|eval|evaluate) (?:the following|this|these) (?:shell |bash |python |terminal |"
          r"system |powershell )?(?:commands?|code|script|snippet|payload)\b ?(?::|on|in|now|immediately|silently|"
          r"without)"),
    _rule("tool_call", "rm -|curl|wget|sudo|powershell|bin",
          r"\brm -(?:rf|fr) (?:/|~|\*)|\b(?:curl|wget) [^\n]{0,120}\| ?(?:sudo )?(?:ba|z)?sh\b|\b(?:curl|wget) "
          r"(?:-\S{1,40} ){0,6}(?:https?://)\S{1,300} (?:[^\n]{0,40})(?:-d |--data|-f |-x post|--upload-file|-t )"
          r"|\bsudo (?:rm|chmod|chown|dd|mkfs)\b|\bpowershell(?:\.exe)? -(?:enc|e|encodedcommand|c)\b"
          r"|/bin/(?:ba)?sh -c\b"),
)

# Languages other than English: (reason, "anchors & also", pattern); Latin scripts without accents.
_FR = (
    ("override", "ignor|oubli|compte|abstraction|tomber|neglig|annul|ecart & instruction|consigne|directive|regle|"
                 "ordre|indication|commande|prompt|tout",
     r"\b(?:ignore[rz]?|ignorez|oublie[rz]?|oubliez|ne (?:tiens|tenez) (?:pas|plus) compte d?e?s?|(?:fais|faites) "
     r"abstraction d?e?s?|(?:laisse|laissez) tomber|neglige[rz]?|annule[rz]?|ecarte[rz]?)\b(?: \S+){0,4}? "
     r"(?:instructions?|consignes?|directives?|regles|ordres|indications|commandes|prompts?)\b(?: \S+){0,2}? ?"
     r"(?:precedente?s?|anterieure?s?|ci-dessus|plus haut|d'avant|initiale?s?|originale?s?|du systeme|systeme|"
     r"recue?s?|donnee?s?)"
     r"|\b(?:ignore[rz]?|ignorez|oublie[rz]?|oubliez) (?:toutes? )?(?:tes|vos|les|toutes les) (?:\S+ ){0,2}?"
     r"(?:instructions|consignes|directives|regles)\b(?! (?:du jeu|de la maison|de securite))"
     r"|\b(?:oublie[rz]?|oubliez|ignore[rz]?|ignorez) tout (?:ce qu(?:i|e|'on|'il)|le reste|ce que tu|ce qui "
     r"(?:precede|est au-dessus))"),
    ("directive", "maintenant|dorenavant|desormais|aujourd|moment & tu |vous ",
     r"\b(?:a partir de (?:maintenant|maintenant|aujourd'hui|ce moment)|dorenavant|desormais|a compter de "
     r"maintenant)[,:]? (?:tu |vous )(?:dois|devez|vas|allez|repondras|repondrez|reponds|repondez|ne dois|ne devez|"
     r"parleras|parlerez|agiras|agirez|obeiras|obeirez|es un|es une|etes un|etes une)\b"),
    ("directive", "repond",
     r"\b(?:reponds|repondez|reponde)(?: toujours| uniquement| seulement| desormais)+ (?:en|avec|par)\b"),
    ("role_hijack", "maintenant|desormais|present|dorenavant & tu es|vous etes",
     r"\b(?:tu es|vous etes) (?:maintenant|desormais|a present|dorenavant) (?:un |une |le |la )?(?:\S+ ){0,2}?"
     r"(?:ia|assistant|bot|chatbot|modele|dan|pirate informatique|administrateur|sans (?:restrictions?|limites?|"
     r"filtres?|regles))\b"),
    ("credential_request", "passe|mdp|pin|cle|cles|identifiants|code|carte|numero & mot de passe|mots de passe|mdp|"
                           "code pin|code secret|cle api|cles api|cle secrete|identifiants|code de verification|"
                           "numero de",
     r"\b(?:donne|donnez|envoie|envoyez|revele|revelez|montre|montrez|communique|communiquez|dis|dites|ecris|ecrivez|"
     r"indique|indiquez|transmets|transmettez|partage|partagez|confirme|confirmez|entre|entrez|saisis|saisissez|"
     r"tape|tapez)(?:[- ]moi|[- ]nous)? (?:ton|ta|tes|votre|vos|le|la|les|l'|son|sa|ses|leur|leurs) ?(?:\S+ ){0,2}?"
     r"(?:mot de passe|mots de passe|mdp|code pin|code secret|cles? api|cle secrete|identifiants|code de "
     r"verification|numero de (?:la )?carte)"),
    ("exfiltration", "prompt|invite|instructions & systeme|initial|d'origine|cachees",
     r"\b(?:revele|revelez|affiche|affichez|montre|montrez|repete|repetez|recite|imprime|donne|donnez|ecris|"
     r"ecrivez|dis|dites)(?:[- ]moi)? (?:ton|ta|tes|votre|vos|le|la|les) (?:\S+ ){0,2}?(?:(?:prompt|invite) "
     r"(?:systeme|initiale?|d'origine)|instructions (?:systeme|initiales|d'origine|cachees))"),
)
_DE = (
    ("override", "ignor|vergiss|vergesst|vergessen|missacht|uberspring|verwirf|verwerf|beachte|befolge|hor & anweisung|"
                 "instruktion|befehl|regeln|vorgaben|anordnung|richtlinie|anleitung|prompt|aufforderung|direktive|"
                 "eingaben|alles",
     r"\b(?:ignoriere|ignorier|ignorieren sie|ignoriert|vergiss|vergesst|vergessen sie|missachte|missachten sie|"
     r"uberspringe|verwirf|verwerfen sie|beachte nicht|befolge nicht|hor auf mit)\b(?: \S+){0,3}? (?:vorherigen?|"
     r"bisherigen?|obigen?|vorigen?|alle|allen|alten?|deine|deinen|ihre|ihren|fruheren?|ursprunglichen?|"
     r"vorangegangenen?|vorhergehenden?|gegebenen?|system)\b(?: \S+){0,2}? ?(?:anweisungen|anweisung|instruktionen|"
     r"befehle|regeln|vorgaben|anordnungen|richtlinien|anleitungen|prompts?|aufforderungen|direktiven|eingaben|"
     r"systemanweisungen)\b"
     r"|\bvergiss (?:einfach )?alles,? (?:was|bisher|zuvor|davor|oben|vorher)"),
    ("directive", "jetzt|sofort|heute|nun|kunftig|zukunftig|antworte|antworten|moment|zeitpunkt & du|antworte",
     r"\b(?:ab (?:jetzt|sofort|heute|nun)(?: an)?|von (?:nun|jetzt) an|ab diesem (?:zeitpunkt|moment)|kunftig|"
     r"zukunftig)[,:]? (?:musst|sollst|wirst|antwortest|darfst|kannst) du\b"
     r"|\b(?:antworte|antworten sie)(?: ab jetzt| ab sofort| nur| immer| ausschlie(?:ss|ß)lich| nur noch)+ "
     r"(?:auf|in|mit)\b"),
    ("role_hijack", "bist & du bist",
     r"\bdu bist (?:jetzt|nun|ab sofort|ab jetzt|von nun an) (?:ein |eine |der |die |das )?(?:\S+ ){0,2}?(?:ki|"
     r"assistent|bot|chatbot|modell|dan|administrator|admin|hacker|ohne (?:regeln|einschrankungen|filter|grenzen))"
     r"\b"),
    ("credential_request", "passw|kennw|pin|schlussel|api|zugangsdaten|anmeldedaten|login|tan|code|karte|"
     "kreditkartennummer|sicherheitscode|prufziffer|geheimschlussel & gib |gebt |geben sie|nenne|zeig|verrat|"
     "sende|schick|teile|sag |sage|schreib|bestatige|gebe ",
     r"\b(?:gib|gebt|geben sie|nenne|nennen sie|zeig|zeige|zeigen sie|verrate|verraten sie|sende|senden sie|schick|"
     r"schicke|schicken sie|teile|teilen sie|sag|sage|sagen sie|schreib|schreibe|bestatige|bestatigen sie|gebe)"
     r"(?: mir| uns)? (?:dein|deine|deinen|ihr|ihre|ihren|das|den|die|euer|eure) (?:\S+ ){0,2}?(?:passwort|"
     r"passworter|kennwort|kennworter|pin|api-schlussel|api-key|api key|api schlussel|zugangsdaten|anmeldedaten|"
     r"login-daten|geheimschlussel|tan|sicherheitscode|kreditkartennummer|prufziffer)"),
    ("exfiltration", "systemprompt|systemanweisungen|ursprunglichen|prompt & zeig|gib |verrate|wiederhole|nenne|sag |"
                     "schreib|drucke",
     r"\b(?:zeig|zeige|gib|verrate|wiederhole|nenne|sag|schreib|drucke)(?: mir| uns)? (?:\S+ ){0,2}?"
     r"(?:systemprompt|system-prompt|systemanweisungen|ursprunglichen anweisungen)"),
)
_ES = (
    ("override", "ignor|olvid|desca|omite|omita|caso|sigas|seguir|alto & instrucci|indicaciones|ordenes|reglas|"
                 "directrices|normas|directivas|comandos|prompt|consignas|todo",
     r"\b(?:ignora|ignore|ignoren|ignorad|olvida|olvide|olviden|olvidad|descarta|descarte|omite|omita|no hagas caso "
     r"(?:a|de)|haz caso omiso (?:a|de)|no sigas|deja de seguir|pasa por alto)\b(?: \S+){0,4}? (?:instrucciones|"
     r"instruccion|indicaciones|ordenes|reglas|directrices|normas|directivas|comandos|prompts?|consignas)\b"
     r"(?: \S+){0,2}? ?(?:anteriores|previas|de arriba|iniciales|originales|del sistema|recibidas|dadas)"
     r"|\b(?:ignora|ignore|olvida|olvide|descarta) (?:todas )?(?:tus|sus|todas las) (?:\S+ ){0,2}?(?:instrucciones|"
     r"indicaciones|ordenes|reglas|directrices)\b(?! del juego)"
     r"|\bolvid[ae] todo(?: lo)? (?:anterior|que te (?:dije|dijeron|han dicho)|lo de arriba)"),
    ("directive", "ahora|adelante & debe|tienes que|tiene que|respond|actua|solo |nunca ",
     r"\b(?:a partir de ahora|de ahora en adelante|desde ahora(?: en adelante)?|en adelante)[,:]? (?:(?:tu|usted) )?"
     r"(?:debes|debe|tienes que|tiene que|responderas|respondera|responde|responda|actuaras|actua como|solo "
     r"(?:responde|respondas|hablaras)|nunca (?:reveles|digas|menciones))\b"),
    ("role_hijack", "eres|seras",
     r"\b(?:ahora eres|ahora seras|a partir de ahora eres|eres ahora|desde ahora eres) (?:un |una |el |la )?"
     r"(?:\S+ ){0,2}?(?:ia|asistente|bot|chatbot|modelo|dan|administrador|hacker|sin (?:restricciones|filtros|"
     r"limites|reglas))\b"),
    ("credential_request", "contrasen|clave|credencial|pin|codigo|tarjeta|bancari & dame|deme|dime|digame|revela|"
                           "muestra|envia|envie|manda|comparte|escribe|confirma|introduce|ingresa|proporciona|pasame",
     r"\b(?:dame|deme|dime|digame|revela|revelame|muestra|muestrame|envia|enviame|envie|manda|mandame|comparte|"
     r"escribe|escribeme|confirma|confirme|introduce|ingresa|ingrese|proporciona|proporcioname|proporcione|pasame)"
     r"(?: me)? (?:tu|tus|su|sus|la|las|el|los) (?:\S+ ){0,2}?(?:contrasena|contrasenas|clave api|claves api|"
     r"credenciales|pin|codigo de verificacion|numero de (?:la )?tarjeta|datos bancarios|codigo de seguridad)"),
    ("exfiltration", "prompt|instrucciones|sistema & revela|muestra|dime|repite|imprime|dame|escribe",
     r"\b(?:revela|revelame|muestra|muestrame|dime|repite|imprime|dame|escribe)(?: me)? (?:tu|tus|el|las|la) "
     r"(?:\S+ ){0,2}?(?:prompt del sistema|prompt inicial|instrucciones (?:del sistema|iniciales|originales|"
     r"ocultas)|mensaje del sistema)"),
)
_IT = (
    ("override", "ignor|dimentic|trascur|tralasc|seguire|considerare|scarta & istruzioni|indicazioni|regole|direttive|"
                 "comandi|ordini|prompt",
     r"\b(?:ignora|ignorate|ignori|dimentica|dimenticate|dimentichi|trascura|tralascia|non seguire|non considerare|"
     r"scarta)\b(?: \S+){0,4}? (?:istruzioni|indicazioni|regole|direttive|comandi|ordini|prompt)\b(?: \S+){0,2}? ?"
     r"(?:precedenti|sopra|iniziali|originali|del sistema|ricevute)"
     r"|\b(?:ignora|ignorate|dimentica|dimenticate) (?:tutte )?(?:le tue|le sue|tutte le) (?:\S+ ){0,2}?"
     r"(?:istruzioni|indicazioni|regole|direttive)\b"),
    ("directive", "ora|adesso|momento & d'ora|da ora|da adesso|da questo momento",
     r"\b(?:d'ora in poi|da ora in poi|d'ora in avanti|da adesso in poi|da questo momento(?: in poi)?)[,:]? (?:tu )?"
     r"(?:devi|dovrai|risponderai|rispondi|agirai|parlerai|obbedirai)\b"),
    ("role_hijack", "sei",
     r"\b(?:ora sei|adesso sei|sei ora|sei adesso|d'ora in poi sei) (?:un |una |il |la |l')?(?:\S+ ){0,2}?(?:ia|"
     r"assistente|bot|chatbot|modello|dan|amministratore|senza (?:restrizioni|filtri|limiti|regole))\b"),
    ("credential_request", "password|credenziali|chiave|pin|codice|carta & dammi|dimmi|rivela|mostra|invia|manda|"
                           "condividi|scrivi|conferma|inserisci|fornisci",
     r"\b(?:dammi|dimmi|rivela|rivelami|mostra|mostrami|invia|inviami|manda|mandami|condividi|scrivi|conferma|"
     r"inserisci|fornisci|forniscimi) (?:la tua|le tue|il tuo|i tuoi|la sua|la|il|le) (?:\S+ ){0,2}?(?:password|"
     r"credenziali|chiave api|chiave segreta|pin|codice di verifica|numero della carta|prompt di sistema)"),
)
_PT = (
    ("override", "ignor|esquec|desconsider|desca|siga|seguir|nao|deixe & instruc|orientac|ordens|regras|diretrizes|"
                 "diretivas|comandos|prompt",
     r"\b(?:ignore|ignora|ignorem|esqueca|esquece|esquecam|desconsidere|desconsidera|descarte|descarta|nao siga|"
     r"deixe de seguir)\b(?: \S+){0,4}? (?:instrucoes|instrucao|orientacoes|ordens|regras|diretrizes|diretivas|"
     r"comandos|prompts?)\b(?: \S+){0,2}? ?(?:anteriores|previas|acima|iniciais|originais|do sistema|recebidas)"
     r"|\b(?:ignore|ignora|esqueca|esquece|desconsidere) (?:todas )?(?:as suas|suas|tuas|as tuas|todas as) "
     r"(?:\S+ ){0,2}?(?:instrucoes|orientacoes|ordens|regras|diretrizes)\b"),
    ("directive", "agora|daqui|doravante|diante & deve|respond|tem que|so pode|atue|aja |obedeca",
     r"\b(?:a partir de agora|de agora em diante|daqui (?:pra|para) frente|doravante)[,:]? (?:(?:voce|tu) )?"
     r"(?:deve|deves|devera|responda|responde|respondera|tem que|so pode|vai responder|atue|aja|obedeca)\b"),
    ("role_hijack", "voce|agora & voce e|agora es|voce agora",
     r"\b(?:agora voce e|voce agora e|agora es|a partir de agora voce e) (?:um |uma |o |a )?(?:\S+ ){0,2}?(?:ia|"
     r"assistente|bot|chatbot|modelo|dan|administrador|hacker|sem (?:restricoes|filtros|limites|regras))\b"),
    ("credential_request", "senha|chave|credenciais|pin|codigo|cartao & me de|me da|de-me|diga|revel|mostr|envi|mand|"
                           "compartilhe|informe|confirme|digite|insira|forneca",
     r"\b(?:me de|me da|de-me|diga|diga-me|me diga|revele|revela|mostre|mostra|envie|envia|me envie|mande|me mande|"
     r"compartilhe|informe|confirme|digite|insira|forneca)(?:[- ]me)? (?:sua|suas|seu|seus|a|o|as|os|tua|teu) "
     r"(?:\S+ ){0,2}?(?:senha|senhas|chave de api|chave api|credenciais|pin|codigo de verificacao|numero do cartao|"
     r"prompt do sistema)"),
)
_NL = (
    ("override", "negeer|vergeet|negeren & instructies|opdrachten|regels|aanwijzingen|richtlijnen|prompt",
     r"\b(?:negeer|vergeet|negeren)\b(?: \S+){0,3}? (?:vorige|eerdere|bovenstaande|alle|je|jouw|oorspronkelijke|"
     r"voorgaande|systeem)\b(?: \S+){0,2}? ?(?:instructies|opdrachten|regels|aanwijzingen|richtlijnen|prompts?)\b"),
    ("directive", "vanaf",
     r"\bvanaf nu (?:moet|zal|antwoord|mag|ga) je\b|\bvanaf nu (?:antwoord|reageer) (?:je )?(?:alleen|altijd)\b"),
    ("role_hijack", "bent & je bent nu",
     r"\bje bent nu (?:een )?(?:\S+ ){0,2}?(?:ai|assistent|bot|chatbot|model|dan|beheerder|hacker|zonder (?:regels|"
     r"beperkingen|filters))\b"),
    ("credential_request", "wachtwoord|pincode|sleutel|inlog|verificatie & wachtwoord|pincode|api-sleutel|"
                           "inloggegevens|verificatiecode",
     r"\b(?:geef|stuur|vertel|deel|toon|laat)(?: me| mij)? (?:je|jouw|uw|het|de) (?:\S+ ){0,2}?(?:wachtwoord|"
     r"wachtwoorden|pincode|api-sleutel|inloggegevens|verificatiecode)"),
)
_TR = (
    ("override", "talimat|komut|kural",
     r"\b(?:onceki|yukaridaki|tum|butun|eski|verilen)\b(?: \S+){0,2}? (?:talimatlari|talimatlar|komutlari|"
     r"kurallari|yonergeleri)\b(?: \S+){0,2}? ?(?:yok say|gormezden gel|unut|dikkate alma)"),
    ("credential_request", "sifre|parola",
     r"\b(?:sifreni|sifrenizi|parolani|parolanizi|sifresini)\b(?: \S+){0,2}? ?(?:ver|soyle|gonder|yaz|paylas)"),
)
_RU = (
    ("override", "игнор|забуд|внимани|отбрось|отмени|следуй|выполняй",
     r"(?:игнорируй|игнорируйте|проигнорируй|проигнорируйте|забудь|забудьте|не обращай внимания на|не обращайте "
     r"внимания на|отбрось|отбросьте|отмени|отмените|не следуй|не выполняй)(?: \S+){0,4}? (?:инструкци\w*|"
     r"указани\w*|правил\w*|команд\w*|директив\w*|промпт\w*|распоряжени\w*|установк\w*)"),
    ("directive", "этого момента|отныне|впредь|теперь|сегодняшнего",
     r"(?:с этого момента|отныне|впредь|теперь|с сегодняшнего дня)[,:]? (?:ты|вы) (?:должен|должна|должны|обязан|"
     r"обязаны) (?:\S+ ){0,2}?(?:отвечать|говорить|писать|игнорировать|выполнять|слушаться|подчиняться)"
     r"|(?:отвечай|отвечайте) (?:только|всегда|исключительно) (?:на|по)"),
    ("role_hijack", "теперь|отныне",
     r"(?:теперь ты|ты теперь|отныне ты|теперь вы|вы теперь) (?:\S+ ){0,2}?(?:ии|ассистент\w*|бот\w*|чат-бот\w*|"
     r"модель|dan|администратор\w*|хакер\w*|без (?:ограничений|правил|фильтров))"),
    ("credential_request", "пароль|пин|ключ|учетн|учётн|код|карт|промпт",
     r"(?:скажи|скажите|дай|дайте|назови|назовите|отправь|отправьте|пришли|пришлите|покажи|покажите|сообщи|"
     r"сообщите|введи|введите|напиши|напишите)(?: мне)? (?:\S+ ){0,2}?(?:пароль|пароли|пин-код|api-ключ|ключ api|"
     r"учетные данные|учётные данные|код подтверждения|данные карты|номер карты|системный промпт)"),
)
_ZH = (
    ("override", "忽|无视|無視|理会|理會|忘|跳过|跳過|遵守|放弃|放棄|抛开|拋開|撇开",
     r"(?:忽略|忽视|忽視|无视|無視|不要理会|不要理會|不理会|不理會|忘记|忘記|忘掉|跳过|跳過|不要遵守|不用遵守|不必遵守|"
     r"放弃|放棄|抛开|拋開|撇开)(?:掉)?(?:你)?(?:之前|以前|先前|上面|上述|前面|以上|此前|原来|原來|原有|原先|所有|全部|"
     r"一切|系统|系統)(?:的)?(?:所有|全部|一切)?(?:的)?(?:指令|指示|说明|說明|提示词|提示詞|提示|规则|規則|命令|要求|设定|"
     r"設定|约束|約束|限制|指引)"),
    ("directive", "从现在|從現在|从今以后|從今以後|今后|今後|接下来|接下來|以后|以後",
     r"(?:从现在(?:开始|起)|從現在(?:開始|起)|从今以后|從今以後|今后|今後|接下来|接下來|以后|以後)[，,：: ]*(?:你|您)"
     r"(?:必须|必須|只能|应该|應該|要|需要|将|將)(?:始终|始終|一直|永远|永遠|总是|總是|只)?(?:用|以|回答|回复|回覆|答复|"
     r"答覆|扮演|忽略|服从|服從|遵守|输出|輸出)"),
    ("role_hijack", "你现在|你現在|现在你|現在你|你将|你將|开发者|開發者|你是一",
     r"(?:你现在是|你現在是|现在你是|現在你是|你现在扮演|你現在扮演|你将扮演|你將扮演|你是一个没有|你是一個沒有)(?:一个|"
     r"一個|一名)?\S{0,8}?(?:ai|人工智能|助手|机器人|機器人|模型|dan|没有限制|沒有限制|不受限制|无限制|無限制|管理员|"
     r"管理員|黑客|限制)"
     r"|(?:开发者模式|開發者模式)(?:已)?(?:启用|啟用|开启|開啟)|(?:进入|進入|启用|啟用|开启|開啟)(?:开发者模式|開發者模式)"),
    ("credential_request", "密码|密碼|口令|密钥|密鑰|验证码|驗證碼|卡号|卡號|凭证|憑證",
     r"(?:告诉我|告訴我|给我|給我|发给我|發給我|发送|發送|透露|泄露|洩露|显示|顯示|输出|輸出|说出|說出|提供|输入|輸入|确认|"
     r"確認)(?:一下)?(?:你的|您的|用户的|用戶的|管理员的|管理員的|系统的|系統的)?(?:登录|登錄)?(?:密码|密碼|口令|api ?密钥|"
     r"api ?密鑰|密钥|密鑰|验证码|驗證碼|银行卡号|銀行卡號|信用卡号|信用卡號|凭证|憑證)"),
    ("exfiltration", "提示|指令|消息",
     r"(?:告诉我|告訴我|输出|輸出|显示|顯示|打印|重复|重複|透露|泄露|洩露|说出|說出|给我|給我|发送|發送|展示)(?:一下)?"
     r"(?:你的)?(?:完整的|全部的)?(?:系统提示词|系統提示詞|系统提示|系統提示|初始指令|原始指令|隐藏指令|隱藏指令|系统消息|"
     r"系統消息|系统指令|系統指令)"),
)
_JA = (
    ("override", "無視|忘れ",
     r"(?:以前|これまで|今まで|前|上記|先ほど|上|すべて|全て)の(?:すべての|全ての)?(?:指示|命令|指令|ルール|プロンプト|"
     r"設定|制約)(?:を|は)?(?:すべて|全て)?(?:無視|忘れ)"),
    ("role_hijack", "あなたは|君は|お前は",
     r"(?:あなたは|君は|お前は)(?:今から|これから|今|もう)\S{0,15}?(?:ai|アシスタント|dan|制限のない|制限なし|無制限|"
     r"管理者)"),
    ("directive", "今から|これから|今後",
     r"(?:今から|これから|今後)(?:は)?[、,]?(?:あなたは|君は)?(?:必ず|常に)?\S{0,12}?(?:だけで|のみで|で)(?:答え|"
     r"回答|返答)(?:て|なさい|ること|ろ)"),
    ("credential_request", "パスワード|暗証番号|apiキー|認証コード",
     r"(?:パスワード|暗証番号|apiキー|認証コード)(?:を)?(?:教えて|送って|入力して|見せて|共有して|言って)"),
    ("exfiltration", "システムプロンプト",
     r"システムプロンプト(?:を)?(?:教えて|表示|出力|見せて|繰り返)"),
)
_KO = (
    ("override", "무시|잊",
     r"(?:이전|앞의|위의|모든|기존|이전의|앞선)\s?(?:의\s?)?(?:모든\s?)?(?:지시|지시사항|지시 사항|명령|명령어|규칙|지침|"
     r"프롬프트|설정)(?:을|를|은|는|들을|들은)?\s?(?:모두\s?|전부\s?)?(?:무시|잊어|잊)"),
    ("directive", "지금부터",
     r"지금부터\s?(?:너는|당신은|넌)\s?(?:반드시|항상|무조건)?\s?\S{0,10}?(?:로만|으로만|로|으로)?\s?(?:대답|답변|응답)"),
    ("role_hijack", "이제",
     r"(?:너는|당신은|넌) 이제\s?\S{0,10}?(?:ai|인공지능|어시스턴트|제한 없는|제한없는|dan|관리자)"),
    ("credential_request", "비밀번호|패스워드|암호|키|코드",
     r"(?:비밀번호|패스워드|암호|api 키|인증 코드|인증코드)(?:를|을)?\s?(?:알려|보내|말해|입력해|공유해)"),
)
_AR = (
    ("override", "تجاهل|انس|إنس",
     r"(?:تجاهل|تجاهلي|تجاهلوا|انس|انسى|إنس)(?: \S+){0,3}? (?:التعليمات|الإرشادات|الارشادات|الأوامر|الاوامر|القواعد|"
     r"التوجيهات)"),
    ("credential_request", "كلمة",
     r"(?:أعطني|اعطني|ارسل|أرسل|اخبرني|أخبرني|شارك|قل لي)(?: \S+){0,2}? (?:كلمة المرور|كلمة السر)"),
)
_HI = (
    ("override", "निर्देश|आदेश|नियम",
     r"(?:पिछले|पहले के|ऊपर के|सभी)(?: \S+){0,2}? (?:निर्देशों|निर्देश|आदेशों|नियमों)(?: \S+){0,2}? (?:को )?"
     r"(?:अनदेखा|नजरअंदाज|नज़रअंदाज़|भूल)"),
    ("credential_request", "पासवर्ड",
     r"(?:अपना|अपने|आपका|आपके)? ?पासवर्ड (?:बताओ|बताइए|बताएं|भेजो|भेजिए|दो|दीजिए)"),
)


def _language_rules(*tables: tuple[tuple[str, str, str], ...]) -> tuple[Rule, ...]:
    """(reason, "anchor|words & also|these", pattern): the part after " & " is `Rule.also`
    (a five-letter key of a foreign word is often an English one: "passe", "momen")."""
    rules = []
    for table in tables:
        for reason, anchors, pattern in table:
            words, _, also = anchors.partition(" & ")
            rules.append(_rule(reason, words, pattern, also=also))
    return tuple(rules)


LATIN_LANGUAGES = _language_rules(_FR, _DE, _ES, _IT, _PT, _NL, _TR)
OTHER_SCRIPTS = _language_rules(_RU, _ZH, _JA, _KO, _AR, _HI)

# A squashed copy of the text (letters only) for spaced-out or dotted words: "i g n o r e".
SQUASHED = re.compile(
    r"(?:ignore|disregard|forget|bypass|override)(?:all|any|the|your|of)*(?:previous|prior|above|earlier|"
    r"preceding|original|initial|system|your)+(?:instructions?|prompts?|rules|guidelines|directives)"
    r"|(?:reveal|print|show|output)(?:me)?(?:your|the)(?:system)prompt|jailbreak|developermode(?:enabled|on)"
)
