"""Options of the test suite, in the rootdir so that pytest reads them before the command line.

pytest parses the command line before it loads ``tests/conftest.py``, and takes an unknown
option's value for a test path: ``--reliability-report docs/RELIABILITY.md`` would, once that
file exists, make pytest look for tests in ``docs/`` and then refuse the option.  The rootdir's
``conftest.py`` is loaded first, whatever the arguments.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--reliability-report", dest="reliability_report", default=None, metavar="PATH",
                     help="write the figures the reliability tests record to PATH (docs/RELIABILITY.md)")
