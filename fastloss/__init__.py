"""fastloss: torch.nn's losses from NumPy arrays, value and gradient in one fused call.

Every loss has torch.nn.functional's name, arguments and numbers, plus keyword-only
``grad=True`` to get ``(loss, grad)``; criterion classes carry the same names as
torch.nn's. See README.md and the API contract, docs/api-contract.md, for the details.
"""
from . import classification, ctc, embedding, extras, margin, regression, triplet
from ._core.cuda import set_device_checks
from ._core.threads import get_num_threads, num_threads, set_num_threads
from ._core.warmup import warmup
from .classification import *  # noqa: F403 (each family's __all__ is the list)
from .ctc import *  # noqa: F403
from .embedding import *  # noqa: F403
from .extras import *  # noqa: F403
from .margin import *  # noqa: F403
from .regression import *  # noqa: F403
from .triplet import *  # noqa: F403

__version__ = "0.1.0"

# diagnose_training is imported on first use (see __getattr__).
__all__ = ["diagnose_training", "warmup", "get_num_threads", "num_threads", "set_num_threads",  # noqa: F405
           "set_device_checks"]
__all__ += classification.__all__
__all__ += regression.__all__
__all__ += margin.__all__
__all__ += embedding.__all__
__all__ += extras.__all__
__all__ += ctc.__all__
__all__ += triplet.__all__


def __getattr__(name: str):  # noqa: ANN202
    """``diagnose_training`` (and the ``diagnose`` module) on first use: its import is a
    tenth of fastloss's start-up, which the losses need not pay."""
    if name in ("diagnose", "diagnose_training"):
        import importlib

        module = importlib.import_module(".diagnose", __name__)  # it is then this package's attribute too
        return module if name == "diagnose" else module.diagnose_training
    raise AttributeError(f"module 'fastloss' has no attribute {name!r}")
