"""The derivation rule for thoughts, scanned (issue 12): erase a turn and no text of it
survives in any thought resting on it, directly, through a fact, through a merge or
through another thought: not in records, history, exports, the keyword index, nor (SQLite)
the database files after compact(); on PostgreSQL, in no table. Thoughts resting only on
what is left stay."""

from __future__ import annotations

import pytest
from test_derivation_rule import everything_readable, leaked_windows, postgres_texts, private_terms, sqlite_index_terms

from engramdb import Config, Memory
from engramdb.providers.fake import FakeEmbedder

pytestmark = pytest.mark.distill

USER = "alice"
SECRET = "My dog Bluebird Falcon Nine loves the Atacama desert, I adopted him there last spring"
OTHER = "I work as an engineer at a rocket company in Santiago"


def build(mem: Memory) -> dict[str, str]:
    """Thoughts on the secret turn every way one can rest on it; returns their ids by name."""
    secret, other = mem.add([{"content": SECRET, "id": "m1"}, {"content": OTHER, "id": "m2"}], user_id=USER).records
    assert mem.flush(60)
    facts = [r for r in mem.list(user_id=USER) if r.kind != "turn" and "m1" in r.sources]
    quoted = mem.think("Alice's secret project codename is Bluebird Falcon Nine launching from the Atacama desert",
                       user_id=USER, sources=[secret.id, other.id])
    on_top = mem.think("Alice will be travelling to the Atacama desert for the Bluebird Falcon Nine launch",
                       user_id=USER, sources=[quoted.id])
    absorbed = mem.think("Alice builds rockets and keeps the Bluebird Falcon Nine codename secret at work",
                         user_id=USER, sources=[secret.id])
    survivor = mem.think("Alice builds rockets and keeps the Bluebird Falcon Nine codename secret at work now",
                         user_id=USER, sources=[other.id])
    assert facts, "the secret turn was distilled into facts a thought can rest on"
    kept = mem.think("Alice is an engineer who lives near Santiago", user_id=USER, sources=[other.id])
    ids = {"secret": secret.id, "quoted": quoted.id, "on_top": on_top.id, "absorbed": absorbed.id,
           "survivor": survivor.id, "kept": kept.id}
    ids["on_fact"] = mem.think("Alice's codename Bluebird Falcon Nine hints at a ninth rocket design",
                               user_id=USER, sources=[facts[0].id]).id
    assert mem.get(absorbed.id).valid_to is not None  # merged into the survivor
    return ids


def check_gone(mem: Memory, ids: dict[str, str]) -> None:
    left = {r.id for r in mem.list(user_id=USER, include_retired=True)}
    assert ids["kept"] in left
    assert not left & {ids[k] for k in ids if k != "kept"}


@pytest.mark.parametrize("how", ["delete", "forget_session"])
def test_an_erased_turn_leaves_no_text_in_any_thought_sqlite(tmp_path, how):
    path = tmp_path / "e.db"
    config = Config(extractor="offline")
    with Memory(path, embedder=FakeEmbedder(), config=config) as mem:
        if how == "delete":
            ids = build(mem)
            mem.delete(ids["secret"])
        else:
            (turn,) = mem.add({"content": OTHER, "id": "m2"}, user_id=USER, session_id="keep").records
            secret = mem.add({"content": SECRET, "id": "m1"}, user_id=USER, session_id="gone").records[0]
            assert mem.flush(60)
            ids = {"kept": mem.think("Alice is an engineer who lives near Santiago", user_id=USER,
                                     sources=[turn.id]).id,
                   "quoted": mem.think("Alice's codename is Bluebird Falcon Nine, launching from the Atacama",
                                       user_id=USER, sources=[secret.id, turn.id]).id}
            mem.forget(user_id=USER, session_id="gone")
        assert mem.flush(60)
        check_gone(mem, ids)
        surviving = [r.text for r in mem.list(user_id=USER) if r.kind == "turn"]
        assert surviving == [OTHER]
        readable = everything_readable(mem, tmp_path / "export.jsonl")
        mem.compact()
    assert leaked_windows(SECRET, surviving, readable) == []
    assert "Bluebird" not in readable and "Atacama" not in readable  # no thought quoting it, in any state
    files = "\n".join(p.read_bytes().decode("latin-1") for p in tmp_path.iterdir()
                      if p.is_file() and not p.name.endswith(".jsonl"))
    assert leaked_windows(SECRET, surviving, files) == [] and "Bluebird" not in files
    assert not private_terms(SECRET, surviving) & sqlite_index_terms(path)


def test_an_erased_turn_leaves_no_text_in_any_thought_postgresql(pg_url, tmp_path):
    with Memory(pg_url, embedder=FakeEmbedder(), config=Config(extractor="offline")) as mem:
        ids = build(mem)
        mem.delete(ids["secret"])
        assert mem.flush(60)
        check_gone(mem, ids)
        surviving = [r.text for r in mem.list(user_id=USER) if r.kind == "turn"]
        readable = everything_readable(mem, tmp_path / "export.jsonl")
        mem.compact()
        held = postgres_texts(mem.store, mem.store.schema)
    assert surviving == [OTHER]
    for text in (readable, held):
        assert leaked_windows(SECRET, surviving, text) == []
        assert "Bluebird" not in text and "Atacama" not in text
