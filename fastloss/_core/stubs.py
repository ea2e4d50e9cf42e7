"""The type stub of the package, ``fastloss/__init__.pyi``, generated from the table.

``python -m fastloss._core.stubs`` writes it; ``python -m fastloss._core.stubs --check``
exits with status 1 if the file on disk is not what it would write (tests/test_typing.py
runs it). For every loss of :data:`~fastloss._core.table.LOSSES` the stub has three
``typing.overload`` signatures made from the function's own (``inspect.signature``: the
parameters' kinds, names and annotations; every default is ``...``) with ``grad``
replaced by ``Literal[False] = ...``, ``Literal[True]`` and ``bool``, returning
``Loss``, ``WithGrad[G]`` and ``Loss | WithGrad[G]``, where ``G`` is
:data:`~fastloss._typing.FloatArray`, ``Grad2`` or ``Grad3`` for the entry's one, two or
three differentiable arguments; and a :class:`~fastloss._core.criterion.Criterion`
subclass for its criterion, whose ``__init__`` takes the criterion's options. The losses
come by family and name, so that reordering the table leaves the stub as it is. Every
other name of ``fastloss.__all__``, and the family modules, are re-exported from the
modules that define them.

The names an annotation uses are imported in the stub from where the loss's module
imports them (under ``typing.TYPE_CHECKING`` or not).
"""
from __future__ import annotations

import argparse
import ast
import builtins
import difflib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .table import LOSSES

STUB = Path(__file__).resolve().parent.parent / "__init__.pyi"
COMMAND = "python -m fastloss._core.stubs"
WIDTH = 120
GRADS = {1: "FloatArray", 2: "Grad2", 3: "Grad3"}
_P = inspect.Parameter


class StubError(Exception):
    """A loss whose signature cannot be stated by the stub's three overloads."""


# ---------------------------------------------------------------- where names come from

class Imports:
    """The stub's imports: each name with the module it comes from."""

    def __init__(self) -> None:
        self.sources: dict[str, str] = {}

    def add(self, name: str, module: str) -> None:
        if self.sources.setdefault(name, module) != module:
            raise StubError(f"{name} is imported from both {self.sources[name]} and {module}")

    def lines(self, reexports: dict[str, str]) -> list[str]:
        """The import block, isort's way: the standard library's, the third parties' and
        fastloss's own, each sorted; ``reexports`` (name: module) as ``import name as name``."""
        by_module: dict[str, list[str]] = {}
        for name, module in self.sources.items():
            by_module.setdefault(module, []).append(name)
        sections: list[list[tuple[str, str]]] = [[], [], []]
        for module, names in by_module.items():
            section = 2 if module.startswith("fastloss") else int(module.split(".")[0] not in sys.stdlib_module_names)
            head = f"from {_relative(module)} import "
            one = head + ", ".join(sorted(names))
            one = one if len(one) <= WIDTH else wrap(head + "(", sorted(names), ")")
            sections[section].append((_relative(module), one))
        for name, module in reexports.items():
            sections[2].append((_relative(module), f"from {_relative(module)} import {name} as {name}"))
        blocks = ["\n".join(line for _, line in sorted(section)) for section in sections if section]
        return "\n\n".join(blocks).splitlines()


def _relative(module: str) -> str:
    """``module`` as seen from the package fastloss: ``fastloss._typing`` is ``._typing``."""
    if module == "fastloss":
        return "."
    return "." + module[len("fastloss."):] if module.startswith("fastloss.") else module


def module_imports(module_name: str) -> dict[str, str]:
    """Every name that module ``module_name`` imports with ``from ... import``, anywhere in
    its source (``TYPE_CHECKING`` blocks included), with the absolute module it comes from."""
    module = importlib.import_module(module_name)
    package = module_name if hasattr(module, "__path__") else module_name.rpartition(".")[0]
    names: dict[str, str] = {}
    for node in ast.walk(ast.parse(inspect.getsource(module))):
        if isinstance(node, ast.ImportFrom):
            source = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
            for alias in node.names:
                names[alias.asname or alias.name] = source if node.module else f"{source}.{alias.name}"
    return names


