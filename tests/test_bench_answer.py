"""`engram bench locomo --llm-base-url`: answers from recall(), scored with LoCoMo's F1 and
an LLM judge, against a real OpenAI-compatible chat server on 127.0.0.1 (scripted)."""

from __future__ import annotations

import json
import re
from contextlib import contextmanager

import pytest
from click.testing import CliRunner

from engramdb.bench.answer import locomo_f1, normalize_answer, read_label, token_f1
from engramdb.bench.cli import bench
from engramdb.errors import ProviderError
from engramdb.providers.chat import ChatClient

from http_stub import chat_completion, json_server
from test_bench_smoke import _tiny_locomo

@contextmanager
def chat_server(mode: str = "ok", gold: dict[str, str] | None = None):
    """Answers a LoCoMo question with its gold answer only when the memories in the
    prompt hold it (so the score depends on what recall() gave), judges by comparison."""
    requests: list[dict] = []

    def respond(path: str, body: dict) -> tuple[int, object]:
        requests.append({"path": path, "body": body})
        if mode == "down":
            return 503, {"error": {"message": "loading"}}
        prompt = body["messages"][-1]["content"]
        if "Gold answer:" in prompt:
            expected = re.search(r"Gold answer: (.*)\n", prompt).group(1)
            answer = prompt.rsplit("Answer: ", 1)[1]
            text = json.dumps({"label": "CORRECT" if answer.lower() == expected.lower() else "WRONG"})
        else:
            question = re.search(r"Question: (.*)\n", prompt).group(1)
            known = (gold or {}).get(question, "unknown")
            text = known if known in prompt.split("Question:")[0] else "I do not know"
        return 200, chat_completion(text, prompt_tokens=len(prompt) // 4, completion_tokens=3)

    with json_server(respond) as url:
        yield url, requests


def test_locomo_f1_follows_the_reference_scoring():
    assert normalize_answer("The cat, and a Dog!") == "cat dog"
    assert token_f1("7 May 2023", "May 7, 2023") == 1.0
    assert token_f1("running shoes", "run") == pytest.approx(2 * 0.5 * 1 / 1.5)  # stems match
    assert token_f1("Paris", "Berlin") == 0.0
    assert token_f1("", "Berlin") == 0.0
    # multi-hop: each gold part takes its best predicted part
    assert locomo_f1("painting, hiking", "hiking, painting, swimming", 1) == pytest.approx(2 / 3)
    # open-domain: only the gold answer before ';'
    assert locomo_f1("likely yes", "likely yes; because she said so", 3) == 1.0


def test_judge_labels_are_read_tolerantly():
    assert read_label('{"label": "CORRECT"}') is True
    assert read_label('Sure: ```json\n{"label": "WRONG"}\n```') is False
    assert read_label("CORRECT") is True
    assert read_label("CORRECT or WRONG, hard to say") is None
    assert read_label("no idea") is None


def test_bench_locomo_answers_from_recall_and_scores_them(tmp_path):
    data = _tiny_locomo(tmp_path / "locomo.json")
    gold = {qa["question"]: qa["answer"] for sample in json.loads(data.read_text()) for qa in sample["qa"]
            if qa["category"] != 5}
    with chat_server(gold=gold) as (url, requests):
        result = CliRunner().invoke(bench, [
            "locomo", "--locomo", str(data), "--embedder", "fake", "--store", str(tmp_path / "l.db"),
            "--llm-base-url", url, "--llm-model", "scripted", "--json",
        ])
        assert result.exit_code == 0, result.output
    answers = json.loads(result.stdout)["answers"]
    assert answers["answered"] == 6 and answers["failed"] == 0
    overall = answers["metrics"]["overall"]
    # Every evidence turn is in the recalled block (small memories come back whole), so
    # the scripted model finds the gold answer in its prompt every time.
    assert overall["f1"] == 1.0 and overall["judge_accuracy"] == 1.0
    assert overall["context_tokens"] > 0 and overall["prompt_tokens"] > overall["context_tokens"] // 2
    assert {r["body"]["model"] for r in requests} == {"scripted"}
    answering = [r for r in requests if "Memories:" in r["body"]["messages"][-1]["content"]]
    assert len(answering) == 6
    assert all("Rex1" in r["body"]["messages"][-1]["content"] for r in answering)
    assert set(answers["metrics"]) == {"overall", "multi-hop", "temporal", "single-hop"}


def test_answer_count_and_a_dead_server_are_reported_not_fatal(tmp_path):
    data = _tiny_locomo(tmp_path / "locomo.json")
    with chat_server("down") as (url, _):
        result = CliRunner().invoke(bench, [
            "locomo", "--locomo", str(data), "--embedder", "fake", "--store", str(tmp_path / "l.db"),
            "--llm-base-url", url, "--llm-model", "scripted", "--answer-questions", "2",
        ])
    assert result.exit_code == 0, result.output
    assert "0 answered, 2 failed" in result.stdout
    missing = CliRunner().invoke(bench, ["locomo", "--locomo", str(data), "--llm-base-url", "http://127.0.0.1:9/v1"])
    assert missing.exit_code != 0 and "--llm-model" in missing.output


def test_chat_client_errors_are_typed():
    with chat_server("down") as (url, _):
        with pytest.raises(ProviderError, match="503"):
            ChatClient("m", base_url=url).complete([{"role": "user", "content": "hi"}])
    with pytest.raises(ProviderError, match="unreachable"):
        ChatClient("m", base_url="http://127.0.0.1:9/v1", timeout_s=2).complete([{"role": "user", "content": "hi"}])
