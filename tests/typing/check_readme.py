"""Type-check (and optionally run) the Python examples of README.md and docs/*.md.

    python tests/typing/check_readme.py          # mypy --strict on every checked block
    python tests/typing/check_readme.py --run    # also run every page's examples on SQLite

The static step of .ci/run.  The rules (markers ``<!-- typecheck: prelude|file PATH|shell|skip
REASON -->``) are in tests/doc_examples.py and docs/development.md; tests/test_docs_examples.py
runs the same checks, and the examples on PostgreSQL too, in the test suite.

Exits nonzero if a marker is unknown, mypy reports an error or a run example fails.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: find tests.doc_examples

from tests import doc_examples as ex  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="store_true", help="also run the examples (on SQLite)")
    args = parser.parse_args()
    try:
        pages = {source: ex.blocks(source) for source in ex.SOURCES}
    except ValueError as err:
        print(err, file=sys.stderr)
        return 2
    found = [b for page in pages.values() for b in page]
    checked = [b for b in found if b.kind in ("complete", "prelude", "file")]
    with tempfile.TemporaryDirectory() as tmp:
        print(f"type-checking {len(checked)} python blocks of {len(pages)} files "
              f"({sum(b.kind == 'skip' for b in found)} skipped)")
        status, output = ex.typecheck(found, Path(tmp))
        print(output, end="")
        if args.run:
            for source, page in pages.items():
                failures = ex.run_page(page, None, Path(tmp) / f"run_{source.stem}")
                print(f"{source.relative_to(ex.ROOT)}: {'FAILED' if failures else 'ok'}")
                for failure in failures:
                    print(failure, file=sys.stderr)
                status = status or (1 if failures else 0)
    return status


if __name__ == "__main__":
    sys.exit(main())
