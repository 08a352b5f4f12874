"""First-person statements that become facts and preferences, by rule.

Each `Rule` is a pattern anchored on the speaker ("I", sometimes "we"), a kind of value
to read where the pattern ends (a place, an organisation, a name, a noun phrase), and
what it means (attribute, assert or retract). Values are read from the spaCy parse,
not from the raw string, so "I moved to Berlin last year" yields "Berlin" and "I moved
to a new flat" yields nothing.

Precision over recall: a wrong fact that supersedes a right one is worse than a missed
one. So questions, quotes and hedged sentences ("if I moved to…", "I'd love to…",
"thinking about…") are skipped, values must look like what they claim to be (a place
is a GPE/LOC entity), and an unknown shape yields nothing."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .vocab import ATTRIBUTES, normalize_value

S = r"(?:\b(?:I|i)|(?P<elided>(?<=\band)))"  # the speaker ("…and started working at…": see _elided_ok)
SW = r"(?:\b(?:I|i|[Ww]e)|(?P<elided>(?<=\band)))"  # the speaker, or the speaker's household
ADV = (r"(?:\s+(?:just|recently|finally|actually|also|now|officially|already|really|still|currently|even|totally|"
       r"absolutely|truly|honestly|definitely|genuinely|pretty much|kind of|kinda|sort of|so|do|did))*")
AM = r"(?:'m|\s+am)"
HAVE = r"(?:'ve|\s+have|\s+had)"
ANYMORE = r"^\s*(?:any ?more|now)\b"

SPECIES = {"dog": "dog", "puppy": "dog", "pup": "dog", "cat": "cat", "kitten": "cat", "kitty": "cat",
           "hamster": "hamster", "rabbit": "rabbit", "bunny": "rabbit", "parrot": "parrot", "bird": "bird",
           "budgie": "bird", "fish": "fish", "goldfish": "fish", "turtle": "turtle", "tortoise": "tortoise",
           "snake": "snake", "lizard": "lizard", "gecko": "gecko", "guinea pig": "guinea pig", "horse": "horse",
           "pony": "pony", "ferret": "ferret", "hedgehog": "hedgehog", "chinchilla": "chinchilla"}
_SPECIES = "|".join(sorted(SPECIES, key=len, reverse=True))
_PET_ADJ = r"(?:(?:new|little|baby|sweet|cute|old|beloved|adorable|rescue|furry|tiny|two-year-old)\s+)*"
DIETS = r"vegetarian|vegan|pescatarian|pescetarian|gluten-free|dairy-free|plant-based|keto|paleo|kosher|halal"
OCCUPATIONS = set("""teacher nurse engineer developer programmer doctor physician lawyer attorney accountant designer
chef writer author artist painter musician student manager consultant analyst scientist researcher professor lecturer
pharmacist dentist therapist counselor counsellor psychologist firefighter officer pilot electrician plumber carpenter
mechanic architect photographer journalist editor barista waiter waitress cashier librarian veterinarian vet
paramedic surgeon entrepreneur freelancer salesperson receptionist translator coach trainer dancer actor actress
singer soldier farmer intern nanny tutor baker bartender banker clerk secretary administrator director ceo cto
founder producer illustrator animator streamer youtuber composer drummer guitarist pianist violinist novelist poet
biologist chemist physicist mathematician economist historian archaeologist geologist astronomer midwife caregiver
carer cleaner driver courier chauffeur janitor gardener landscaper tailor butcher fisherman miner welder machinist
technician surveyor auditor broker realtor agent recruiter marketer strategist copywriter blogger influencer
podcaster comedian magician model stylist hairdresser barber beautician sommelier dietitian nutritionist
optometrist radiologist anesthesiologist pediatrician psychiatrist neurologist cardiologist sailor marine
detective investigator judge paralegal diplomat politician senator mayor councillor pastor priest rabbi imam
minister missionary volunteer""".split()) - {"volunteer"}
_EVALUATIVE = set("""good great bad terrible decent amazing awesome huge big little proud better best horrible excellent
lousy fantastic natural born real true total complete fine poor nice lucky happy terrible wannabe aspiring
former ex future retired""".split())
_PRONOUNS = set("""it this that these those them you your yours him her his hers they their me my mine us our ours
everything anything something nothing everyone anyone someone all what how when where why who which whatever
myself yourself there here one ones""".split())
_CHAT_HEADS = set("""photo photos picture pictures pic pics idea ideas sound sounds vibe vibes energy attitude story
stories way thing things stuff one part name look looks sight advice support tip tips suggestion suggestions
question questions news update message chat talk conversation""".split())
_GENERIC_DEFINITE = set("""ocean sea beach beaches outdoors mountains mountain countryside city rain snow sun
sunshine water forest woods desert theater theatre opera ballet symphony gym park zoo library""".split())
_LIGHT_VERBS = set("""making having being getting coming doing spending taking going seeing hearing knowing creating
putting giving keeping letting trying""".split())
_BAD_ORG_HEADS = set("""home night nights moment moments weekend weekends time times least most all first once it
this that myself home house place office""".split())
_SCHOOL = re.compile(r"\b(?:University|College|School|Institute|Academy|Polytechnic|Conservatory|Seminary|Uni)\b|"
                     r"^(?:MIT|UCLA|NYU|USC|UCL|LSE|ETH|Caltech|Harvard|Stanford|Yale|Princeton|Oxford|Cambridge|"
                     r"Berkeley|Columbia)$")
_NUMBER_WORDS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen".split())}
_TENS = {w: 10 * (i + 2) for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split())}
_NUM = r"\d{1,3}|(?:twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)(?:-(?:one|two|three|four|five|six|" \
       r"seven|eight|nine))?|(?:ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen)"


@dataclass(frozen=True)
class Rule:
    name: str
    pattern: str
    attribute: str
    value: str  # how to read the value where the pattern ends: see Reader
    operation: str = "assert"
    fixed: str | None = None  # a value given by the pattern itself ("single")
    qualifier: str | None = None
    polarity: int = 1
    confidence: float = 0.8
    after: str | None = None  # must follow the value ("anymore")
    not_after: str | None = None  # must not follow it
    also: tuple[tuple[str, str, str | None], ...] = ()  # more (attribute, operation, value) it implies


@dataclass(frozen=True)
class Found:
    """One rule's reading of one sentence."""

    attribute: str
    operation: str
    value: str | None
    qualifier: str | None
    polarity: int
    confidence: float
    start: int  # character offsets within the sentence
    end: int
    rule: str


