"""Reading a profile through the store: the memories true now (or at `as_of`, the same
condition search and list use), page by page, handed to the pure `profile.build`."""

from __future__ import annotations

from ..stores.base import Store
from ..stores.filters import Condition, current, valid_at
from ..types import Profile, Scope
from .profile import PROFILE_KINDS, build, tokens

PAGE = 2_000
MIN_PROFILE_TOKENS = 24  # a smaller share of a recall() budget holds no useful profile: none is shown


def read_profile(store: Store, scope: Scope, *, budget_tokens: int, as_of: str | None, now: str) -> Profile:
    conditions = [Condition("kind", "in", list(PROFILE_KINDS)), valid_at(as_of) if as_of is not None else current()]
    records = []
    while True:
        page = store.list(scope, conditions, PAGE, len(records))
        records += page
        if len(page) < PAGE:
            break
    return build(records, user_id=scope.user_id, agent_id=scope.agent_id, as_of=as_of, now=as_of or now,
                 budget_tokens=budget_tokens)


def profile_share(budget_tokens: int, cap: int, keep: int) -> int:
    """The tokens of a recall() budget the profile may take: at most `cap`, at most half
    of what is left above the `keep` tokens the rest of the block needs; 0: none."""
    share = min(cap, (budget_tokens - keep) // 2)
    return share if share >= MIN_PROFILE_TOKENS else 0


def profile_cost(text: str) -> int:
    """The tokens a profile's text costs at the head of a block (its line break included)."""
    return tokens(text + "\n")
