"""torch.nn-style criterion objects, made from the functional losses.

``criterion("CrossEntropyLoss", cross_entropy, n_inputs=2)`` gives a class whose
constructor takes the function's options (everything after its ``n_inputs`` data
arguments, except the gradient plumbing) with the same defaults and kinds, so the
objects can never drift from the functions they wrap.
"""
import inspect

_PLUMBING = ("grad", "grad_output", "grad_out")


class Criterion:
    """A loss with its options fixed: ``crit(*inputs)`` and ``crit.value_and_grad(*inputs)``."""

    function = None

    def __init__(self, *args, **kwargs):
        bound = self.__signature__.bind(*args, **kwargs)
        bound.apply_defaults()
        self.options = dict(bound.arguments)

    def __call__(self, *inputs):
        return type(self).function(*inputs, **self.options)

    def value_and_grad(self, *inputs, grad_output=None, grad_out=None):
        """``(loss, grad)``: the loss and its gradient with respect to the input(s)."""
        return type(self).function(*inputs, **self.options, grad=True, grad_output=grad_output, grad_out=grad_out)

    def __repr__(self):
        options = ", ".join(f"{k}={v!r}" for k, v in self.options.items() if not hasattr(v, "shape"))
        return f"{type(self).__name__}({options})"


def criterion(name, function, n_inputs):
    """A :class:`Criterion` subclass named ``name`` wrapping ``function``."""
    parameters = list(inspect.signature(function).parameters.values())[n_inputs:]
    options = [p for p in parameters if p.name not in _PLUMBING]
    signature = inspect.Signature(options)
    doc = (
        f"Criterion form of :func:`fastloss.{function.__name__}`.\n\n"
        f"``{name}{signature}``: the options are fixed here; ``crit(*inputs)`` gives the loss "
        f"and ``crit.value_and_grad(*inputs)`` gives ``(loss, grad)``."
    )
    return type(name, (Criterion,), {
        "function": staticmethod(function),
        "__signature__": signature,
        "__doc__": doc,
        "__module__": function.__module__,
    })
