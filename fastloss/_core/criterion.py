"""torch.nn-style criterion objects, made from the functional losses.

``criterion("CrossEntropyLoss", cross_entropy, n_inputs=2)`` gives a class whose
constructor takes the function's options (everything after its ``n_inputs`` data
arguments, except the gradient plumbing and the ``keywords`` inputs) with the same
defaults and kinds, so the objects can never drift from the functions they wrap.
``keywords`` names inputs passed by keyword at each call: a differentiable argument
that is not a data argument, as ``linear_cross_entropy``'s ``linear_bias``
(``crit(input, linear_weight, target, linear_bias=b)``). The class's docstring is made
from the function's too: its summary, the entries of its ``Parameters`` section for
the options and the inputs, and its ``Examples`` rewritten to use the criterion.
"""
from __future__ import annotations

import ast
import inspect
import textwrap
from typing import Any, Callable, ClassVar

_PLUMBING = ("grad", "grad_output", "grad_out")


class Criterion:
    """A loss with its options fixed: ``crit(*inputs)`` and ``crit.value_and_grad(*inputs)``."""

    function: ClassVar[Callable[..., Any]]
    __signature__: ClassVar[inspect.Signature]
    options: dict[str, Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        bound = self.__signature__.bind(*args, **kwargs)
        bound.apply_defaults()
        self.options = dict(bound.arguments)

    def __call__(self, *inputs: Any) -> Any:
        """The loss of ``inputs``: the function called with them and the fixed options."""
        return type(self).function(*inputs, **self.options)

    def value_and_grad(self, *inputs: Any, grad_output: Any = None, grad_out: Any = None) -> tuple[Any, Any]:
        """``(loss, grad)``: the loss and its gradient with respect to the input(s)."""
        return type(self).function(*inputs, **self.options, grad=True, grad_output=grad_output, grad_out=grad_out)

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self.options.items() if not hasattr(v, "shape"))
        return f"{type(self).__name__}({options})"


class KeywordInputsCriterion(Criterion):
    """A :class:`Criterion` that also takes the inputs named in ``keywords`` by keyword at
    each call (see the module docstring)."""

    keywords: ClassVar[tuple[str, ...]] = ()

    def __call__(self, *inputs: Any, **keywords: Any) -> Any:
        return type(self).function(*inputs, **self._keywords(keywords), **self.options)

    def value_and_grad(self, *inputs: Any, grad_output: Any = None, grad_out: Any = None,
                       **keywords: Any) -> tuple[Any, Any]:
        return type(self).function(*inputs, **self._keywords(keywords), **self.options, grad=True,
                                   grad_output=grad_output, grad_out=grad_out)

    def _keywords(self, keywords: dict[str, Any]) -> dict[str, Any]:
        unknown = set(keywords) - set(type(self).keywords)
        if unknown:
            raise TypeError(f"{type(self).__name__} takes no keyword input {', '.join(sorted(unknown))} at a "
                            f"call (its keyword inputs: {', '.join(type(self).keywords)})")
        return keywords


def criterion(name: str, function: Callable[..., Any], n_inputs: int,
              keywords: tuple[str, ...] = ()) -> type[Criterion]:
    """A :class:`Criterion` subclass named ``name`` wrapping ``function``; ``keywords``: the
    inputs given by keyword at each call (see the module docstring)."""
    parameters = list(inspect.signature(function).parameters.values())
    inputs = parameters[:n_inputs] + [p for p in parameters if p.name in keywords]
    options = [p for p in parameters[n_inputs:] if p.name not in _PLUMBING and p.name not in keywords]
    signature = inspect.Signature(options)
    return type(name, (KeywordInputsCriterion,) if keywords else (Criterion,), {
        "function": staticmethod(function),
        "__signature__": signature,
        "keywords": keywords,
        "__doc__": _LazyDoc(lambda: _docstring(name, function, inputs, signature, n_inputs)),
        "__module__": function.__module__,
    })


# --------------------------------------------------------------------------- the docstring

class _LazyDoc:
    """A criterion class's docstring, made when it is first read (``help``, Sphinx, doctest):
    making the thirty of them at import took a tenth of fastloss's start-up. The class's
    ``__doc__`` and its instances' call ``__get__``."""

    def __init__(self, make: Callable[[], str]) -> None:
        self.make: Callable[[], str] | None = make
        self.text = ""

    def __get__(self, instance: Any, owner: Any = None) -> str:
        if self.make is not None:
            self.text, self.make = self.make(), None
        return self.text


def _sections(doc: str) -> dict[str, list[str]]:
    """A numpy-style docstring's lines by section title; the text before the first under ``""``."""
    lines = inspect.cleandoc(doc).splitlines()
    sections: dict[str, list[str]] = {"": []}
    title, i = "", 0
    while i < len(lines):
        if lines[i][:1].isalpha() and i + 1 < len(lines) and set(lines[i + 1]) == {"-"}:
            title, i = lines[i], i + 2
            sections[title] = []
        else:
            sections[title].append(lines[i])
            i += 1
    return sections


