"""Answer LoCoMo's questions with an LLM from three contexts of the same budget, and score
the answers as LoCoMo does (token F1, Porter-stemmed) and as an LLM judge does.

The rows differ only in what the reader is shown: "oracle", the question's evidence
turns alone; "bm25", BM25's turns over the same store in its rank order; "engram",
Engram's block (`Memory.context()`). The oracle and BM25 rows show plain dated lines,
'[1:56 pm on 8 May, 2023] Caroline: text', the session's date as LoCoMo writes it.

The F1 follows LoCoMo's task_eval/evaluation.py: answers lower-cased, punctuation,
articles and "and" removed, tokens Porter-stemmed; multi-hop (category 1) answers are
split at commas and each gold part takes its best predicted part; for open-domain
(category 3) only the gold answer before the first ';' counts."""

from __future__ import annotations

import json
import re
import string
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np

from ..clock import parse_ts
from ..errors import MissingDependencyError, ProviderError
from ..memory import Memory
from ..providers.chat import ChatClient
from . import recall
from .locomo import CATEGORIES, Conversation, Question, locomo_date
from .stats import latency_summary

ANSWER_SYSTEM = (
    "You answer questions about a person's past conversations, using only the memories given. "
    "Each memory is dated by when it was said (a line's own date, or its session's); resolve relative dates "
    "('yesterday', 'last week') against that date and answer with absolute dates. Answer in as few words as "
    "possible (a name, a date, a short phrase; list several items separated by commas). If the memories do "
    "not say, answer: unknown."
)
# Mem0's evaluation prompt (its ACCURACY_PROMPT, shortened), in the user's turn: a 1.5B judge
# told the same in a system message called "Gastritis" against "gastritis" WRONG.
JUDGE_PROMPT = (
    "Your task is to label an answer to a question as 'CORRECT' or 'WRONG'. You will be given a question, a "
    "gold (ground truth) answer, and a generated answer.\n"
    "Be generous with your grading: as long as the generated answer touches on the same topic as the gold "
    "answer, it should be counted as CORRECT. For time-related questions, a generated answer that refers to "
    "the same date or time period as the gold answer is CORRECT, even if the format differs (e.g. 'May 7th' "
    "vs '7 May').\n\n"
    "Question: {question}\nGold answer: {gold}\nGenerated answer: {answer}\n\n"
    'Reply with JSON only: {{"label": "CORRECT"}} or {{"label": "WRONG"}}.'
)