def _r(name: str, pattern: str, attribute: str, value: str, **kw) -> Rule:
    return Rule(name, pattern, attribute, value, **kw)


RULES: list[Rule] = [
    # residence
    _r("live_in", rf"{S}{ADV}(?:\s+live|{AM}{ADV}\s+(?:living|based|settled)|{HAVE}{ADV}\s+been\s+(?:living|based))"
       r"\s+in\s+", "residence", "place"),
    _r("moved_to", rf"{SW}{ADV}(?:{HAVE}{ADV})?\s+(?:moved|relocated)(?:\s+back)?(?:\s+from\s+[A-Z][\w .]{{0,30}}?)?"
       r"\s+to\s+", "residence", "place"),
    _r("no_longer_live", rf"{S}{ADV}\s+no\s+longer\s+live\s+in\s+", "residence", "place", operation="retract"),
    _r("dont_live", rf"{S}\s+(?:don't|do not)\s+live\s+in\s+", "residence", "place", operation="retract",
       after=ANYMORE),
    _r("moved_out", rf"{SW}{ADV}(?:{HAVE})?\s+moved\s+(?:out\s+of|away\s+from)\s+", "residence", "place",
       operation="retract", confidence=0.7),
    # employer
    _r("work_at", rf"{S}{ADV}(?:\s+work|{AM}{ADV}\s+working)\s+(?:at|for)\s+", "employer", "org"),
    _r("started_at", rf"{S}{ADV}(?:{HAVE}{ADV})?\s+(?:started|began)\s+(?:working|to work)\s+(?:at|for)\s+",
       "employer", "org"),
    _r("new_job_at", rf"{S}{ADV}(?:{HAVE}{ADV})?\s+(?:started|got|landed|accepted|took|began)\s+(?:a|an|my)\s+"
       r"(?:new\s+)?(?:full-time\s+|part-time\s+)?(?:job|position|role|gig)\s+(?:at|with)\s+", "employer", "org"),
    _r("hired_by", rf"{S}{ADV}(?:{HAVE}{ADV})?(?:\s+got|\s+been|\s+was)\s+hired\s+(?:by|at)\s+", "employer", "org"),
    _r("employed_by", rf"{S}{AM}{ADV}\s+employed\s+(?:by|at)\s+", "employer", "org"),
    _r("quit_job_at", rf"{S}{ADV}(?:{HAVE}{ADV})?\s+(?:quit|left|lost)\s+my\s+(?:old\s+)?job\s+(?:at|with)\s+",
       "employer", "org", operation="retract"),
    _r("quit_job", rf"{S}{ADV}(?:{HAVE}{ADV})?\s+(?:quit|left|lost)\s+my\s+(?:old\s+)?job\b(?!\s+(?:at|with)\b)",
       "employer", "none", operation="retract", also=(("job_title", "retract", None),)),
    _r("fired", rf"{S}{ADV}(?:{HAVE}{ADV})?(?:\s+got|\s+been|\s+was)\s+(?:fired|laid\s+off|let\s+go)\b", "employer",
       "none", operation="retract", also=(("job_title", "retract", None),)),
    _r("no_longer_work", rf"{S}{ADV}\s+no\s+longer\s+work\s+(?:at|for)\s+", "employer", "org", operation="retract"),
    _r("dont_work", rf"{S}\s+(?:don't|do not)\s+work\s+(?:at|for)\s+", "employer", "org", operation="retract",
       after=ANYMORE),
    _r("retired", rf"{S}{ADV}(?:{HAVE}{ADV})?\s+(?:retired|resigned)\b(?!\s+(?:my|the|a|an|it|this|that|his|her|"
       r"our|their|some|those|these)\b)", "employer", "none", operation="retract", confidence=0.7,
       also=(("job_title", "retract", None),)),
    _r("unemployed", rf"{S}{AM}{ADV}\s+unemployed\b", "employer", "none", operation="retract", confidence=0.7),
    # job title
    _r("work_as", rf"{S}{ADV}(?:\s+work|{AM}{ADV}\s+working)\s+as\s+(?:a|an)\s+", "job_title", "role"),
    _r("work_as_at", rf"{S}{ADV}(?:\s+work|{AM}{ADV}\s+working)\s+as\s+(?:a|an)\s+[a-z][a-z -]{{1,40}}?\s+(?:at|for)\s+",
       "employer", "org"),
    _r("promoted_to", rf"{S}{ADV}(?:{HAVE}{ADV})?(?:\s+got|\s+been|\s+was)\s+promoted\s+to\s+(?:a\s+|an\s+)?",
       "job_title", "role"),
    _r("i_am_a", rf"{S}{AM}{ADV}\s+(?:a|an)\s+", "job_title", "occupation", confidence=0.7),
    _r("became_a", rf"{S}{ADV}(?:{HAVE}{ADV})?\s+(?:became|become)\s+(?:a|an)\s+", "job_title", "occupation",
       confidence=0.7),
    _r("no_longer_a", rf"{S}{AM}\s+no\s+longer\s+(?:a|an)\s+", "job_title", "occupation", operation="retract"),
    # relationships
    _r("status", rf"{S}{AM}{ADV}\s+(?:happily\s+)?(?P<fixed>single|married|engaged|divorced|widowed)(?![-\w])"
       r"(?!\s+(?:in|with|by)\b)", "relationship_status", "none"),
    _r("got_married", rf"{SW}{ADV}(?:{HAVE}{ADV})?\s+(?:got|gotten)\s+(?P<fixed>married|engaged)\b"
       r"(?:\s+to\s+)?", "relationship_status", "none", also=(("partner", "assert", "@name"),)),
    _r("got_divorced", rf"{SW}{ADV}(?:{HAVE}{ADV})?\s+(?:got|gotten)\s+(?P<fixed>divorced)\b", "relationship_status",
       "none", also=(("partner", "retract", None),)),
    _r("married_to", rf"{S}{AM}{ADV}\s+(?:married|engaged)\s+to\s+", "partner", "name"),
    _r("married_x", rf"{S}{ADV}(?:{HAVE}{ADV})?\s+(?:married|wed)\s+(?=[A-Z])", "partner", "name",
       also=(("relationship_status", "assert", "married"),)),
    _r("dating", rf"{S}{AM}{ADV}\s+dating\s+(?=[A-Z])", "partner", "name", confidence=0.7),
    _r("my_partner_x", r"\b[Mm]y\s+(?:new\s+)?(?P<q>boyfriend|girlfriend|husband|wife|partner|fianc[ée]e?|spouse)"
       r"(?:'s\s+name\s+is\s+|,\s+|\s+)(?=[A-Z])", "partner", "name", confidence=0.75),
    _r("have_partner_named", rf"{S}{ADV}\s+have\s+a\s+(?:new\s+)?(?P<q>boyfriend|girlfriend|partner)\s+"
       r"(?:named|called)\s+", "partner", "name"),
    _r("broke_up_with", rf"{S}{ADV}(?:{HAVE}{ADV})?\s+(?:broke|broken|split)\s+up\s+with\s+(?=[A-Z])", "partner",
       "name", operation="retract", also=(("relationship_status", "assert", "single"),)),
    _r("we_broke_up", rf"\b(?:[Ww]e|[A-Z][a-z]+\s+and\s+I)\s+(?:just\s+|finally\s+|recently\s+)?(?:{HAVE}\s+)?"
       r"(?:broke|broken|split)\s+up\b", "partner", "none", operation="retract",
       also=(("relationship_status", "assert", "single"),)),
    # family
    _r("my_relative_x", r"\b[Mm]y\s+(?:(?:little|older|younger|big|baby|twin|elder|oldest|youngest)\s+)?"
       r"(?P<q>sister|brother|son|daughter)(?![-\w])(?:'s\s+name\s+is\s+|,\s+|\s+)(?=[A-Z])", "@family", "name",
       confidence=0.75),
    _r("have_relative_named", rf"{S}{ADV}\s+have\s+(?:a|an|one)\s+(?:(?:little|older|younger|big|twin|elder)\s+)?"
       r"(?P<q>sister|brother|son|daughter)\s+(?:named|called)\s+", "@family", "name"),
    _r("had_baby", rf"{SW}{ADV}(?:{HAVE}{ADV})?\s+(?:had|welcomed)\s+a\s+(?:baby\s+)?(?P<q>boy|girl)\b"
       r"(?:,?\s+(?:named|called)\s+)?", "child", "name?"),
    # pets
    _r("got_pet", rf"{SW}{ADV}(?:{HAVE}{ADV})?\s+(?:adopted|got|rescued|bought|brought\s+home|took\s+in|welcomed)\s+"
       rf"(?:a|an|another)\s+{_PET_ADJ}(?P<q>{_SPECIES})\b(?:,?\s+(?:named|called)\s+)?", "pet", "pet"),
    _r("have_pet", rf"{SW}{ADV}\s+(?:have|own)\s+(?:a|an)\s+{_PET_ADJ}(?P<q>{_SPECIES})\b"
       r"(?:,?\s+(?:named|called)\s+)?", "pet", "pet", confidence=0.75),
    _r("my_pet_x", rf"\b(?:[Mm]y|[Oo]ur)\s+{_PET_ADJ}(?P<q>{_SPECIES})(?:'s\s+name\s+is\s+|,\s+|\s+)(?=[A-Z])", "pet",
       "pet_name", confidence=0.7),
    _r("pet_died", rf"\b(?:[Mm]y|[Oo]ur)\s+{_PET_ADJ}(?P<q>{_SPECIES})(?:,?\s+(?P<n>[A-Z][a-z]+),?)?\s+"
       r"(?:just\s+|recently\s+|sadly\s+|finally\s+)*(?:died|passed\s+away|passed\s+on|was\s+put\s+down|"
       r"had\s+to\s+be\s+put\s+down|was\s+put\s+to\s+sleep|is\s+no\s+longer\s+with\s+us)\b", "pet", "pet_gone",
       operation="retract", confidence=0.85),
    _r("put_down", rf"{SW}{ADV}(?:{HAVE}\s+to|\s+had\s+to)?\s+put\s+(?:my|our)\s+{_PET_ADJ}(?P<q>{_SPECIES})"
       r"(?:\s+(?P<n>[A-Z][a-z]+))?\s+(?:down|to\s+sleep)\b", "pet", "pet_gone", operation="retract"),
    _r("lost_pet", rf"{SW}{ADV}(?:{HAVE}{ADV})?\s+(?:lost|gave\s+away|given\s+away|rehomed|re-homed)\s+(?:my|our)\s+"
       rf"{_PET_ADJ}(?P<q>{_SPECIES})\b(?:,?\s+(?P<n>[A-Z][a-z]+))?", "pet", "pet_gone", operation="retract",
       confidence=0.65),
    _r("no_longer_pet", rf"{S}{ADV}\s+no\s+longer\s+have\s+(?:a|an|my)\s+(?P<q>{_SPECIES})\b", "pet", "pet_gone",
       operation="retract"),
    _r("dont_have_pet", rf"{S}\s+(?:don't|do not)\s+have\s+(?:a|an)\s+(?P<q>{_SPECIES})\s+any\s?more\b", "pet",
       "pet_gone", operation="retract"),
    # preferences
    _r("love", rf"{S}{ADV}\s+(?:love|like|enjoy|adore)\s+", "likes", "phrase", confidence=0.7),
    _r("fan_of", rf"{S}{AM}{ADV}\s+(?:a\s+)?(?:big\s+|huge\s+|massive\s+)?fan\s+of\s+", "likes", "phrase",
       confidence=0.7),
    _r("into", rf"{S}{AM}{ADV}\s+(?:into|passionate\s+about|obsessed\s+with|crazy\s+about)\s+", "likes", "phrase",
       confidence=0.65, not_after=ANYMORE),
    _r("favorite", r"\b[Mm]y\s+(?:absolute\s+|all-time\s+)?favou?rite\s+(?P<q>(?!part\b|moment\b|memory\b|one\b)"
       r"[a-z]+(?:\s+(?!is\b|are\b)[a-z]+)?)\s+(?:is|are)\s+", "likes", "phrase", confidence=0.75),
    _r("dont_like", rf"{S}\s+(?:really\s+)?(?:don't|do not|never)\s+(?:really\s+)?(?:like|enjoy)\s+", "dislikes",
       "phrase", polarity=-1, confidence=0.7, not_after=ANYMORE),
    _r("hate", rf"{S}{ADV}\s+(?:hate|dislike|detest|loathe|can't\s+stand|cannot\s+stand)\s+", "dislikes", "phrase",
       polarity=-1, confidence=0.7),
    _r("not_fan", rf"{S}{AM}\s+not\s+(?:a\s+)?(?:big\s+|huge\s+)?fan\s+of\s+", "dislikes", "phrase", polarity=-1,
       confidence=0.7),
    _r("no_longer_like", rf"{S}\s+no\s+longer\s+(?:like|enjoy|love)\s+", "likes", "phrase", operation="retract"),
    _r("dont_like_anymore", rf"{S}\s+(?:don't|do not)\s+(?:really\s+)?(?:like|enjoy|love)\s+", "likes", "phrase",
       operation="retract", after=ANYMORE),
    _r("not_into_anymore", rf"{S}{AM}\s+(?:not|no\s+longer)\s+into\s+", "likes", "phrase", operation="retract"),
    # diet and health
    _r("diet_am", rf"{S}(?:{AM}|{HAVE}{ADV}\s+been){ADV}\s+(?:a\s+|fully\s+|strictly\s+|mostly\s+)?(?P<fixed>{DIETS})"
       r"\b(?![-\w])", "diet",
       "none", not_after=r"^\s+(?!now\b|too\b|again\b|and\b|but\b|so\b|since\b|because\b|for\b)[a-z]"),
    _r("went_diet", rf"{SW}{ADV}(?:{HAVE}{ADV})?\s+(?:went|gone|become|became|turned)\s+(?:fully\s+)?"
       rf"(?P<fixed>{DIETS})\b(?![-\w])", "diet", "none"),
    _r("on_diet", rf"{S}{AM}{ADV}\s+on\s+a\s+(?P<fixed>{DIETS}|low-carb|mediterranean)\s+diet\b", "diet", "none"),
    _r("no_meat", rf"{S}{ADV}(?:{HAVE}{ADV})?\s+(?:stopped|quit|gave\s+up)\s+eating\s+meat\b", "diet", "none",
       fixed="vegetarian", confidence=0.6),
    _r("not_diet", rf"{S}{AM}\s+(?:no\s+longer|not)\s+(?:a\s+)?(?P<fixed>{DIETS})\b(?![-\w])", "diet", "none",
       operation="retract"),
    _r("stopped_diet", rf"{S}{ADV}(?:{HAVE}{ADV})?\s+(?:stopped|quit)\s+being\s+(?:a\s+)?(?P<fixed>{DIETS})\b",
       "diet", "none", operation="retract"),
    _r("eat_meat_again", rf"{S}{ADV}(?:{HAVE}{ADV})?\s+(?:started|began)\s+eating\s+meat\s+again\b", "diet", "none",
       operation="retract", confidence=0.7),
    _r("allergic", rf"{S}{AM}{ADV}\s+(?:severely\s+|very\s+|deathly\s+|mildly\s+|extremely\s+)?allergic\s+to\s+",
       "allergy", "phrase"),
    _r("allergy", rf"{S}{ADV}\s+have\s+(?:a|an)\s+(?:severe\s+|mild\s+|bad\s+)?(?P<fixed>[a-z]+)\s+allergy\b",
       "allergy", "none"),
    _r("no_longer_allergic", rf"{S}{AM}\s+no\s+longer\s+allergic\s+to\s+", "allergy", "phrase",
       operation="retract"),
    # personal data
    _r("age", rf"{S}{AM}\s+(?P<fixed>{_NUM})\s+(?:years?|yrs?)\s+old\b", "age", "none"),
    _r("turned", rf"{S}{ADV}(?:{HAVE}{ADV})?\s+turned\s+(?P<fixed>{_NUM})\b(?!\s*(?:%|percent|minutes?|hours?|"
       r"days?|weeks?|months?|times?|degrees?|pages?|miles?|[a-z]+s\b))", "age", "none"),
    _r("birthday", r"\b[Mm]y\s+birthday\s+(?:is|was|'s)\s+(?:on\s+)?", "birthday", "date"),
    _r("from", rf"{S}{AM}{ADV}\s+(?:originally\s+)?from\s+", "hometown", "place"),
    _r("grew_up", rf"{S}{ADV}\s+grew\s+up\s+in\s+", "hometown", "place"),
    _r("born_in", rf"{S}\s+was\s+(?:born\s+and\s+raised|born|raised)\s+in\s+", "hometown", "place"),
    _r("hometown", r"\b[Mm]y\s+home\s?town\s+(?:is|was)\s+", "hometown", "place"),
    _r("school", rf"{S}{ADV}(?:{AM}{ADV})?\s+(?:go\s+to|attend|attending|studying\s+at|study\s+at|enrolled\s+at|"
       r"enrolled\s+in|a\s+student\s+at)\s+", "school", "school"),
    _r("graduated", rf"{S}{ADV}(?:{HAVE}{ADV})?\s+graduated\s+from\s+", "school", "school", qualifier="graduated"),
]

