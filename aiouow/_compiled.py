"""Which modules are built with mypyc, and the switch back to their pure-Python source.

``setup.py`` reads ``COMPILED_SOURCES`` (it runs this file on its own, before the package can
be imported, so the file imports nothing but the standard library). An install on a machine
with a C compiler builds those modules as C extensions next to their ``.py`` files; without a
compiler, or with ``AIOUOW_PURE_PYTHON=1`` at build time, the install is pure Python with the
same behaviour.

``AIOUOW_PURE_PYTHON=1`` at run time loads the ``.py`` source of every compiled module even
where the extensions were built: the finder installed below answers for those names before
the standard path finder would pick the extension. The choice is made once per process, as
the package is first imported: all compiled modules are one mypyc group, so mixing a
compiled and a pure copy of them in one process would make two different classes of one
name.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

__all__ = ["COMPILED", "COMPILED_SOURCES", "compiled_modules", "pure_python_requested"]

# The per-object hot paths that gain from compiling (benchmarks/RESULTS.md, "Compiled modules",
# measures each). loading/rows.py is left pure: the row filler it makes is generated source run
# through exec(), which mypyc cannot compile, and the group ran no faster with it.
COMPILED_SOURCES: tuple[str, ...] = (
    "aiouow/mapping/state.py",
    "aiouow/mapping/relationship_events.py",
    "aiouow/session/lifecycle.py",
    "aiouow/session/dependency.py",
    "aiouow/session/unitofwork.py",
    "aiouow/session/finalize.py",
)
"""Source files ``setup.py`` hands to mypyc, relative to the project root."""

COMPILED: tuple[str, ...] = tuple(p[:-3].replace("/", ".") for p in COMPILED_SOURCES)
"""Module names of ``COMPILED_SOURCES``."""


def pure_python_requested() -> bool:
    """True when ``AIOUOW_PURE_PYTHON`` is set to anything but ``""`` or ``"0"``."""
    return os.environ.get("AIOUOW_PURE_PYTHON", "") not in ("", "0")


class _SourceFinder:
    """A meta-path finder that loads the ``.py`` file of a compiled module."""

    @classmethod
    def find_spec(
        cls, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname not in COMPILED or not path:
            return None
        leaf = fullname.rpartition(".")[2]
        for entry in path:
            source = os.path.join(entry, leaf + ".py")
            if os.path.isfile(source):
                return importlib.util.spec_from_file_location(fullname, source)
        return None


def install_source_finder() -> None:
    """Put the source finder first on ``sys.meta_path`` when pure Python is requested."""
    if pure_python_requested() and _SourceFinder not in sys.meta_path:
        sys.meta_path.insert(0, _SourceFinder)


def compiled_modules() -> tuple[str, ...]:
    """The names of the modules of ``COMPILED`` that this process runs as C extensions.

    Empty for a pure-Python install or under ``AIOUOW_PURE_PYTHON=1``.
    """
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    found = []
    for name in COMPILED:
        module = sys.modules.get(name)
        if module is None:
            module = importlib.import_module(name)
        if (getattr(module, "__file__", None) or "").endswith(suffixes):
            found.append(name)
    return tuple(found)


install_source_finder()
