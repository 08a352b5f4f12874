"""A background lane's matrix products on one BLAS thread.

NumPy's OpenBLAS splits a product over every core and then keeps its threads spinning,
waiting for the next one. The notes lane's product (a round's memories against the
user's vectors) is small and comes once a round, so on a small machine those threads
mostly spin: making the notes of a 5,000-turn store again took 30.2 s of process CPU
with OpenBLAS's threads and 14.6 s on one (docs/benchmarks.md, the lifecycle at scale).

OpenBLAS's thread count is the process's (its `_local` setter, tried, changed it for
every thread): `one_thread()` lowers it for the product and puts it back after, as
threadpoolctl does for scikit-learn; a product another thread runs meanwhile runs on
one thread too. Another BLAS, or none found (not Linux): nothing changes."""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

MAPS = Path("/proc/self/maps")
_LOCK = threading.Lock()


def loaded_openblas(maps: Path = MAPS) -> list[str]:
    """Paths of the OpenBLAS libraries this process has loaded (Linux), NumPy's among them."""
    try:
        lines = maps.read_text().splitlines()
    except OSError:
        return []
    paths = (parts[5] for line in lines if len(parts := line.split(None, 5)) == 6)
    return sorted({p for p in paths if "openblas" in Path(p).name.lower() and ".so" in Path(p).name})


@lru_cache(maxsize=1)
def _controls() -> tuple[tuple[Any, Any], ...]:
    """(get, set) of each loaded OpenBLAS's thread count, under the names its builds
    export (NumPy's wheels: scipy_openblas_…64_)."""
    import numpy  # noqa: F401  (loads NumPy's OpenBLAS, if it has one)

    out = []
    for path in loaded_openblas():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_", ""):
            for suffix in ("64_", "_64", ""):
                getter = getattr(lib, f"{prefix}openblas_get_num_threads{suffix}", None)
                setter = getattr(lib, f"{prefix}openblas_set_num_threads{suffix}", None)
                if getter is not None and setter is not None:
                    getter.argtypes, getter.restype = [], ctypes.c_int
                    setter.argtypes, setter.restype = [ctypes.c_int], None
                    out.append((getter, setter))
                    break
            else:
                continue
            break
    return tuple(out)


@contextmanager
def one_thread() -> Iterator[bool]:
    """Run the products inside on one OpenBLAS thread; yields whether one was found."""
    controls = _controls()
    if not controls:
        yield False
        return
    with _LOCK:
        before = [get() for get, _ in controls]
        for _, set_ in controls:
            set_(1)
        try:
            yield True
        finally:
            for (_, set_), count in zip(controls, before):
                set_(count)