_COMPILED = [(rule, re.compile(rule.pattern)) for rule in RULES]
_HEDGE = re.compile(r"\b(?:if|would|wish|hope|hoping|want|wanna|wanted|plan|planning|thinking|considering|might|"
                    r"maybe|perhaps|someday|dream|dreaming|imagine|could|should|unless|whether|pretend|supposed|"
                    r"going\s+to|gonna|will|used\s+to|when|before|after|until|once|as\s+soon\s+as|told|said|says|"
                    r"asked|tell|what|why|how|where|never|not|no|don't|didn't|can't|cannot|won't|wouldn't|"
                    r"couldn't|doesn't)\b|'d\b|'ll\b", re.IGNORECASE)
_NEGATING = {"not", "no", "never", "don't", "didn't", "can't", "cannot", "won't", "wouldn't", "couldn't", "doesn't"}


def hedged(prefix: str, rule: Rule) -> bool:
    """Whether the clause before a match makes it hypothetical, reported or negated.
    Rules that carry their own negation ("I don't live in…") are only stopped by the
    other hedges."""
    clause = re.split(r"[,;:—–]|\s-\s|\bbut\b|\band\b|\bso\b", prefix)[-1]
    for m in _HEDGE.finditer(clause):
        word = m.group(0).lower()
        if word in _NEGATING and rule.operation == "retract":
            continue
        return True
    return False