def annotation_names(annotation: str) -> set[str]:
    """The names an annotation (a string, as ``from __future__ import annotations`` leaves it) uses."""
    return {node.id for node in ast.walk(ast.parse(annotation, mode="eval")) if isinstance(node, ast.Name)}


# ---------------------------------------------------------------- rendering

def wrap(head: str, items: Iterable[str], tail: str) -> str:
    """``head`` + items joined by ", " + ``tail``, wrapped at :data:`WIDTH` with the
    continuation lines under the first item (``head`` ends with an open bracket)."""
    indent = " " * len(head)
    lines, line = [], head
    items = list(items)
    for i, item in enumerate(items):
        piece = item + ("," if i < len(items) - 1 else tail)
        if line not in (head, indent) and len(line) + 1 + len(piece) > WIDTH:
            lines.append(line)
            line = indent
        line += ("" if line in (head, indent) else " ") + piece
    if not items:
        line += tail
    return "\n".join([*lines, line])


def parameters(params: Iterable[inspect.Parameter], use: Callable[[str], None],
               replace: dict[str, str] | None = None) -> list[str]:
    """The parameters as a stub writes them: annotations as written (``Any`` where there is
    none), every default ``...``, and the ``/`` and ``*`` markers of their kinds.
    ``replace`` maps a name to its stated ``annotation[ = ...]``; ``use`` is told the
    annotations' names."""
    out: list[str] = []
    params = list(params)
    for i, p in enumerate(params):
        if p.kind is _P.KEYWORD_ONLY and (i == 0 or params[i - 1].kind not in (_P.KEYWORD_ONLY, _P.VAR_POSITIONAL)):
            out.append("*")
        if replace and p.name in replace:
            text = f"{p.name}: {replace[p.name]}"
        elif p.name == "self":
            text = "self"
        else:
            annotation = p.annotation
            if annotation is _P.empty:
                annotation = "Any"
            elif not isinstance(annotation, str):
                raise StubError(f"parameter {p.name}: annotation {annotation!r} is not a string "
                                "(the module lacks `from __future__ import annotations`)")
            for name in annotation_names(annotation):
                use(name)
            star = "*" if p.kind is _P.VAR_POSITIONAL else "**" if p.kind is _P.VAR_KEYWORD else ""
            text = f"{star}{p.name}: {annotation}" + ("" if p.default is _P.empty else " = ...")
        out.append(text)
        if p.kind is _P.POSITIONAL_ONLY and (i == len(params) - 1 or params[i + 1].kind is not _P.POSITIONAL_ONLY):
            out.append("/")
    return out


def check_grad(name: str, signature: inspect.Signature) -> None:
    """Refuse a loss whose ``grad`` the overloads cannot replace: it must default to
    False, and be keyword-only or follow no parameter with a default (``grad:
    Literal[True]`` has none, and cannot follow one)."""
    grad = signature.parameters.get("grad")
    if grad is None or grad.default is not False:
        raise StubError(f"{name} has no parameter grad=False")
    if grad.kind is _P.KEYWORD_ONLY:
        return
    before = list(signature.parameters.values())[:list(signature.parameters).index("grad")]
    if grad.kind is _P.VAR_KEYWORD or grad.kind is _P.VAR_POSITIONAL or any(p.default is not _P.empty
                                                                              for p in before):
        raise StubError(f"{name}'s grad is positional after a parameter with a default: "
                        "make it keyword-only (put it after `*`)")


# ---------------------------------------------------------------- the stub

