"""`collector_paused` turns automatic cyclic collection off inside and restores the state after."""

from __future__ import annotations

import gc

import pytest

from rag_app.util.collector import collector_paused


def test_the_collector_is_off_inside_and_back_on_after_a_normal_exit_and_an_error() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(KeyError), collector_paused():
        raise KeyError("boom")
    assert gc.isenabled()


def test_a_collector_already_off_stays_off_and_nesting_keeps_it_off_to_the_outer_exit() -> None:
    with collector_paused():
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
