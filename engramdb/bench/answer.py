"""Answer LoCoMo's questions with an LLM from what `Memory.recall` gives back, and score
the answers as LoCoMo does (token F1, Porter-stemmed) and as an LLM judge does.

The F1 follows LoCoMo's task_eval/evaluation.py: answers lower-cased, punctuation,
articles and "and" removed, tokens Porter-stemmed; multi-hop (category 1) answers are
split at commas and each gold part takes its best predicted part; for open-domain
(category 3) only the gold answer before the first ';' counts."""

from __future__ import annotations

import json
import re
import string
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import MissingDependencyError, ProviderError
from ..memory import Memory
from ..providers.chat import ChatClient
from .locomo import CATEGORIES, Conversation, Question
from .stats import latency_summary

ANSWER_SYSTEM = (
    "You answer questions about a person's past conversations, using only the memories given. "
    "Each session is headed by its date; resolve relative dates ('yesterday', 'last week') against it "
    "and answer with absolute dates. Answer in as few words as possible (a name, a date, a short phrase; "
    "list several items separated by commas). If the memories do not say, answer: unknown."
)
JUDGE_SYSTEM = (
    "You grade an answer to a question about a conversation against the gold answer. Be generous: the "
    "answer is CORRECT if it refers to the same thing as the gold answer, even if worded differently, "
    "longer, or with a date in another format; it is WRONG if it misses or contradicts it. "
    'Reply with JSON only: {"label": "CORRECT"} or {"label": "WRONG"}.'
)


@dataclass(frozen=True)
class Answered:
    category: int
    f1: float
    correct: bool | None  # None: the judge's reply could not be read
    context_tokens: int
    prompt_tokens: int
    completion_tokens: int
    seconds: float


def normalize_answer(text: str) -> str:
    text = text.replace(",", "").lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the|and)\b", " ", text)
    return " ".join(text.split())


def _stemmer():
    try:
        from nltk.stem import PorterStemmer
    except ImportError as exc:  # pragma: no cover - nltk comes with the bench extra
        raise MissingDependencyError("LoCoMo's F1 needs nltk's Porter stemmer: pip install 'engramdb[bench]'") from exc
    return PorterStemmer()


def token_f1(prediction: str, gold: str) -> float:
    stem = _stemmer().stem
    predicted = [stem(w) for w in normalize_answer(prediction).split()]
    wanted = [stem(w) for w in normalize_answer(gold).split()]
    same = sum((Counter(predicted) & Counter(wanted)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(wanted)
    return 2 * precision * recall / (precision + recall)


def locomo_f1(prediction: str, gold: str, category: int) -> float:
    if category == 3:
        gold = gold.split(";")[0].strip()
    if category == 1:
        parts = [p.strip() for p in prediction.split(",")]
        return float(np.mean([max(token_f1(p, g.strip()) for p in parts) for g in gold.split(",")]))
    return token_f1(prediction, gold)


def read_label(reply: str) -> bool | None:
    """The judge's verdict: JSON {"label": ...} or, failing that, the bare word."""
    match = re.search(r"\{.*\}", reply, re.S)
    if match:
        try:
            label = str(json.loads(match.group(0)).get("label", "")).upper()
            if label in ("CORRECT", "WRONG"):
                return label == "CORRECT"
        except (ValueError, AttributeError):
            pass
    words = set(re.findall(r"\b(CORRECT|WRONG)\b", reply.upper()))
    return None if len(words) != 1 else words == {"CORRECT"}


def answer_one(mem: Memory, chat: ChatClient, judge: ChatClient, conv: Conversation, q: Question,
               budget: int) -> Answered:
    block = mem.recall(q.text, user_id=conv.sample_id, budget_tokens=budget)
    reply = chat.complete([
        {"role": "system", "content": ANSWER_SYSTEM},
        {"role": "user", "content": f"Memories:\n{block.text}\n\nQuestion: {q.text}\nAnswer:"},
    ])
    prediction = reply.text.strip()
    verdict = judge.complete([
        {"role": "system", "content": JUDGE_SYSTEM},
        {"role": "user", "content": f"Question: {q.text}\nGold answer: {q.answer}\nAnswer: {prediction}"},
    ])
    return Answered(
        category=q.category, f1=locomo_f1(prediction, q.answer, q.category), correct=read_label(verdict.text),
        context_tokens=len(block.text) // 4, prompt_tokens=reply.prompt_tokens,
        completion_tokens=reply.completion_tokens, seconds=reply.seconds,
    )


def evaluate(mem: Memory, questions: Sequence[tuple[Conversation, Question]], *, chat: ChatClient,
             judge: ChatClient, budget: int) -> dict[str, Any]:
    """F1 and judge accuracy per category and overall, with tokens and answer latency.
    A question whose LLM call fails is counted as failed, not as wrong."""
    done: list[Answered] = []
    failed = 0
    for conv, q in questions:
        try:
            done.append(answer_one(mem, chat, judge, conv, q, budget))
        except ProviderError:
            failed += 1
    by_cat: dict[str, list[Answered]] = defaultdict(list)
    for item in done:
        by_cat[CATEGORIES[item.category]].append(item)
        by_cat["overall"].append(item)
    return {
        "budget_tokens": budget,
        "answered": len(done),
        "failed": failed,
        "metrics": {cat: _summary(items) for cat, items in by_cat.items()},
        "answer_latency_ms": latency_summary([a.seconds for a in done]) if done else {},
    }


def _summary(items: list[Answered]) -> dict[str, Any]:
    judged = [a.correct for a in items if a.correct is not None]
    return {
        "n": len(items),
        "f1": round(float(np.mean([a.f1 for a in items])), 3),
        "judge_accuracy": round(float(np.mean(judged)), 3) if judged else None,
        "unjudged": len(items) - len(judged),
        "context_tokens": round(float(np.mean([a.context_tokens for a in items]))),
        "prompt_tokens": round(float(np.mean([a.prompt_tokens for a in items]))),
        "completion_tokens": round(float(np.mean([a.completion_tokens for a in items])), 1),
    }