def judge_messages(question: str, gold: str, answer: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": JUDGE_PROMPT.format(question=question, gold=gold, answer=answer)}]


@dataclass(frozen=True)
class Shown:
    """What a reader is given for one question: the text, and the LoCoMo turn ids it holds."""

    text: str
    sources: frozenset[str]


@dataclass(frozen=True)
class Answered:
    category: int
    f1: float
    correct: bool | None  # None: the judge's reply could not be read
    evidence: float  # share of the question's evidence turns in the context
    context_tokens: int
    prompt_tokens: int
    completion_tokens: int
    seconds: float  # the answer call
    context_seconds: float  # building the context


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


# -- what each row shows the reader -------------------------------------------------------


class Turns:
    """LoCoMo's turns as plain dated lines, '[1:56 pm on 8 May, 2023] Caroline: text',
    the session's date as LoCoMo writes it: what the oracle and BM25 rows show."""

    def __init__(self, conversations: Sequence[Conversation]) -> None:
        self._lines: dict[tuple[str, str], str] = {}
        for conv in conversations:
            for _, messages in conv.sessions:
                said = locomo_date(parse_ts(messages[0]["timestamp"])) if messages else ""
                for m in messages:
                    self._lines[conv.sample_id, m["id"]] = f"[{said}] {m['name']}: {m['content']}"

    def within(self, conv: Conversation, ids: Sequence[str], budget: int) -> Shown:
        """The lines of `ids`, in that order, while the text fits `budget` tokens (4
        characters a token, as the block's budget counts)."""
        lines: list[str] = []
        shown: set[str] = set()
        used = -1  # no line break before the first line
        for dia_id in ids:
            line = self._lines.get((conv.sample_id, dia_id))
            if line is None:
                continue
            if (used + 1 + len(line)) / 4 > budget:
                break
            used += 1 + len(line)
            lines.append(line)
            shown.add(dia_id)
        return Shown("\n".join(lines), frozenset(shown))


Context = Callable[[Memory, Turns, Conversation, Question, int], Shown]


def oracle(mem: Memory, turns: Turns, conv: Conversation, q: Question, budget: int) -> Shown:
    """The evidence turns alone, in the order they were said."""
    order = {m["id"]: n for n, m in enumerate(m for _, ms in conv.sessions for m in ms)}
    return turns.within(conv, sorted(q.evidence, key=lambda i: order.get(i, len(order))), budget)


def bm25(mem: Memory, turns: Turns, conv: Conversation, q: Question, budget: int) -> Shown:
    """BM25's turns in its rank order (the `bm25 (turns)` retrieval row), as plain dated lines."""
    ranked = [s for item in recall.bm25(mem, conv, q) for s in item.sources]
    return turns.within(conv, list(dict.fromkeys(ranked)), budget)


def engram(mem: Memory, turns: Turns, conv: Conversation, q: Question, budget: int) -> Shown:
    """Engram's own block: what `Memory.context()` returns."""
    block = mem.recall(q.text, user_id=conv.sample_id, budget_tokens=budget)
    return Shown(block.text, frozenset(block.sources))


CONTEXTS: dict[str, Context] = {"oracle": oracle, "bm25": bm25, "engram": engram}


def answer_one(chat: ChatClient, judge: ChatClient, q: Question, shown: Shown,
               context_seconds: float) -> tuple[Answered, dict[str, Any]]:
    """The reader's answer from `shown`, scored; and the exchange, for a transcript."""
    prompt = f"Memories:\n{shown.text}\n\nQuestion: {q.text}\nAnswer:"
    reply = chat.complete([{"role": "system", "content": ANSWER_SYSTEM}, {"role": "user", "content": prompt}])
    prediction = reply.text.strip()
    verdict = judge.complete(judge_messages(q.text, q.answer, prediction))
    answered = Answered(
        category=q.category, f1=locomo_f1(prediction, q.answer, q.category), correct=read_label(verdict.text),
        evidence=len(q.evidence & shown.sources) / len(q.evidence) if q.evidence else 0.0,
        context_tokens=len(shown.text) // 4, prompt_tokens=reply.prompt_tokens,
        completion_tokens=reply.completion_tokens, seconds=reply.seconds, context_seconds=context_seconds,
    )
    exchange = {"prompt": prompt, "prediction": prediction, "gold": q.answer, "verdict": verdict.text,
                "f1": round(answered.f1, 3), "correct": answered.correct, "evidence": answered.evidence}
    return answered, exchange


def evaluate(mem: Memory, questions: Sequence[tuple[Conversation, Question]], *, chat: ChatClient,
             judge: ChatClient, budget: int, rows: Sequence[str] = tuple(CONTEXTS),
             transcript: TextIO | None = None) -> dict[str, Any]:
    """Each question answered once per row (the same reader, prompt and budget; only the
    context differs), scored by F1 and the judge, per category and overall, with the
    share of evidence held, tokens and latency. A question whose LLM call fails is
    counted as failed in its row, not as wrong. With `transcript`, every exchange is
    written to it as a JSON line."""
    turns = Turns(list({id(c): c for c, _ in questions}.values()))
    done: dict[str, list[Answered]] = {name: [] for name in rows}
    failed = dict.fromkeys(rows, 0)
    for conv, q in questions:
        for name in rows:
            started = time.perf_counter()
            shown = CONTEXTS[name](mem, turns, conv, q, budget)
            context_seconds = time.perf_counter() - started
            try:
                answered, exchange = answer_one(chat, judge, q, shown, context_seconds)
            except ProviderError:
                failed[name] += 1
                continue
            done[name].append(answered)
            if transcript is not None:
                transcript.write(json.dumps({"row": name, "conversation": conv.sample_id, "question": q.text,
                                             "category": q.category, **exchange}) + "\n")
                transcript.flush()
    return {
        "budget_tokens": budget,
        "questions": len(questions),
        "rows": {name: _row(done[name], failed[name]) for name in rows},
    }


def _row(done: list[Answered], failed: int) -> dict[str, Any]:
    by_cat: dict[str, list[Answered]] = defaultdict(list)
    for item in done:
        by_cat["overall"].append(item)
        by_cat[CATEGORIES[item.category]].append(item)
    return {
        "answered": len(done),
        "failed": failed,
        "metrics": {cat: _summary(items) for cat, items in by_cat.items()},
        "answer_latency_ms": latency_summary([a.seconds for a in done]) if done else {},
        "context_latency_ms": latency_summary([a.context_seconds for a in done]) if done else {},
    }


def _summary(items: list[Answered]) -> dict[str, Any]:
    judged = [a.correct for a in items if a.correct is not None]
    return {
        "n": len(items),
        "f1": round(float(np.mean([a.f1 for a in items])), 3),
        "judge_accuracy": round(float(np.mean(judged)), 3) if judged else None,
        "unjudged": len(items) - len(judged),
        "evidence": round(float(np.mean([a.evidence for a in items])), 3),
        "context_tokens": round(float(np.mean([a.context_tokens for a in items]))),
        "prompt_tokens": round(float(np.mean([a.prompt_tokens for a in items]))),
        "completion_tokens": round(float(np.mean([a.completion_tokens for a in items])), 1),
    }
