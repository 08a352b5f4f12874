"""Dates by tense and context (issue 11): what a plan, a past event, a range and a habit
mean, through reltime's public functions (each sentence read twice: by the words
around each expression, and by spaCy's parse as the offline extractor reads it), and
through the offline extractor end to end (the Candidate's when / when_end, text and
recurrence)."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pytest

from engramdb.extract import events, nlp
from engramdb.extract.base import TurnInput
from engramdb.extract.offline import OfflineExtractor
from engramdb.extract.reltime import absolute, find, recurrences, resolve

MON = date(2023, 5, 8)  # a Monday: LoCoMo's first session
MAR = date(2024, 3, 4)  # a Monday: the demo's first session
SAT = date(2024, 5, 18)  # a Saturday
NOV = date(2024, 11, 15)  # a Friday

F, P, C = "future", "past", "context"  # which way the sentence looks (C: no tense to tell, or a fixed phrase)

DATED = [  # (look, anchor, sentence, first day, last day)
    # the reports
    (F, MAR, "I'm moving from Berlin to Lisbon in May.", "2024-05-01", "2024-05-31"),
    (F, NOV, "We are flying to Japan in January.", "2025-01-01", "2025-01-31"),
    (F, SAT, "I'm visiting my parents on Friday.", "2024-05-24", "2024-05-24"),
    (F, MAR, "Remind me to cancel my gym membership before April.", "2024-03-04", "2024-03-31"),
    (F, SAT, "My exam is tomorrow.", "2024-05-19", "2024-05-19"),
    (F, SAT, "I start my new job next week.", "2024-05-20", "2024-05-26"),
    # bare months and weekdays: a plan looks ahead, the past tense back
    (P, MAR, "I moved to Lisbon in May.", "2023-05-01", "2023-05-31"),
    (P, SAT, "I visited my parents on Friday.", "2024-05-17", "2024-05-17"),
    (P, NOV, "We flew to Japan in January.", "2024-01-01", "2024-01-31"),
    (F, MAR, "I'm going to Rome in March.", "2024-03-01", "2024-03-31"),
    (P, MAR, "I went to Rome in March.", "2024-03-01", "2024-03-31"),
    (F, MON, "I'll be in Paris on Monday.", "2023-05-15", "2023-05-15"),  # said on a Monday: a week ahead
    (P, MON, "I was in Paris on Monday.", "2023-05-01", "2023-05-01"),  # …or a week back
    (F, SAT, "The party is on Friday.", "2024-05-24", "2024-05-24"),  # the present, with a time: ahead
    (F, MON, "I'm gonna visit Rome in June.", "2023-06-01", "2023-06-30"),
    (F, MON, "We will go to the coast in April.", "2024-04-01", "2024-04-30"),
    (F, MON, "I plan to repaint the kitchen in February.", "2024-02-01", "2024-02-29"),
    (P, MON, "I repainted the kitchen in February.", "2023-02-01", "2023-02-28"),
    (F, SAT, "Can you come over on Tuesday?", "2024-05-21", "2024-05-21"),
    (P, SAT, "On Wednesday I went to the dentist.", "2024-05-15", "2024-05-15"),
    (P, SAT, "I went for a check-up Monday and it went fine.", "2024-05-13", "2024-05-13"),
    (F, SAT, "How about Wednesday at 4?", "2024-05-22", "2024-05-22"),
    (C, NOV, "See you in December!", "2024-12-01", "2024-12-31"),  # no tense: the nearer December
    (P, SAT, "August was great.", "2023-08-01", "2023-08-31"),
    (F, SAT, "I'm off to Canada next month for our honeymoon.", "2024-06-01", "2024-06-30"),
    # days without a year
    (F, MON, "I'm going to visit my aunt on the 20th of May.", "2023-05-20", "2023-05-20"),
    (P, MON, "I visited my aunt on the 2nd of May.", "2023-05-02", "2023-05-02"),
    (F, MAR, "My lease ends on April 30.", "2024-04-30", "2024-04-30"),
    (P, MAR, "My lease ended on April 30.", "2023-04-30", "2023-04-30"),
    (F, NOV, "I booked the flights for January 12.", "2025-01-12", "2025-01-12"),  # what was booked lies ahead
    (P, MAR, "We met on Oct. 3rd at the fair.", "2023-10-03", "2023-10-03"),
    # "this weekend", "this Tuesday", "in N days", seasons
    (F, SAT, "We're going to the beach this weekend.", "2024-05-18", "2024-05-19"),
    (P, MON, "We went hiking this weekend.", "2023-05-06", "2023-05-07"),
    (F, MON, "We're going hiking this weekend.", "2023-05-13", "2023-05-14"),
    (F, MON, "I'll go this Tuesday.", "2023-05-09", "2023-05-09"),
    (F, SAT, "I'll go this Tuesday.", "2024-05-21", "2024-05-21"),  # this week's Tuesday has passed
    (P, SAT, "I went this Tuesday.", "2024-05-14", "2024-05-14"),
    (F, MON, "I'm flying out in three days.", "2023-05-11", "2023-05-11"),
    (F, MON, "Let's meet next Saturday.", "2023-05-13", "2023-05-13"),
    (F, MON, "Any plans for the weekend?", "2023-05-13", "2023-05-14"),
    (C, MON, "Anything fun over the weekend?", "2023-05-06", "2023-05-07"),
    (F, MON, "I'm going to Spain in the summer.", "2023-06-01", "2023-08-31"),
    (P, NOV, "We went to Spain in the summer.", "2024-06-01", "2024-08-31"),
    (F, MON, "We're planning a trip this summer.", "2023-06-01", "2023-08-31"),
    (P, NOV, "We took a trip this summer.", "2024-06-01", "2024-08-31"),
    (P, MON, "I went camping two weekends ago.", "2023-04-29", "2023-04-30"),
    (P, MON, "I've been reading a lot in the past week.", "2023-05-01", "2023-05-07"),
    (P, MON, "The last few days have been hard.", "2023-05-05", "2023-05-07"),
    # a part of the day stays with its day
    (F, MON, "I'm leaving the day after tomorrow evening.", "2023-05-10", "2023-05-10"),
    (P, MON, "I went for a run yesterday morning.", "2023-05-07", "2023-05-07"),
    (F, MON, "We're meeting on Friday night.", "2023-05-12", "2023-05-12"),
    # ranges a bound leaves
    (F, MON, "I'll do it by Friday.", "2023-05-08", "2023-05-12"),
    (F, MAR, "I need to finish the report by the end of next month.", "2024-03-04", "2024-04-30"),
    (P, SAT, "I've lived here since March.", "2024-03-01", "2024-05-18"),
    (P, SAT, "Since last week I've been sick.", "2024-05-06", "2024-05-18"),
    (F, MON, "I'll stay until Friday.", "2023-05-08", "2023-05-12"),
    (P, SAT, "I had left Berlin before April.", "2024-03-31", "2024-03-31"),  # open: only the edge is known
    (F, MAR, "We'll move after May.", "2024-06-01", "2024-06-01"),
    (P, MON, "I lived in Berlin until March.", "2023-03-31", "2023-03-31"),
]

NO_DATE = [  # (anchor, sentence): no date at all
    (MON, "We haven't talked in a few days."),
    (MON, "I finished the puzzle in two days."),
    (MON, "I love skiing in the winter."),
    (MON, "May I ask you something?"),
    (MON, "Good Friday is a holiday here."),
    (MON, "My favourite day is Friday."),
    (MON, "Every time I see it I smile."),
    (MON, "April said hello to everyone."),
    (MON, "I had a great weekend with friends."),
]

RECURRING = [  # (sentence, what repeats)
    ("I signed up for lessons on Tuesday evenings.", "every Tuesday evening"),
    ("I go to the gym every Monday.", "every Monday"),
    ("We visit my parents each summer.", "every summer"),
    ("I go swimming twice a week.", "twice a week"),
    ("I work on weekends.", "every weekend"),
    ("I run every other day.", "every other day"),
    ("I meet her on Mondays and Thursdays.", "every Monday and Thursday"),
    ("It's part of my daily routine.", "every day"),
    ("We talk every morning.", "every morning"),
    ("I see my therapist once a month.", "once a month"),
    ("In the evenings I read.", "every evening"),
    ("We go every few weeks.", "every few weeks"),
    ("I call my mom every Sunday evening.", "every Sunday evening"),
    ("The market is open on Saturdays.", "every Saturday"),
    ("We have a weekly meeting.", "every week"),
    ("I volunteer at the shelter every weekend.", "every weekend"),
    ("We go to the lake every May.", "every May"),
    ("I get a checkup every year.", "every year"),
    ("We celebrate every Christmas together.", "every Christmas"),
    ("I do yoga a few times a week.", "a few times a week"),
    ("We go to the beach once or twice a year.", "twice a year"),
]


@pytest.fixture(scope="module")
def parse():
    pipeline = nlp.load()
    return lambda text: next(iter(pipeline(text).sents))


def _by_words(sentence: str, anchor: date):
    return find(sentence, anchor)


def _by_parse(parse, sentence: str, anchor: date):
    return events.times(parse(sentence), anchor).mentions


def test_the_tables_are_big_enough():
    looking_ahead = sum(1 for look, *_ in DATED if look == F)
    cases = len(DATED) + len(NO_DATE) + len(RECURRING)
    assert cases >= 80 and looking_ahead + len(RECURRING) >= cases / 3


@pytest.mark.parametrize("reader", ["words", "parse"])
@pytest.mark.parametrize("look, anchor, sentence, first, last", DATED, ids=[row[2] for row in DATED])
def test_dated(parse, reader, look, anchor, sentence, first, last):
    mentions = _by_words(sentence, anchor) if reader == "words" else _by_parse(parse, sentence, anchor)
    assert mentions, sentence
    span = mentions[0].span
    assert (span.start.isoformat(), span.end.isoformat()) == (first, last)


@pytest.mark.parametrize("reader", ["words", "parse"])
@pytest.mark.parametrize("anchor, sentence", NO_DATE, ids=[row[1] for row in NO_DATE])
def test_no_date(parse, reader, anchor, sentence):
    mentions = _by_words(sentence, anchor) if reader == "words" else _by_parse(parse, sentence, anchor)
    assert mentions == []


@pytest.mark.parametrize("sentence, every", RECURRING, ids=[row[0] for row in RECURRING])
def test_recurring_is_not_a_date(sentence, every):
    assert [r.every for r in recurrences(sentence)] == [every]
    assert find(sentence, SAT) == []  # "on Tuesday evenings" is no one Tuesday


def test_counted_weekends_are_a_date_not_a_habit():
    assert recurrences("I'm organizing a gaming party two weekends later.") == []
    assert recurrences("We went camping two weekends ago.") == []


def test_a_recurrence_and_a_date_in_one_sentence():
    text = "Since May I've been going to yoga every Monday."
    assert [r.every for r in recurrences(text)] == ["every Monday"]
    [since] = find(text, SAT)
    assert (since.text, since.span.when, since.span.when_end, since.span.bound) == (
        "Since May", "2024-05-01", "2024-05-18", "since")


@pytest.mark.parametrize("anchor, text, rewritten", [
    (MAR, "I'm moving to Lisbon in May.", "I'm moving to Lisbon in May 2024."),
    (MAR, "Remind me to cancel before April.", "Remind me to cancel before April 2024."),
    (SAT, "I signed up for lessons on Tuesday evenings.", "I signed up for lessons on Tuesday evenings."),
    (MAR, "I booked flights for October 12.", "I booked flights for 12 October 2024."),
    (MAR, "Yesterday I went home.", "On 3 March 2024 I went home."),
    (MAR, "I'm leaving the day after tomorrow evening.", "I'm leaving on the evening of 6 March 2024."),
    (MAR, "It'll be fixed by the end of next month.", "It'll be fixed by the end of April 2024."),
    (SAT, "I had left Berlin before April.", "I had left Berlin before April 2024."),
    (MON, "We went hiking two weekends ago.", "We went hiking on the weekend of 29 April 2023."),
    (MON, "I can't wait for the weekend.", "I can't wait for the weekend of 13 May 2023."),  # "for" stays
    (MON, "I'm starting next month.", "I'm starting in June 2023."),
])
def test_absolute(anchor, text, rewritten):
    assert absolute(text, find(text, anchor)) == rewritten


@pytest.mark.parametrize("look, anchor, sentence, first, last", DATED, ids=[row[2] for row in DATED])
def test_a_rewritten_sentence_names_the_same_days_and_nothing_relative(look, anchor, sentence, first, last):
    once = absolute(sentence, find(sentence, anchor))
    again = find(once, anchor)
    assert not any(m.relative for m in again), once
    assert absolute(once, again) == once


def test_describe_says_the_bound_and_the_part_of_day():
    assert resolve("Remind me before April.", MAR).describe() == "before April 2024"
    assert resolve("I'll be done by the end of next month.", MAR).describe() == "by the end of April 2024"
    assert resolve("I've been here since last week.", SAT).describe() == "since the week of 6 May 2024"
    assert resolve("See you tomorrow evening.", SAT).describe() == "on the evening of 19 May 2024"
    assert resolve("I had left before April.", SAT).open and not resolve("Remind me before April.", MAR).open


def test_a_given_tense_overrides_the_words():
    assert resolve("in May", MAR, tense="past").when == "2023-05-01"
    assert resolve("in May", MAR, tense="future").when == "2024-05-01"
    assert resolve("I went in May", MAR, future=True).when == "2024-05-01"
    assert resolve("in May", MAR, tense=lambda start, end: None).when == "2024-05-01"  # none given: the nearer


# --- the offline extractor end to end ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def extractor() -> OfflineExtractor:
    return OfflineExtractor(summaries=False)


def _said(anchor: date) -> str:
    return f"{anchor.isoformat()}T10:00:00Z"


def _events(extractor, text: str, anchor: date, speaker: str | None = "Alice"):
    result = extractor.extract([TurnInput("t0", "user", text, _said(anchor), speaker, "s1")])
    return [(e.text, e.when, e.when_end, e.qualifier) for e in result.of_kind("event")], result


@pytest.mark.parametrize("anchor, text, speaker, expected", [
    (MAR, "I'm moving from Berlin to Lisbon in May.", "Alice",
     ("Alice is moving from Berlin to Lisbon in May 2024.", "2024-05-01", "2024-05-31", None)),
    (NOV, "We are flying to Japan in January.", "Alice",
     ("Alice and others are flying to Japan in January 2025.", "2025-01-01", "2025-01-31", None)),
    (SAT, "I'm visiting my parents on Friday.", "Alice",
     ("Alice is visiting Alice's parents on 24 May 2024.", "2024-05-24", None, None)),
    (SAT, "I signed up for lessons on Tuesday evenings.", "Alice",
     ("Alice signed up for lessons on Tuesday evenings.", None, None, "every Tuesday evening")),
    (SAT, "My exam is tomorrow.", None, ("The user's exam is on 19 May 2024.", "2024-05-19", None, None)),
    (SAT, "I start my new job next week.", None,
     ("The user starts the user's new job in the week of 20 May 2024.", "2024-05-20", "2024-05-26", None)),
    (MAR, "I have to cancel my gym membership before April.", "Alice",
     ("Alice has to cancel Alice's gym membership before April 2024.", "2024-03-04", "2024-03-31", None)),
    (MON, "I went camping two weekends ago.", "Alice",
     ("Alice went camping on the weekend of 29 April 2023.", "2023-04-29", "2023-04-30", None)),
    (MON, "I usually walk the dog every morning.", "Alice",
     ("Alice usually walks the dog every morning.", None, None, "every morning")),
    (SAT, "I'm leaving the day after tomorrow evening.", "Alice",
     ("Alice is leaving on the evening of 20 May 2024.", "2024-05-20", None, None)),
    (MON, "I booked the flights for October 12.", "Alice",
     ("Alice booked the flights for 12 October 2023.", "2023-10-12", None, None)),
    # only a verb "I" alone governs takes the third person's -s
    (MON, "Toby and I are hitting the beach next month.", "Alice",
     ("Toby and Alice are hitting the beach in June 2023.", "2023-06-01", "2023-06-30", None)),
    (MON, "Last week I retook the test.", "Alice",
     ("In the week of 1 May 2023 Alice retook the test.", "2023-05-01", "2023-05-07", None)),
    (MON, "I feed the cats every morning.", "Alice", ("Alice feeds the cats every morning.", None, None, "every morning")),
])
def test_events_end_to_end(extractor, anchor, text, speaker, expected):
    found, _ = _events(extractor, text, anchor, speaker)
    assert found == [expected]


@pytest.mark.parametrize("anchor, text", [
    (MON, "We haven't talked in a few days."),
    (SAT, "My sister is visiting on Friday."),  # her plan, not the speaker's
    (SAT, "Are you free on Friday?"),
])
def test_no_event_end_to_end(extractor, anchor, text):
    found, result = _events(extractor, text, anchor)
    assert found == []
    if "few days" in text:
        assert result.notes["t0"].dates == ()


def test_facts_take_the_tensed_date_but_a_birthday_none(extractor):
    result = extractor.extract([TurnInput("t0", "user", "I moved to Berlin in March.", _said(MON), "Alice", "s1")])
    [moved] = [c for c in result.candidates if c.attribute == "residence"]
    assert (moved.value, moved.when, moved.when_end) == ("Berlin", "2023-03-01", "2023-03-31")
    result = extractor.extract([TurnInput("t0", "user", "My birthday is on May 3rd.", _said(MON), "Alice", "s1")])
    [birthday] = [c for c in result.candidates if c.attribute == "birthday"]
    assert (birthday.value, birthday.when) == ("3 May", None)  # every year's, not next year's


# --- LoCoMo: the hand-labelled sample ----------------------------------------------------------------------------

def test_locomo_dates_sample():
    from engramdb.bench import dates, locomo

    path = Path(os.environ.get("ENGRAM_LOCOMO") or locomo.DEFAULT_PATH)
    if not path.exists():
        pytest.skip(f"LoCoMo is not at {path}; set ENGRAM_LOCOMO to locomo10.json to run this test")
    conversations = locomo.load(path)
    labels = dates.load_labels()
    for sample in labels["samples"]:
        drawn = dates.sample(conversations, per_stratum=sample["per_stratum"], seed=sample["seed"],
                             exclude=dates.ids(labels, sample.get("exclude")))
        assert drawn == [(t["conversation"], t["dia_id"], t["stratum"]) for t in sample["turns"]]
        result = dates.score(conversations, sample)
        assert result["tally"]["all"]["share"] >= sample["floor"], result["misses"]
