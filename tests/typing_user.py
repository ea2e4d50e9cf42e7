"""A user's script, type-checked by tests/test_typing.py (mypy): never run.

``assert_type`` fails the check if an overload gives another type, and each
``type: ignore`` fails it (``warn_unused_ignores``) if mypy accepts the line: so the
last lines show that mypy tells a user of a wrong call or a wrong unpacking.
"""
import numpy as np
from typing_extensions import assert_type

import fastloss as fl
from fastloss._typing import FloatArray, Grad2, Grad3, IntArray, Loss

x = np.zeros((4, 3), np.float32)
t = [0, 1, 2, 0]

assert_type(fl.cross_entropy(x, t), Loss)
assert_type(fl.cross_entropy(x, t, label_smoothing=0.1, grad=False), Loss)
assert_type(fl.cross_entropy(x, t, grad=True), tuple[Loss, FloatArray])
loss, grad = fl.cross_entropy(x, t, grad=True, grad_out=x)
assert_type(grad, FloatArray)
print(float(loss), grad.shape)

assert_type(fl.mse_loss([1.0, 2.0], [0.0, 0.0], grad=True), tuple[Loss, FloatArray])
assert_type(fl.margin_ranking_loss(x[:, 0], x[:, 1], np.ones(4), grad=True), tuple[Loss, Grad2])
assert_type(fl.triplet_margin_loss(x, x, x, grad=True), tuple[Loss, Grad3])
value, (d_features, d_classes) = fl.large_margin_cosine_loss(x, x, t, grad=True)
assert_type(d_classes, FloatArray)
assert_type(fl.ctc_forced_align(x, [1, 2]), tuple[IntArray, FloatArray])
anchors, positives, negatives = fl.mine_triplets(x, t)
assert_type(anchors, IntArray)
assert_type(fl.diagnose_training(np.ones(30)).verdict, str)

crit = fl.CrossEntropyLoss(label_smoothing=0.1)
print(crit(x, t), crit.value_and_grad(x, t))
assert_type(crit(x, t), Loss)
assert_type(crit.value_and_grad(x, t), tuple[Loss, FloatArray])
assert_type(fl.HuberLoss("sum", 2.0), fl.HuberLoss)
ranking = fl.MarginRankingLoss(margin=0.5)
assert_type(ranking.value_and_grad(x[:, 0], x[:, 1], np.ones(4)), tuple[Loss, Grad2])
assert_type(fl.gaussian_nll_loss(x, x, np.ones((4, 3)), grad=True), tuple[Loss, Grad2])

flag = bool(t)  # known at run time only
assert_type(fl.cross_entropy(x, t, grad=flag), Loss | tuple[Loss, FloatArray])

fl.cross_entropy(x, t, reduction="average")  # type: ignore[call-overload]
fl.cross_entropy(x, t, grad=True, backend="cuda")  # type: ignore[call-overload]
fl.cross_entropy(x, t, labelsmoothing=0.1)  # type: ignore[call-overload]
loss, grad = fl.cross_entropy(x, t)  # type: ignore[misc]
fl.CrossEntropyLoss(labelsmoothing=0.1)  # type: ignore[call-arg]

# The generated modules: fastloss.torch's losses and fastloss.dask's, by name.
import fastloss.dask as fld  # noqa: E402
import fastloss.torch as flt  # noqa: E402

criterion = flt.CrossEntropyLoss(label_smoothing=0.1)
lazy, lazy_grad = fld.loss("cross_entropy", x, t, grad=True)
lazy_loss = fld.cross_entropy(x, t)
