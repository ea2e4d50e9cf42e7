"""Every real option of every loss, on and beyond the edges of its valid range as the
table of losses states it (``fastloss._core.table``, each entry's ``domains``; finite
reals where it says nothing): the values on a closed edge and inside compute, and the
values beyond it raise a ValueError naming the option. The edges come from the table
itself, so a range changed there is tested here; torch's own ranges are checked against
torch in test_bad_input.py and test_corners.py."""
import inspect
import math

import numpy as np
import pytest

from fastloss._core.table import LOSSES, REAL


def _real_options(entry):
    """The options of ``entry``'s function whose default is a real number (not a flag)."""
    for name, p in inspect.signature(entry.function).parameters.items():
        if type(p.default) is float or (type(p.default) is int and name in entry.domains):
            yield name


def _edges(interval):
    """``(inside, outside)``: values on the closed edges and just inside; values beyond."""
    inside, outside = [], []
    for edge, open_, step in ((interval.low, interval.low_open, 1.0), (interval.high, interval.high_open, -1.0)):
        if math.isinf(edge):
            (outside if open_ else inside).append(edge)
        else:
            (outside if open_ else inside).append(edge)
            inside.append(edge + step * 0.25)
            outside.append(edge - step * 0.25)
    (inside if interval.nan else outside).append(math.nan)
    return inside, outside


CASES = [(entry.name, option) for entry in LOSSES for option in _real_options(entry)]


def test_every_domain_names_a_real_option():
    for entry in LOSSES:
        assert set(entry.domains) <= set(_real_options(entry)), entry.name


@pytest.mark.parametrize("name, option", CASES)
def test_option_edges(rng, name, option):
    entry = LOSSES[name]
    interval = entry.domains.get(option, REAL)
    inside, outside = _edges(interval)
    args, options = entry.example(rng)
    for value in inside:  # computes, value and gradient
        loss, grads = entry.function(*args, **{**options, option: value}, grad=True)
        assert np.shape(loss) == np.shape(entry.function(*args, **options))
    for value in outside:
        with pytest.raises(ValueError, match=option):
            entry.function(*args, **{**options, option: value})