def loss_stub(entry: Any, imports: Imports) -> list[str]:
    """The three overloads of ``entry``'s function and its criterion class."""
    function = entry.function
    signature = inspect.signature(function)
    check_grad(entry.name, signature)
    n = len(entry.differentiable)
    # A differentiable argument that defaults to None (linear_cross_entropy's bias) has no gradient when left out.
    optional = sum(signature.parameters[name].default is None for name in entry.differentiable)
    if any(k not in GRADS for k in range(n - optional, n + 1)):
        raise StubError(f"{entry.name}: no gradient type for {n} differentiable arguments")
    g = " | ".join(GRADS[k] for k in range(n - optional, n + 1))
    returned = f"Loss | WithGrad[{g}]"
    if signature.return_annotation not in (_P.empty, returned):
        raise StubError(f"{entry.name} is annotated to return {signature.return_annotation}, "
                        f"its table entry (grads {entry.differentiable}) says {returned}")
    sources = module_imports(function.__module__)

    def use(name: str) -> None:
        if hasattr(builtins, name):
            return
        if name not in sources:
            raise StubError(f"{entry.name}: annotation name {name} is not imported in {function.__module__}")
        imports.add(name, sources[name])

    lines = []
    for grad, result in (("Literal[False] = ...", "Loss"), ("Literal[True]", f"WithGrad[{g}]"),
                         ("bool", returned)):
        params = parameters(signature.parameters.values(), use, {"grad": grad})
        lines += ["@overload", wrap(f"def {entry.name}(", params, f") -> {result}: ..."), ""]
    cls = getattr(importlib.import_module(function.__module__), entry.criterion)
    init = parameters([_P("self", _P.POSITIONAL_OR_KEYWORD), *cls.__signature__.parameters.values()], use)
    keywords = parameters([signature.parameters[name] for name in cls.keywords], use)
    keywords = [k for k in keywords if k != "*"]
    lines += [f"class {entry.criterion}(Criterion):",
              wrap("    def __init__(", init, ") -> None: ..."),
              wrap("    def __call__(", ["self", "*inputs: Any", *keywords], ") -> Loss: ..."),
              wrap("    def value_and_grad(", ["self", "*inputs: Any", "grad_output: Any = ...", "grad_out: Any = ...",
                                             *keywords], f") -> WithGrad[{g}]: ..."),
              "", ""]
    return lines


def generate() -> str:
    """The text of ``fastloss/__init__.pyi``."""
    import fastloss

    imports = Imports()
    for name in ("Any", "Literal", "overload"):
        imports.add(name, "typing")
    for name in ("Loss", "WithGrad", *GRADS.values()):
        imports.add(name, "fastloss._typing")
    imports.add("Criterion", "fastloss._core.criterion")

    body: list[str] = []
    stated = set()
    for entry in sorted(LOSSES, key=lambda entry: (entry.family, entry.name)):  # not moved by the table's order
        body += loss_stub(entry, imports)
        stated |= {entry.name, entry.criterion}

    reexports = {family: "fastloss" for family in sorted({entry.family for entry in LOSSES})}
    for name in fastloss.__all__:
        if name in stated:
            continue
        obj = getattr(fastloss, name)
        module = getattr(obj, "__module__", None)
        if module is None or getattr(importlib.import_module(module), name, None) is not obj:
            raise StubError(f"fastloss.{name} is neither a loss nor a criterion of the table, "
                            "nor a function found by name in its module")
        reexports[name] = module

    return "\n".join([
        f"# Generated from the table of losses (fastloss/_core/table.py) by `{COMMAND}`: do not edit.",
        f"# `{COMMAND} --check` tells whether it is current.",
        *imports.lines(reexports),
        "",
        "__version__: str",
        "",
        wrap("__all__ = [", [f'"{name}"' for name in sorted(fastloss.__all__)], "]"),
        "",
        "",
        *body,
    ]).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit with status 1 if the stub on disk differs from what would be written")
    args = parser.parse_args(argv)
    text = generate()
    if args.check:
        current = STUB.read_text() if STUB.exists() else ""
        if current != text:
            diff = difflib.unified_diff(current.splitlines(True), text.splitlines(True),
                                        "fastloss/__init__.pyi (on disk)", "fastloss/__init__.pyi (generated)")
            sys.stderr.writelines(list(diff)[:60])
            print(f"fastloss/__init__.pyi is out of date: run `{COMMAND}`", file=sys.stderr)
            return 1
        return 0
    STUB.write_text(text)
    print(f"wrote {STUB}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
