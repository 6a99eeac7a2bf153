"""Build hook: compile the per-object hot paths with mypyc where a C compiler is available.

Everything else about the package is in pyproject.toml. The modules come from
aiouow/_compiled.py. Each extension is optional: if a module fails to compile (no C compiler,
no Python headers) the install goes on and that module stays pure Python, which behaves the
same. AIOUOW_PURE_PYTHON=1 skips compiling altogether; AIOUOW_COMPILE_ONLY=a.py,b.py (paths as
in COMPILED_SOURCES) compiles only those, for benchmarks/compiled.py's per-module figures.
"""

from __future__ import annotations

import os
import runpy
import sys
from typing import Any

from setuptools import setup

_compiled = runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "aiouow", "_compiled.py"))


def _extensions() -> list[Any]:
    if _compiled["pure_python_requested"]():
        print("aiouow: AIOUOW_PURE_PYTHON is set; building pure Python", file=sys.stderr)
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("aiouow: mypyc is not available; building pure Python", file=sys.stderr)
        return []
    sources = list(_compiled["COMPILED_SOURCES"])
    only = os.environ.get("AIOUOW_COMPILE_ONLY", "")
    if only:
        sources = [s for s in sources if s in only.split(",")]
    # --ignore-missing-imports: the isolated build environment has mypy but not the runtime
    # dependencies (asyncpg, aiosqlite, anyio); their types only matter to the type check.
    extensions = mypycify(
        ["--ignore-missing-imports", *sources], opt_level="3", debug_level="0", group_name="aiouow"
    )
    for extension in extensions:
        extension.optional = True  # a failed compile leaves that module pure Python
    return list(extensions)


setup(ext_modules=_extensions())