_FIRST_PERSON_CLAUSE = re.compile(r"^\s*(?:[\w']+\s+){0,4}?(?:I|i|[Ww]e)\b(?!')")


def _elided_ok(prefix: str, rule: Rule) -> bool:
    """'I quit my job and started working at Spotify': the verb after "and" shares the
    subject of the clause before, which must be the speaker (and not hedged)."""
    clauses = re.split(r"\band\b|[,;]", prefix)
    if len(clauses) < 2:
        return False
    before = clauses[-2]
    return bool(_FIRST_PERSON_CLAUSE.match(before)) and not hedged(before, rule)


def find(sentence, text: str) -> list[Found]:
    """Every rule reading of one spaCy sentence `sentence` whose text is `text`."""
    if "?" in text or '"' in text or "“" in text:
        return []
    found: list[Found] = []
    base = sentence.start_char
    for rule, pattern in _COMPILED:
        for match in pattern.finditer(text):
            if hedged(text[:match.start()], rule):
                continue
            if match.groupdict().get("elided") is not None and not _elided_ok(text[:match.start()], rule):
                continue
            read = _read(rule, match, sentence, base, text)
            if read is None:
                continue
            value, qualifier, end = read
            if rule.after and not re.search(rule.after, text[end:], re.IGNORECASE):
                continue
            if rule.not_after and re.search(rule.not_after, text[end:], re.IGNORECASE):
                continue
            attribute = rule.attribute
            if attribute == "@family":
                attribute = "child" if qualifier in ("son", "daughter") else "sibling"
            found.append(Found(attribute, rule.operation, value, qualifier, rule.polarity, rule.confidence,
                               match.start(), end, rule.name))
            if rule.value == "phrase":  # "I love hiking and camping"
                for more, end in _conjuncts(sentence, base, text, end):
                    found.append(Found(attribute, rule.operation, more, qualifier, rule.polarity, rule.confidence,
                                       match.start(), end, rule.name))
            for extra_attribute, operation, extra in rule.also:
                extra_value = extra
                if extra == "@name":  # "we got married to Sam": the name after "to"
                    name = _name(sentence, base + match.end()) if re.search(r"\sto\s+$", match.group(0)) else None
                    if name is None:
                        continue
                    extra_value = name[0]
                found.append(Found(extra_attribute, operation, extra_value, None,
                                   1, rule.confidence - 0.1, match.start(), end, rule.name))
    return _drop_contradicted(found)


