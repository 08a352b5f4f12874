"""The hand-off types, the attribute vocabulary, lenient JSON and the fake extractor."""

from __future__ import annotations

import pytest

from engramdb.errors import ProviderError
from engramdb.extract.base import Candidate, ExtractionResult, Skipped, TurnInput
from engramdb.extract.fake import FakeExtractor
from engramdb.extract.lenient_json import loads
from engramdb.extract.vocab import fact_text, normalize_attribute, same_slot

AT = "2023-05-08T10:00:00Z"


def fact(attribute, value, subject="Alice", qualifier=None, operation="assert", kind="fact"):
    return Candidate(kind=kind, text="x", subject=subject, sources=("t",), said_at=AT, attribute=attribute,
                     value=value, qualifier=qualifier, operation=operation)


@pytest.mark.parametrize("raw, expected", [
    ("lives in", "residence"), ("Moved to", "residence"), ("relocated_to", "residence"), ("city", "residence"),
    ("works at", "employer"), ("started a new job at", "employer"), ("got hired by", "employer"),
    ("occupation", "job_title"), ("Marital Status", "relationship_status"), ("husband", "partner"),
    ("dog", "pet"), ("sister", "sibling"), ("Favourite colour", "likes"), ("hates", "dislikes"),
    ("allergic to", "allergy"), ("grew up in", "hometown"), ("shoe size", "shoe_size"), ("", None), (3, None),
])
def test_attributes_map_onto_the_vocabulary(raw, expected):
    assert normalize_attribute(raw) == expected


def test_slots_scope_supersession_to_subject_and_attribute():
    paris, berlin = fact("residence", "Paris"), fact("residence", "Berlin")
    assert same_slot(berlin, paris)  # exclusive
    assert not same_slot(fact("residence", "Berlin", subject="Bob"), paris)
    assert not same_slot(fact("employer", "Paris"), paris)
    rex, luna = fact("pet", "Rex", qualifier="dog"), fact("pet", "Luna", qualifier="cat")
    assert not same_slot(luna, rex) and same_slot(fact("pet", "rex", qualifier="dog"), rex)
    assert same_slot(fact("pet", None, qualifier="dog", operation="retract"), rex)
    assert not same_slot(fact("pet", None, qualifier="dog", operation="retract"), luna)
    assert same_slot(fact("dislikes", "Sushi", kind="preference"), fact("likes", "sushi", kind="preference"))
    assert not same_slot(fact("shoe_size", "39"), fact("shoe_size", "38"))  # unknown: never exclusive
    event = Candidate(kind="event", text="x", subject="Alice", sources=("t",), said_at=AT)
    assert event.slot is None and not same_slot(event, event)
    assert paris.slot == ("alice", "residence", None) and rex.slot == ("alice", "pet", "rex")


def test_fact_text_is_third_person_and_self_contained():
    assert fact_text("Alice", "residence", "Berlin") == "Alice lives in Berlin"
    assert fact_text("user", "pet", "Max", qualifier="dog") == "The user has a dog named Max"
    assert fact_text("James", "partner", "Sam", qualifier="wife") == "James' wife is Sam"
    assert fact_text("Alice", "pet", None, qualifier="cat", operation="retract") == "Alice no longer has a cat"
    assert fact_text("Alice", "employer", None, operation="retract") == "Alice left their job"


@pytest.mark.parametrize("text, expected", [
    ('{"a": 1}', {"a": 1}),
    ('noise ```json\n{"a": [1, 2,]}\n``` more noise', {"a": [1, 2]}),
    ("{'a': 'it\\'s', 'b': None, 'c': true}", {"a": "it's", "b": None, "c": True}),
    ('Here: [{"x": "a } in a string"}] trailing {', [{"x": "a } in a string"}]),
])
def test_lenient_json_reads(text, expected):
    assert loads(text) == expected


@pytest.mark.parametrize("text", ["", "garbage", '{"a": [1, 2}', "{'a': os.system('x')}"])
def test_lenient_json_refuses(text):
    with pytest.raises(ValueError):
        loads(text)


def test_results_merge_and_sum_their_accounting():
    a = ExtractionResult(calls=1, prompt_tokens=10, completion_tokens=2, seconds=0.5)
    b = ExtractionResult(candidates=[fact("residence", "Paris")], skipped=[Skipped(("t",), "bad")], calls=2,
                         prompt_tokens=5, completion_tokens=1, seconds=0.25)
    a.merge(b)
    assert (a.calls, a.prompt_tokens, a.completion_tokens, a.seconds) == (3, 15, 3, 0.75)
    assert len(a.candidates) == 1 and a.skipped[0].reason == "bad"


def test_turn_input_from_a_record_and_its_subject():
    class Record:  # the fields of engramdb.types.Record it reads
        id, role, text, created_at, name, session_id = "r1", "user", "hi", AT, "Caroline", "s1"

    turn = TurnInput.from_record(Record)
    assert (turn.id, turn.speaker, turn.timestamp, turn.subject) == ("r1", "Caroline", AT, "Caroline")
    assert TurnInput("t", "user", "Bob: hi", AT).subject == "Bob"
    assert TurnInput("t", "user", "hi", AT).subject == "user"


def test_the_fake_extractor_fails_then_echoes():
    fake = FakeExtractor(fail_times=1)
    turns = [TurnInput("t1", "user", "I live in Paris", AT, "Alice"), TurnInput("t2", "assistant", "Nice", AT)]
    with pytest.raises(ProviderError):
        fake.extract(turns)
    [c] = fake.extract(turns).candidates
    assert (c.text, c.sources) == ("Alice said: I live in Paris", ("t1",))


@pytest.mark.parametrize("said, written", [
    ("I start my new job next week", "The user starts the user's new job next week"),
    ("I teach yoga and I coach tennis", "The user teaches yoga and the user coaches tennis"),
    ("I watch films on Fridays", "The user watches films on Fridays"),
    ("I started a new job", "The user started a new job"),  # past tense stays
    ("I can swim", "The user can swim"),  # a modal keeps its verb
])
def test_a_verb_agrees_with_the_subject_that_replaces_i(said, written):
    from engramdb.extract.person import third_person

    assert third_person(said, "user") == written
