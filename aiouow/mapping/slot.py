"""The state slot every mapped object has (see :mod:`aiouow.mapping.state`).

A module of its own, never compiled: ``Model`` (an interpreted class) derives from
:class:`StateSlot`, and the slot's descriptor methods are bound here once so that the hot loops
of compiled and pure modules alike read and write it without a Python-level call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .state import InstanceState, SessionToken


class StateSlot:
    """Declares the state slot; ``Model`` derives from it."""

    __slots__ = ("_aiouow_state",)


_slot = StateSlot.__dict__["_aiouow_state"]
#: the slot as it is, an InstanceState or a SessionToken, read without a Python-level call; typed
#: Any because the hot loops that use it tell the two apart inline (``st.__class__ is InstanceState``)
get_slot: Callable[[Any], Any] = _slot.__get__
#: store an InstanceState or a SessionToken in the slot
set_slot: Callable[[Any, InstanceState | SessionToken], None] = _slot.__set__