_LINK = re.compile(r"^(?:\s*,)?\s*(?:and|or)\s+|^\s*,\s+")


def _conjuncts(sentence, base: int, text: str, end: int, limit: int = 3):
    for _ in range(limit):
        link = _LINK.match(text[end:])
        if not link:
            return
        more = _phrase(sentence, base + end + link.end())
        if more is None:
            return
        end = more[1] - base
        yield more[0], end


def _drop_contradicted(found: list[Found]) -> list[Found]:
    """'My dog Max died' reads as both 'has a dog named Max' and its retraction: the
    retraction wins. The same statement read twice is kept once. What is left is in
    the order it was said ("I quit my job and started at Acme": retract, then assert)."""
    retracts = [f for f in found if f.operation == "retract"]

    def contradicted(f: Found) -> bool:
        return f.operation == "assert" and any(
            r.attribute == f.attribute and (
                (r.value is not None and normalize_value(r.value) == normalize_value(f.value))
                or (r.value is None and r.qualifier is not None and r.qualifier == f.qualifier))
            for r in retracts)

    kept, seen = [], set()
    for f in sorted(found, key=lambda f: (f.start, f.operation != "retract")):
        key = (f.attribute, f.operation, normalize_value(f.value), f.qualifier)
        if key not in seen and not contradicted(f):
            seen.add(key)
            kept.append(f)
    return kept


