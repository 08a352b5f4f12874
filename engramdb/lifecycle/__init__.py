"""The lifecycle of derived memories: what an erasure or an update of a source does to
what was derived from it (the derivation rule), decided by pure policy (`policy.py`) and
carried out through a store's transaction (`engine.py` over `LifecycleTx`)."""

from .engine import LifecycleTx, erase, outdate
from .policy import Link

__all__ = ["LifecycleTx", "Link", "erase", "outdate"]
