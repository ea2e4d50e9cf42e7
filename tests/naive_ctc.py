"""Slow, obviously-right CTC references by enumerating every frame path (tiny sizes only).

A path is one class per frame; it belongs to a target when collapsing it (merging
repeated classes, then dropping blanks) gives the target (Graves et al. 2006, eq. 2-3).
"""
import itertools

import numpy as np


def collapse(path, blank):
    out = []
    previous = None
    for k in path:
        if k != previous and k != blank:
            out.append(k)
        previous = k
    return out


def matching_paths(n_frames, n_classes, target, blank):
    """Every path of ``n_frames`` frames over ``n_classes`` classes that collapses to ``target``."""
    target = list(target)
    return [p for p in itertools.product(range(n_classes), repeat=n_frames) if collapse(p, blank) == target]


def ctc_loss_and_grad(log_probs, target, blank):
    """-log sum_paths prod_t p_t(path_t) of one sample's (T, C) log-probs, and its exact
    derivative with respect to the log-probs: minus the posterior probability that a
    path uses class k at frame t. +inf and a NaN gradient when no path matches (as torch)."""
    n_frames, n_classes = log_probs.shape
    paths = matching_paths(n_frames, n_classes, target, blank)
    if not paths:
        return np.inf, np.full(log_probs.shape, np.nan)
    frames = np.arange(n_frames)
    scores = np.array([log_probs[frames, list(p)].sum() for p in paths])
    top = scores.max()
    total = np.exp(scores - top).sum()
    weights = np.exp(scores - top) / total
    grad = np.zeros(log_probs.shape)
    for w, p in zip(weights, paths):
        grad[frames, list(p)] -= w
    return -(top + np.log(total)), grad


def best_path(log_probs, target, blank):
    """The highest-scoring path that collapses to ``target`` (frame classes) and its score."""
    n_frames, n_classes = log_probs.shape
    frames = np.arange(n_frames)
    paths = matching_paths(n_frames, n_classes, target, blank)
    scores = [log_probs[frames, list(p)].sum() for p in paths]
    best = int(np.argmax(scores))
    return np.array(paths[best], dtype=np.intp), scores[best]
