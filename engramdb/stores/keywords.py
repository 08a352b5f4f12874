"""What a keyword query is made of, the same on every backend: its words, lowercased and
deduplicated, with the words too common to help BM25 rank dropped unless all are.

Each store quotes these words in its own query language (FTS5 phrases for SQLite,
tsquery terms for PostgreSQL); nothing here knows either."""

from __future__ import annotations

import re

_WORD = re.compile(r"\w+", re.UNICODE)
# Words too common to help BM25 rank; dropped from keyword queries that have others.
STOPWORDS = frozenset(
    "a an and are as at be but by did do does for from had has have he her his how i if in into is it its "
    "me my of on or our she so than that the their them then there these they this to was we were what "
    "when where which who whom why will with would you your".split()
)
# Keyword search ranks at most about this many of a user's matching rows (each store's
# bounded keyword search says how).
KEYWORD_WINDOW = 2_000
MAX_QUERY_WORDS = 64


def query_words(text: str) -> list[str]:
    """The query's distinct words (\\w+, lowercased, in order, at most MAX_QUERY_WORDS);
    stopwords dropped unless all are, so a long natural question still matches and a
    query of stopwords alone still asks for them. A word holds no quote, backslash or
    operator of either query language."""
    words = [w.lower() for w in _WORD.findall(text)]
    kept = [w for w in words if w not in STOPWORDS] or words
    return list(dict.fromkeys(kept))[:MAX_QUERY_WORDS]
