"""Tenants: one store URL, one tenant's data per store, nothing reachable across."""

from __future__ import annotations

import pytest

from engramdb import Memory
from engramdb.errors import InvalidInputError, NotFoundError
from engramdb.stores import tenant_slug


def test_tenants_sharing_a_url_see_nothing_of_each_other(db_path, fake_embedder):
    with Memory(db_path, embedder=fake_embedder, tenant="acme") as acme, \
            Memory(db_path, embedder=fake_embedder, tenant="globex") as globex, \
            Memory(db_path, embedder=fake_embedder) as untenanted:
        added = acme.add("the vault code is 4711", user_id="alice")
        memory_id = added.ids[0]
        assert [h.id for h in acme.search("vault code", user_id="alice")] == [memory_id]
        # Same user id, every read path, in another tenant and in the untenanted store.
        for other in (globex, untenanted):
            assert other.search("vault code", user_id="alice") == []
            assert other.list(user_id="alice") == []
            with pytest.raises(NotFoundError):
                other.get(memory_id)
            with pytest.raises(NotFoundError):
                other.history(memory_id)
            with pytest.raises(NotFoundError):
                other.delete(memory_id)
        assert acme.get(memory_id).text == "the vault code is 4711"


def test_tenant_names_become_opaque_slugs():
    assert tenant_slug("acme") == tenant_slug("acme")
    assert tenant_slug("acme") != tenant_slug("Acme")
    assert tenant_slug("../../etc").startswith("t_") and "/" not in tenant_slug("../../etc")
    with pytest.raises(InvalidInputError):
        tenant_slug("")
