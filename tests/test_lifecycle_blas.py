"""The notes lane's matrix products on one OpenBLAS thread (lifecycle/blas.py): the
process's count is lowered inside `one_thread()` and put back after, errors included."""

from __future__ import annotations

import pytest

from engramdb.lifecycle import blas


def test_the_loaded_openblas_is_found_in_the_memory_map(tmp_path):
    maps = tmp_path / "maps"
    maps.write_text(
        "7f0000000000-7f0000001000 r-xp 00000000 08:01 123 /venv/numpy.libs/libscipy_openblas64_-32a4b2a6.so\n"
        "7f0000001000-7f0000002000 r--p 00000000 08:01 124 /usr/lib/libc.so.6\n"
        "7f0000002000-7f0000003000 rw-p 00000000 00:00 0 \n"
        "7f0000003000-7f0000004000 r-xp 00000000 08:01 125 /usr/lib/libopenblasp-r0.3.21.so\n"
        "7f0000004000-7f0000005000 r-xp 00000000 08:01 123 /venv/numpy.libs/libscipy_openblas64_-32a4b2a6.so\n")
    assert blas.loaded_openblas(maps) == ["/usr/lib/libopenblasp-r0.3.21.so",
                                          "/venv/numpy.libs/libscipy_openblas64_-32a4b2a6.so"]
    assert blas.loaded_openblas(tmp_path / "absent") == []


def test_one_thread_inside_and_the_count_put_back_after():
    controls = blas._controls()
    if not controls:
        pytest.skip("NumPy's BLAS here is no OpenBLAS this module can find")
    (get, set_), *_ = controls
    before = get()
    with blas.one_thread() as found:
        assert found and get() == 1
    assert get() == before
    with pytest.raises(RuntimeError):
        with blas.one_thread():
            raise RuntimeError("a failed search")
    assert get() == before
