"""Every public name has a real docstring, as the API reference (mkdocstrings, griffe) shows them.

"Public" is computed, not listed, so that a new public name cannot slip in undocumented:

1. The public modules, :data:`PUBLIC_MODULES`: the modules that the README, the docs and the API
   contract tell users to import from.
2. Their exports: ``__all__`` where the module has one, else every non-underscore name the
   module itself defines at top level (not the names it imports).
3. The public classes: the exported classes, and, transitively, every non-underscore aiouow class
   named in the return annotation of a public function, method or property (the objects a user
   is handed: ``select()`` returns a ``Select``, ``Select.subquery()`` a ``Subquery``,
   ``User.id == 1`` a ``BinaryExpression``, and so on).
4. Their members: every non-underscore method, property and class attribute defined in the class
   body of the class or of one of its aiouow base classes, every non-underscore ``__slots__``
   entry, and every non-underscore instance attribute their ``__init__`` sets (``self.x = ...``).

A definition is documented when its own docstring (a function's or a class's, or for an
attribute the string literal right after the assignment, griffe's convention, or an entry in the
class docstring's ``Attributes:`` section) has at least two words.  Docstrings are read from the
source with :mod:`ast`, as griffe reads them.  An override without a docstring of its own
(``visit_name = "cte"``, ``result_name``, ``cache_key()``) takes the docstring of what it
overrides, as :func:`inspect.getdoc` and ``help()`` do for methods.
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import pathlib
import re
import sys
import textwrap
import types
from collections.abc import Iterator

PUBLIC_MODULES = [
    "aiouow",
    "aiouow.alembic",
    "aiouow.asgi",
    "aiouow.engine",
    "aiouow.events",
    "aiouow.exc",
    "aiouow.inspection",
    "aiouow.loading.options",  # LoaderOption, the type of selectinload()/joinedload() options
    "aiouow.mapping",
    "aiouow.pydantic",
    "aiouow.session",
    "aiouow.sql",
    "aiouow.testing",
    "aiouow.testing.plugin",  # the pytest plugin: its fixtures and options
    "aiouow.types",
]


@functools.cache
def _tree(module: str) -> ast.Module:
    # the .py file next to the module, which a mypyc build leaves beside its compiled extension
    # (inspect.getsource() cannot read an extension module)
    mod = sys.modules[module]
    path = pathlib.Path(mod.__file__ or "")
    if path.suffix != ".py":
        path = path.with_name("__init__.py" if hasattr(mod, "__path__") else module.rpartition(".")[2] + ".py")
    return ast.parse(path.read_text(encoding="utf-8"))


def _target_names(node: ast.stmt) -> list[str]:
    if isinstance(node, ast.Assign):
        return [t.id for t in node.targets if isinstance(t, ast.Name)]
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return [node.target.id]
    return []


def _body_definitions(body: list[ast.stmt]) -> dict[str, tuple[ast.stmt, str | None]]:
    """Name -> (its definition, its docstring) for the statements of a module or class body.

    The last definition wins (an ``@overload`` series ends with the implementation); a
    definition inside ``if``/``try`` at that level counts too (``if TYPE_CHECKING: ... else:``).
    """
    out: dict[str, tuple[ast.stmt, str | None]] = {}
    for i, node in enumerate(body):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if any(isinstance(d, ast.Attribute) and d.attr in ("setter", "deleter") for d in node.decorator_list):
                continue  # a property's setter: the getter's docstring is the property's
            out[node.name] = (node, ast.get_docstring(node))
        elif names := _target_names(node):
            nxt = body[i + 1] if i + 1 < len(body) else None
            doc = None
            if (isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                    and isinstance(nxt.value.value, str)):
                doc = inspect.cleandoc(nxt.value.value)
            for name in names:
                out[name] = (node, doc)
        elif isinstance(node, ast.If):
            out.update(_body_definitions(node.body))
            out.update(_body_definitions(node.orelse))
        elif isinstance(node, ast.Try):
            out.update(_body_definitions(node.body))
    return out


@functools.cache
def _module_definitions(module: str) -> dict[str, tuple[ast.stmt, str | None]]:
    return _body_definitions(_tree(module).body)


def _class_node(cls: type) -> ast.ClassDef | None:
    node: ast.AST | None = _tree(cls.__module__)
    for part in cls.__qualname__.split("."):
        found = None
        for stmt in ast.walk(node) if node is not None else ():
            if isinstance(stmt, ast.ClassDef) and stmt.name == part:
                found = stmt
                break
        node = found
    return node if isinstance(node, ast.ClassDef) else None


@functools.cache
def _class_definitions(cls: type) -> dict[str, tuple[ast.stmt, str | None]]:
    node = _class_node(cls)
    return _body_definitions(node.body) if node is not None else {}


def _attributes_section(doc: str | None) -> set[str]:
    """The names listed in a Google-style ``Attributes:`` section."""
    if not doc:
        return set()
    match = re.search(r"^Attributes:\n((?:[ \t]+.*\n?|\n)+)", doc, re.MULTILINE)
    if match is None:
        return set()
    block = textwrap.dedent(match.group(1))
    return {m.group(1) for m in re.finditer(r"^(\w+)\s*(?:\(.*?\))?\s*:", block, re.MULTILINE)}


def _is_real(doc: str | None) -> bool:
    return doc is not None and len(re.findall(r"\w+", doc)) >= 2


def _import_origin(module: str, name: str) -> tuple[str, str] | None:
    """Where ``module`` imports ``name`` from (``from .x import name``), if it does."""
    for node in ast.walk(_tree(module)):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    package = module if hasattr(sys.modules[module], "__path__") else module.rpartition(".")[0]
                    base = package
                    for _ in range(node.level - 1):
                        base = base.rpartition(".")[0]
                    target = ".".join(p for p in (base if node.level else "", node.module or "") if p)
                    return target, alias.name
    return None


def _defining_module(module: str, name: str) -> tuple[str, str]:
    """The module whose source defines the object ``module`` exports as ``name``."""
    seen = set()
    while name not in _module_definitions(module) and (module, name) not in seen:
        seen.add((module, name))
        origin = _import_origin(module, name)
        if origin is None:
            break
        module, name = origin
        importlib.import_module(module)
    return module, name


def _exports(module: str) -> list[str]:
    mod = importlib.import_module(module)
    names = getattr(mod, "__all__", None)
    if names is not None:
        return list(names)
    return [n for n in _module_definitions(module) if not n.startswith("_")]


def _annotation_classes(owner_module: str, annotation: ast.expr | None) -> Iterator[type]:
    """The aiouow classes an annotation names (resolved in the module, imports under
    ``TYPE_CHECKING`` included)."""
    if annotation is None:
        return
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        annotation = ast.parse(annotation.value, mode="eval").body
    for node in ast.walk(annotation):
        if not isinstance(node, ast.Name) or node.id.startswith("_"):
            continue
        value = vars(sys.modules[owner_module]).get(node.id)
        if value is None and (origin := _import_origin(owner_module, node.id)) is not None:
            value = getattr(importlib.import_module(origin[0]), origin[1], None)
        if isinstance(value, type) and value.__module__.startswith("aiouow") and not value.__name__.startswith("_"):
            yield value


def _public_definitions() -> dict[str, str | None]:
    """Qualified name -> docstring for every definition in the public set (see the module docstring)."""
    found: dict[str, str | None] = {}
    classes: list[type] = []
    seen_classes: set[type] = set()

    def add_class(cls: type) -> None:
        if cls not in seen_classes:
            seen_classes.add(cls)
            classes.append(cls)

    def add_function(module: str, node: ast.stmt) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for cls in _annotation_classes(module, node.returns):
                add_class(cls)

    for module in PUBLIC_MODULES:
        mod = importlib.import_module(module)
        for name in _exports(module):
            value = getattr(mod, name, None)  # None: defined for the checker only (TYPE_CHECKING)
            if isinstance(value, types.ModuleType):
                continue  # a public module of its own (aiouow.exc, aiouow.events, aiouow.types)
            if isinstance(value, type):
                add_class(value)
                continue
            if type(value).__module__.startswith("aiouow"):
                add_class(type(value))  # an instance such as ``func``: what its class offers is API
            home, home_name = _defining_module(module, name)
            node, doc = _module_definitions(home)[home_name]
            found[f"{home}.{home_name}"] = doc
            add_function(home, node)

    while classes:
        cls = classes.pop()
        if not cls.__module__.startswith("aiouow"):
            continue
        node = _class_node(cls)
        found[f"{cls.__module__}.{cls.__qualname__}"] = ast.get_docstring(node) if node is not None else None
        taken: set[str] = set()
        for base in cls.__mro__:
            if not base.__module__.startswith("aiouow"):
                taken.update(vars(base))
                continue
            defs = _class_definitions(base)
            listed = _attributes_section(inspect.getdoc(base) if base.__doc__ else None)
            for name, (member, _) in defs.items():
                if name.startswith("__") and name.endswith("__"):
                    add_function(base.__module__, member)  # operators: ``User.id == 1``, ``func.x``
            for name in vars(base):
                if name.startswith("_") or name in taken:
                    continue
                taken.add(name)
                qualname = f"{base.__module__}.{base.__qualname__}.{name}"
                if name not in defs:  # a __slots__ entry: documented in the Attributes section
                    found[qualname] = "listed in Attributes" if name in listed else _inherited_doc(cls, base, name)
                    continue
                member, doc = defs[name]
                if doc is None and name in listed:
                    doc = "listed in Attributes"
                if doc is None:
                    doc = _inherited_doc(cls, base, name)
                found[qualname] = doc
                add_function(base.__module__, member)
                if isinstance(member, ast.AnnAssign):
                    for c in _annotation_classes(base.__module__, member.annotation):
                        add_class(c)
                if isinstance(member, ast.ClassDef):
                    add_class(getattr(base, name))
            for name, doc in _init_attributes(base).items():
                if name in taken:
                    continue
                taken.add(name)
                if doc is None and name in listed:
                    doc = "listed in Attributes"
                found[f"{base.__module__}.{base.__qualname__}.{name}"] = doc or _inherited_doc(cls, base, name)
    return found


@functools.cache
def _init_attributes(cls: type) -> dict[str, str | None]:
    """The public instance attributes ``cls.__init__`` sets (``self.name = ...``), with the
    string literal that follows the assignment, if one does (griffe reads both)."""
    member = _class_definitions(cls).get("__init__")
    if member is None or not isinstance(member[0], (ast.FunctionDef, ast.AsyncFunctionDef)):
        return {}
    init = member[0]
    out: dict[str, str | None] = {}
    for node in ast.walk(init):
        body = getattr(node, "body", None)
        if not isinstance(body, list):
            continue
        for i, stmt in enumerate(body):
            targets = (stmt.targets if isinstance(stmt, ast.Assign)
                       else [stmt.target] if isinstance(stmt, ast.AnnAssign) else [])
            for t in targets:
                for el in (t.elts if isinstance(t, ast.Tuple) else [t]):
                    if (isinstance(el, ast.Attribute) and isinstance(el.value, ast.Name) and el.value.id == "self"
                            and not el.attr.startswith("_")):
                        nxt = body[i + 1] if i + 1 < len(body) else None
                        doc = None
                        if (isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                                and isinstance(nxt.value.value, str)):
                            doc = inspect.cleandoc(nxt.value.value)
                        if out.get(el.attr) is None:
                            out[el.attr] = doc
    return out


def _inherited_doc(cls: type, base: type, name: str) -> str | None:
    """The docstring of the member that ``base.name`` overrides, as :func:`inspect.getdoc` and
    ``help()`` inherit a method's: an override that does the same thing (``visit_name = "cte"``
    for the compiler, ``type``, ``result_name``) need not say it again."""
    mro = cls.__mro__
    for parent in mro[mro.index(base) + 1:]:
        if parent.__module__.startswith("aiouow") and name in vars(parent):
            member = _class_definitions(parent).get(name)
            doc = member[1] if member is not None else None
            if doc is None and name in _attributes_section(inspect.getdoc(parent) if parent.__doc__ else None):
                doc = "listed in Attributes"
            if doc is not None:
                return doc
    return None


def _undocumented() -> list[str]:
    return sorted(name for name, doc in _public_definitions().items() if not _is_real(doc))


def test_public_set_covers_the_documented_entry_points() -> None:
    names = _public_definitions()
    # a few names from each part of the API, so that a broken walk cannot pass by finding nothing
    for name in [
        "aiouow.session.session.AsyncSession.execute",
        "aiouow.engine.result.Result.scalars",
        "aiouow.engine.result.ScalarResult.all",
        "aiouow.sql.selectable.Select.where",
        "aiouow.sql.subquery.Subquery",
        "aiouow.sql.elements.ColumnElement.in_",
        "aiouow.sql.elements.BinaryExpression",
        "aiouow.sql.elements.func",
        "aiouow.sql.schema.Table",
        "aiouow.types.String",
        "aiouow.exc.NotLoadedError",
        "aiouow.events.listens_for",
        "aiouow.testing.transactional_session",
        "aiouow.testing.plugin.aiouow_session",
        "aiouow.asgi.SessionMiddleware",
        "aiouow.loading.options.LoaderOption.selectinload",
    ]:
        assert name in names, name
    # internals stay out
    assert not [n for n in names if n.startswith(("aiouow.dialects.", "aiouow.session.flush"))]
    assert len(names) > 300


def test_every_public_name_has_a_docstring() -> None:
    missing = _undocumented()
    assert not missing, f"{len(missing)} public names have no docstring:\n  " + "\n  ".join(missing)


def test_every_docstring_opens_with_a_one_line_summary() -> None:
    # Google style as griffe renders it: the first line is the summary (shown alone in tables and
    # tooltips), then a blank line before anything else
    long = sorted(name for name, doc in _public_definitions().items()
                  if doc is not None and "\n" in doc.split("\n\n")[0])
    assert not long, "summaries spread over several lines:\n  " + "\n  ".join(long)


def test_attributes_sections_name_real_attributes() -> None:
    # an entry for an attribute that was renamed or removed would document nothing
    wrong = []
    for qualname in _public_definitions():
        module, _, rest = qualname.rpartition(".")
        cls = getattr(sys.modules.get(module), rest, None)
        if not isinstance(cls, type) or not cls.__doc__:
            continue
        known = {n for b in cls.__mro__ for n in (*vars(b), *getattr(b, "__slots__", ()))}
        known.update(n for b in cls.__mro__ if b.__module__.startswith("aiouow") for n in _init_attributes(b))
        wrong += [f"{qualname}.{n}" for n in _attributes_section(inspect.getdoc(cls)) if n not in known]
    assert not wrong, wrong


def test_attributes_section_is_read() -> None:
    doc = "A thing.\n\nAttributes:\n    name: Its name.\n    size (int): Its size,\n        in bytes.\n\nMore."
    assert _attributes_section(doc) == {"name", "size"}
    assert _is_real("Its name.") and not _is_real("") and not _is_real(" x ")


def _print_report() -> None:  # python -m tests.test_docstrings: the counts per module
    from collections import Counter

    total: Counter[str] = Counter()
    missing: Counter[str] = Counter()
    for name, doc in _public_definitions().items():
        module = next(m for m in sorted(sys.modules, key=len, reverse=True) if name.startswith(m + "."))
        total[module] += 1
        missing[module] += not _is_real(doc)
    for module in sorted(total):
        print(f"{module:34} {total[module] - missing[module]:4} of {total[module]:4} documented")
    print(f"{'total':34} {sum(total.values()) - sum(missing.values()):4} of {sum(total.values()):4}")
    for name in _undocumented():
        print("  missing:", name)


if __name__ == "__main__":
    _print_report()

