"""Engram as a service: a REST API and an MCP server over the same `Memory` core.

    engram keys create --tenant acme      # a key, shown once
    engram serve                          # REST under /v1 and MCP at /mcp, on 127.0.0.1:8765

The web stack (FastAPI, uvicorn, the MCP SDK) is the optional extra `engramdb[server]`;
`keys.py` and `tenants.py` need none of it. Nothing here is imported by `import engramdb`.
"""

from __future__ import annotations

from ..errors import MissingDependencyError

SERVER_EXTRA = "pip install 'engramdb[server]'"


def require_server_deps() -> None:
    """Fail with the pip line when the `server` extra is not installed."""
    import importlib.util

    missing = [name for name in ("fastapi", "uvicorn", "mcp", "pydantic") if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingDependencyError(f"the server needs {', '.join(missing)}: {SERVER_EXTRA}")
