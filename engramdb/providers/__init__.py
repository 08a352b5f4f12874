"""Provider registry: names resolve lazily to embedders, importing only what is chosen."""

from __future__ import annotations

from ..config import Config
from ..errors import ConfigError
from .base import Embedder

__all__ = ["Embedder", "make_embedder", "EMBEDDERS"]

EMBEDDERS = ("minilm", "fake", "openai:<model>")


def make_embedder(config: Config) -> Embedder:
    """Build the embedder named by `config.embedder`."""
    name = config.embedder
    if name == "minilm":
        from .minilm import MiniLMEmbedder

        return MiniLMEmbedder(model_dir=config.model_dir_path())
    if name == "fake" or name.startswith("fake:"):
        from .fake import FakeEmbedder

        return FakeEmbedder(dim=int(name.partition(":")[2] or 64))
    if name.startswith("openai:") and name[len("openai:"):]:
        from .openai_compat import OpenAIEmbedder

        return OpenAIEmbedder(
            name[len("openai:"):],
            base_url=config.embedder_base_url,
            api_key=config.embedder_api_key,
            timeout_s=config.embedder_timeout_s,
        )
    raise ConfigError(f"unknown embedder {name!r}; choose one of {', '.join(EMBEDDERS)}")