def _read(rule: Rule, match: re.Match[str], sentence, base: int, text: str):
    """(value, qualifier, end offset) or None when the value is not what it should be."""
    groups = match.groupdict()
    qualifier = rule.qualifier or (groups.get("q") or None)
    if qualifier:
        qualifier = qualifier.lower()
    offset = match.end()
    fixed = rule.fixed or groups.get("fixed")
    kind = rule.value
    if kind == "none":
        value = fixed.lower() if fixed else None
        if rule.attribute == "age":
            number = _number(value) if value else None
            if number is None or not 0 < number < 120:
                return None
            value = str(number)
        return value, qualifier, match.end()
    if kind == "pet":
        species = SPECIES[qualifier]
        after = _token_at(sentence, base + match.end("q"))
        if after is not None and after.pos_ in ("NOUN", "PROPN") and not after.is_title:
            return None  # "a dog walker", "a cat scratch"
        name = _name(sentence, base + offset) if match.group(0).rstrip().endswith(("named", "called")) else None
        if name:
            return name[0], species, name[1] - base
        return species, species, match.end()
    if kind == "pet_name":
        name = _name(sentence, base + offset)
        return (name[0], SPECIES[qualifier], name[1] - base) if name else None
    if kind == "pet_gone":
        return groups.get("n"), SPECIES[qualifier], match.end()
    if kind in ("name", "name?", "pet_name") and re.search(r",\s+$", match.group(0)):
        # "my wife, Sarah, said": an apposition only when the name is closed off; "my girlfriend, Toby and I"
        # is a list
        name = _name(sentence, base + offset)
        if name is None or not re.match(r"^\s*(?:[,.!;]|$)", text[name[1] - base:]):
            return None
    if kind in ("name", "name?"):
        if qualifier in ("boy", "girl"):
            qualifier = "son" if qualifier == "boy" else "daughter"
        if qualifier in ("fiancé", "fiancée", "fiancee"):
            qualifier = "fiance"
        name = _name(sentence, base + offset)
        if name is None:
            return (None, qualifier, match.end()) if kind == "name?" else None
        return name[0], qualifier, name[1] - base
    span = {"place": _place, "org": _org, "school": _school_name, "role": _role, "occupation": _occupation,
            "phrase": _phrase, "date": _date}[kind](sentence, base + offset)
    if span is None:
        return None
    value, end = span
    if kind == "phrase" and qualifier and rule.name == "favorite":
        qualifier = f"favorite {qualifier}"
    return value, qualifier, end - base


