"""Config: defaults declared once, TOML files, ENGRAM_* variables, coercion, errors."""

from __future__ import annotations

import dataclasses

import pytest

from engramdb import Config, ConfigError, InvalidInputError, Memory
from engramdb.providers import make_embedder
from engramdb.providers.fake import FakeEmbedder


def test_defaults():
    config = Config()
    assert config.store is None
    assert config.embedder == "minilm"
    assert config.embedder_base_url is None and config.embedder_api_key is None
    assert config.max_message_chars == 100_000
    assert config.max_limit == 1_000
    assert config.rrf_k == 10 and config.candidates == 100
    assert config.busy_timeout_ms == 60_000
    assert Config.load(environ={}) == config  # nothing set: the defaults


def test_frozen_and_replace():
    config = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.candidates = 5  # type: ignore[misc]
    changed = config.replace(candidates=7)
    assert changed.candidates == 7 and config.candidates == 100
    with pytest.raises(ConfigError):
        config.replace(candidates=0)


def test_load_toml_with_engram_table(tmp_path):
    path = tmp_path / "engram.toml"
    path.write_text(
        '[engram]\nstore = "sqlite:///tmp/x.db"\nembedder = "fake"\ncandidates = 50\nembedder_timeout_s = 2.5\n'
        '\n[server]\nport = 8080\n'
    )
    config = Config.load(path, environ={})
    assert config.store == "sqlite:///tmp/x.db"
    assert config.embedder == "fake"
    assert config.candidates == 50
    assert config.embedder_timeout_s == 2.5
    assert config.rrf_k == 10  # untouched keys keep their defaults


def test_load_flat_toml(tmp_path):
    path = tmp_path / "flat.toml"
    path.write_text('embedder = "openai:text-embedding-3-small"\nmax_limit = 20\n')
    config = Config.load(str(path), environ={})
    assert config.embedder == "openai:text-embedding-3-small"
    assert config.max_limit == 20


def test_config_path_from_environment(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[engram]\nrrf_k = 30\n")
    assert Config.load(environ={"ENGRAM_CONFIG": str(path)}).rrf_k == 30


def test_environment_overrides_toml_and_is_coerced(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[engram]\ncandidates = 50\nembedder = "fake"\nrrf_k = 30\n')
    environ = {
        "ENGRAM_CANDIDATES": "75",
        "ENGRAM_EMBEDDER_TIMEOUT_S": "1.5",
        "ENGRAM_EMBEDDER_API_KEY": "",
        "ENGRAM_STORE": "/data/engram.db",
        "ENGRAM_NOT_A_SETTING": "ignored",
        "OTHER_CANDIDATES": "1",
    }
    config = Config.load(path, environ=environ)
    assert config.candidates == 75 and isinstance(config.candidates, int)
    assert config.embedder_timeout_s == 1.5
    assert config.embedder_api_key is None  # empty optional string means unset
    assert config.store == "/data/engram.db"
    assert config.embedder == "fake" and config.rrf_k == 30  # from the file


def test_from_mapping_coerces_strings():
    config = Config.from_mapping({"max_limit": "5", "embedder_timeout_s": "3", "embedder_base_url": ""})
    assert config.max_limit == 5
    assert config.embedder_timeout_s == 3.0
    assert config.embedder_base_url is None


@pytest.mark.parametrize(
    "values",
    [
        {"candidates": 0},
        {"candidates": -3},
        {"candidates": "many"},
        {"candidates": "2.5"},
        {"candidates": 2.5},
        {"candidates": True},
        {"embedder_timeout_s": "soon"},
        {"embedder_timeout_s": 0.0},
        {"embedder": ""},
        {"embedder": 5},
        {"store": 5},
        {"embedder_base_url": ["http://x"]},
        {"unknown_key": 1},
        {"Candidates": 5},
    ],
)
def test_bad_values(values):
    with pytest.raises(ConfigError):
        Config.from_mapping(values)


def test_bad_environment_value():
    with pytest.raises(ConfigError, match="max_limit"):
        Config.load(environ={"ENGRAM_MAX_LIMIT": "lots"})
    with pytest.raises(ConfigError):
        Config.load(environ={"ENGRAM_MAX_LIMIT": "0"})


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        Config.load(tmp_path / "nope.toml", environ={})
    broken = tmp_path / "broken.toml"
    broken.write_text("[engram]\ncandidates = = 3\n")
    with pytest.raises(ConfigError, match="TOML"):
        Config.load(broken, environ={})
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError):
        Config.load(binary, environ={})
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[engram]\ncandidatez = 3\n")
    with pytest.raises(ConfigError, match="candidatez"):
        Config.load(unknown, environ={})


def test_config_drives_memory(tmp_path):
    config = Config.from_mapping({"store": str(tmp_path / "from-config.db"), "embedder": "fake:16", "max_limit": "3"})
    with Memory(config=config) as memory:
        memory.add(["a", "b", "c", "d"], user_id="alice")
        assert memory.embedder.dim == 16 and memory.embedder.name == "fake-hash-16"
        assert len(memory.list(user_id="alice", limit=3)) == 3
        with pytest.raises(InvalidInputError, match="between 1 and 3"):
            memory.list(user_id="alice", limit=4)
    assert (tmp_path / "from-config.db").exists()


def test_embedder_registry():
    assert isinstance(make_embedder(Config(embedder="fake")), FakeEmbedder)
    assert make_embedder(Config(embedder="fake:8")).dim == 8
    for name in ("nope", "openai:", "minilm2"):
        with pytest.raises(ConfigError):
            make_embedder(Config(embedder=name))


def test_extract_processes_is_a_positive_integer():
    from engramdb.errors import ConfigError

    assert Config().extract_processes == 2
    assert Config(extract_processes=1).extract_processes == 1
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigError):
            Config(extract_processes=bad)