def _entries(lines: list[str]) -> dict[str, list[str]]:
    """A ``Parameters`` section's entries by name (``a, b : type`` gives both names)."""
    entries: dict[str, list[str]] = {}
    current: list[str] = []
    for line in lines:
        if line and not line.startswith(" "):
            current = [line]
            for item in line.split(" : ")[0].split(","):
                entries[item.strip()] = current
        elif current and line.strip():
            current.append(line)
    return entries


def _entry(entries: dict[str, list[str]], parameter: inspect.Parameter) -> list[str]:
    """The function's entry for ``parameter``, or one made from its annotation and default."""
    if parameter.name in entries:
        head, *rest = entries[parameter.name]
        return [parameter.name + (" : " + head.split(" : ", 1)[1] if " : " in head else "")] + rest
    kind = parameter.annotation if parameter.annotation is not inspect.Parameter.empty else ""
    default = "" if parameter.default is inspect.Parameter.empty else f"default {parameter.default!r}"
    described = ", ".join(t for t in (str(kind), default) if t)
    return [f"{parameter.name} : {described}" if described else parameter.name]


def _to_criterion(source: str, fname: str, cls: str, n_inputs: int,
                  keyword_inputs: tuple[str, ...]) -> list[str] | None:
    """Example ``source`` with its call of ``fastloss.fname`` made on a criterion:
    ``crit = fastloss.cls(options)`` then the statement with ``crit(inputs)`` or
    ``crit.value_and_grad(inputs)``; None when the source has no such call."""
    tree = ast.parse(source)
    made: list[ast.Call] = []

    class Rewrite(ast.NodeTransformer):
        def visit_Call(self, node: ast.Call) -> ast.AST:
            self.generic_visit(node)
            f = node.func
            if not (isinstance(f, ast.Attribute) and f.attr == fname and isinstance(f.value, ast.Name)
                    and f.value.id == "fastloss"):
                return node
            keywords = {k.arg: k for k in node.keywords}
            grad = keywords.pop("grad", None)
            plumbing = [keywords.pop(k) for k in ("grad_output", "grad_out", *keyword_inputs) if k in keywords]
            made.append(ast.Call(ast.Attribute(ast.Name("fastloss"), cls), node.args[n_inputs:],
                                 list(keywords.values())))
            method: ast.expr = ast.Name("crit")
            if grad is not None and isinstance(grad.value, ast.Constant) and grad.value.value is True:
                method = ast.Attribute(method, "value_and_grad")
            return ast.Call(method, node.args[:n_inputs], plumbing)

    tree = Rewrite().visit(tree)
    if not made:
        return None
    return [f"crit = {ast.unparse(made[0])}", ast.unparse(tree)]


def _examples(doc: str, fname: str, cls: str, n_inputs: int, keywords: tuple[str, ...]) -> list[str]:
    """The function's doctest examples with every call of it made on a criterion."""
    import doctest  # here: a tenth of start-up at import

    lines = []
    for example in doctest.DocTestParser().get_examples(doc):
        source = example.source.rstrip("\n")
        rewritten = _to_criterion(source, fname, cls, n_inputs, keywords)
        for statement in rewritten or [source]:
            first, *more = statement.splitlines()
            lines += [f">>> {first}"] + [f"... {line}" for line in more]
        lines += example.want.rstrip("\n").splitlines()
    return lines


def _docstring(name: str, function: Callable[..., Any], inputs: list[inspect.Parameter],
               signature: inspect.Signature, n_inputs: int) -> str:
    """The criterion's docstring, made from ``function``'s (see the module docstring)."""
    fname = function.__name__
    sections = _sections(function.__doc__ or "")
    entries = _entries(sections.get("Parameters", []))
    call = ", ".join(p.name if i < n_inputs else f"{p.name}={p.name}" for i, p in enumerate(inputs))
    summary = sections[""] + [""]
    lines = [
        *summary[:summary.index("")],
        "",
        *textwrap.wrap(
            f"The criterion form of :func:`fastloss.{fname}`: ``{name}(...)`` takes its options and fixes "
            f"them; ``crit({call})`` gives the loss and ``crit.value_and_grad({call})`` gives ``(loss, grad)``, "
            f"the gradient as the function's ``grad=True`` gives it (``grad_output=`` and ``grad_out=`` are "
            f"keywords of ``value_and_grad``).", 88, break_on_hyphens=False, break_long_words=False),
        "",
        "Parameters",
        "----------",
    ]
    for parameter in signature.parameters.values():
        lines += _entry(entries, parameter)
    lines += ["", "Inputs", "------"]
    for parameter in inputs:
        lines += _entry(entries, parameter)
    examples = _examples(function.__doc__ or "", fname, name, n_inputs, tuple(p.name for p in inputs[n_inputs:]))
    if examples:
        lines += ["", "Examples", "--------"] + examples
    return "\n".join(lines)