def _number(word: str) -> int | None:
    word = word.lower()
    if word.isdigit():
        return int(word)
    if word in _NUMBER_WORDS:
        return _NUMBER_WORDS[word]
    tens, _, ones = word.partition("-")
    if tens in _TENS:
        return _TENS[tens] + (_NUMBER_WORDS.get(ones, 0) if ones else 0)
    return None


def _token_at(sentence, char: int):
    for token in sentence:
        if token.idx >= char:
            return token
    return None


def _entity_starting(token, labels: tuple[str, ...]):
    """The entity of one of `labels` that starts at `token` (or right after a leading 'the')."""
    if token is None:
        return None
    for ent in token.doc.ents:
        if ent.label_ in labels and (ent.start == token.i or (ent.start == token.i + 1 and token.lower_ == "the")):
            return ent
    return None


def _propn_run(token, limit: int = 4):
    """Consecutive capitalised proper nouns from `token`: 'New Orleans', 'Acme Corp'."""
    doc, end = token.doc, token.i
    while end < len(doc) and end - token.i < limit and doc[end].pos_ == "PROPN" and doc[end].text[:1].isupper():
        end += 1
    return doc[token.i:end] if end > token.i else None


_NOT_NAMES = set("""I Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February March April May June
July August September October November December The A An And But So Yesterday Today Tomorrow Last Next This
That He She They We It Mom Dad Mum Mother Father""".split())


def _name(sentence, char: int):
    token = _token_at(sentence, char)
    if token is None or token.text in _NOT_NAMES or not token.text[:1].isupper():
        return None
    ent = _entity_starting(token, ("PERSON",))
    if ent is not None and ent.start == token.i:
        return ent.text, ent.end_char
    if token.pos_ == "PROPN" and token.ent_type_ in ("", "PERSON", "ORG", "GPE", "NORP"):
        run = token.doc[token.i:token.i + 1]
        return run.text, run.end_char
    return None


def _place(sentence, char: int):
    token = _token_at(sentence, char)
    ent = _entity_starting(token, ("GPE", "LOC"))
    if ent is not None:
        return ent.text, ent.end_char
    if token is not None and token.ent_type_ == "" and token.text not in _NOT_NAMES:
        run = _propn_run(token)
        if run is not None:
            return run.text, run.end_char
    return None


def _org(sentence, char: int):
    token = _token_at(sentence, char)
    if token is None:
        return None
    ent = _entity_starting(token, ("ORG", "FAC"))
    if ent is not None:
        return ent.text, ent.end_char
    if token.ent_type_ in ("", "ORG", "GPE", "PERSON", "PRODUCT") and token.text not in _NOT_NAMES:
        run = _propn_run(token)  # the small model calls Spotify a GPE: "work at X" says enough
        if run is not None:
            return run.text, run.end_char
    if token.lower_ in ("a", "an", "the"):
        chunk = _chunk_at(token)
        if chunk is not None and chunk.root.pos_ == "NOUN" and chunk.root.lower_ not in _BAD_ORG_HEADS \
                and len(chunk) <= 5 and not any(t.lower_ in _PRONOUNS for t in chunk):
            return chunk.text, chunk.end_char
    return None


def _school_name(sentence, char: int):
    value = _org(sentence, char) or _place(sentence, char)
    if value is None or not _SCHOOL.search(value[0]):
        return None
    return value


def _chunk_at(token):
    for chunk in token.doc.noun_chunks:
        if chunk.start == token.i:
            return chunk
        if chunk.start > token.i:
            break
    return None


def _chunk_from(token):
    """The rest of the noun chunk `token` starts or follows the determiner of."""
    for chunk in token.doc.noun_chunks:
        if chunk.start <= token.i < chunk.end and chunk.start >= token.i - 1:
            return token.doc[token.i:chunk.end]
        if chunk.start > token.i:
            break
    return None


def _bare(token, limit: int = 4):
    """Content words from `token` when the parser made no noun chunk of them ("I don't
    like cilantro": cilantro tagged as an adjective)."""
    doc, end = token.doc, token.i
    while end < len(doc) and end - token.i < limit and (doc[end].pos_ in ("NOUN", "PROPN", "ADJ", "NUM")):
        end += 1
    if end == token.i or doc[end - 1].dep_ not in ("dobj", "pobj", "attr", "xcomp", "conj", "oprd"):
        return None
    return doc[token.i:end]


def _role(sentence, char: int):
    token = _token_at(sentence, char)
    if token is None:
        return None
    chunk = _chunk_from(token)
    if chunk is None or chunk.root.pos_ != "NOUN" or len(chunk) > 5 or chunk.root.lower_ == "volunteer":
        return None
    if any(t.lower_ in _PRONOUNS or t.lower_ in _EVALUATIVE for t in chunk):
        return None
    text = chunk.text
    if chunk[0].lower_ in ("a", "an", "the"):
        text = chunk[1:].text
    return text, chunk.end_char


def _occupation(sentence, char: int):
    role = _role(sentence, char)
    if role is None:
        return None
    words = role[0].lower().split()
    if not words or words[-1] not in OCCUPATIONS:
        return None
    token = _token_at(sentence, role[1])
    if token is not None and token.lower_ in ("at", "of", "in") and words[-1] in ("fan", "student"):
        return None
    return role


def _phrase(sentence, char: int):
    """A noun phrase or gerund phrase that can stand alone as a liked or disliked thing."""
    token = _token_at(sentence, char)
    if token is None or token.lower_ in _PRONOUNS or token.pos_ in ("PRON", "SCONJ", "ADP", "PUNCT"):
        return None
    doc = token.doc
    if token.pos_ in ("VERB", "AUX") and token.tag_ != "VBG":
        return None  # "I love apples and hate pears": "hate pears" is another clause
    if token.lower_ == "to" and token.i + 1 < len(doc) and doc[token.i + 1].pos_ == "VERB":
        verb = doc[token.i + 1]
        if verb.lemma_ in ("say", "admit", "tell", "see", "hear", "bother", "break", "ask", "interrupt", "leave",
                           "be", "think", "know", "have", "do"):
            return None
        span = _verb_phrase(verb, start=token.i)
    elif token.tag_ == "VBG" or (token.pos_ == "NOUN" and token.lower_.endswith("ing")
                                 and token.dep_ in ("xcomp", "dobj", "pcomp", "pobj")):
        span = _verb_phrase(token, start=token.i)
    else:
        span = _chunk_from(token) or _bare(token)
        if span is not None and span.root.lower_ in _CHAT_HEADS:
            return None
        if span is not None and span.end < len(doc) and doc[span.end].lower_ == "of":  # "a cup of tea"
            tail = _chunk_at(doc[span.end + 1]) if span.end + 1 < len(doc) else None
            if tail is not None:
                span = doc[span.start:tail.end]
    if span is None or len(span) > 6:
        return None
    if any(t.lower_ in _PRONOUNS for t in span) or not any(
            t.pos_ in ("NOUN", "PROPN", "VERB") or (t.pos_ == "ADJ" and t.dep_ in ("dobj", "pobj")) for t in span):
        return None
    if span[0].lower_ == "the" and span.root.lower_ not in _GENERIC_DEFINITE:
        return None  # "I love the colors": the ones in the photo just shared, not a taste
    if span[0].pos_ in ("VERB", "PART") or span[0].tag_ == "VBG" or span[0].lower_.endswith("ing"):
        after = doc[span.end] if span.end < len(doc) else None
        if after is not None and (after.pos_ in ("ADP", "PART", "SCONJ") or after.lower_ in ("sure", "up", "out")):
            return None  # "making sure…", "spending time with…": cut short, it would mislead
        if span[-1].lower_ in _LIGHT_VERBS or span[0].lower_ in _LIGHT_VERBS and len(span) == 1:
            return None
    return span.text, span.end_char


def _verb_phrase(verb, start: int):
    doc = verb.doc
    end = verb.i + 1
    if end < len(doc):
        chunk = _chunk_at(doc[end])
        if chunk is not None:
            end = chunk.end
        elif doc[end].pos_ == "ADP" and end + 1 < len(doc):  # "going to concerts"
            chunk = _chunk_at(doc[end + 1])
            if chunk is not None:
                end = chunk.end
    return doc[start:end]


_MONTH_NAME = r"(Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sept?(?:ember)?|" \
              r"Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?"
_MONTH_DAY = re.compile(rf"(?:(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH_NAME}|{_MONTH_NAME}\s+(\d{{1,2}})"
                        rf"(?:st|nd|rd|th)?)\b")


def _date(sentence, char: int):
    from .reltime import find as find_times

    anchor = sentence.doc.user_data.get("anchor")
    if anchor is None:
        return None
    offset = char - sentence.start_char
    text = sentence.text
    explicit = _MONTH_DAY.match(text[offset:])
    if explicit:
        day = int(explicit.group(1) or explicit.group(4))
        month = (explicit.group(2) or explicit.group(3)).rstrip(".")[:3].title()
        if 1 <= day <= 31:
            names = {m[:3]: m for m in ("January", "February", "March", "April", "May", "June", "July", "August",
                                        "September", "October", "November", "December")}
            return f"{day} {names[month]}", sentence.start_char + offset + explicit.end()
    for mention in find_times(text[offset:], anchor):
        if mention.start > 3:
            break
        span = mention.span
        if span.precision != "day":
            return None
        return f"{span.start.day} {span.start.strftime('%B')}", sentence.start_char + offset + mention.end
    return None


def attribute_kind(attribute: str) -> str:
    spec = ATTRIBUTES.get(attribute)
    return spec.kind if spec else "fact"
