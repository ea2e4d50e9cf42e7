"""torch compositions of the losses that torch.nn.functional lacks: the references the
tests take as the truth for them (each docstring says where its definition comes from).
The losses torch has are compared with torch.nn.functional's function itself."""
import inspect

import torch
import torch.nn.functional as F

import fastloss as fl
import naive_triplet


def torch_focal(x, t, alpha=None, gamma=2.0, ignore_index=-100, reduction="mean"):
    """Transcription of the definition FL = -alpha_t (1 - p_t)^gamma log p_t (Lin et al. 2017)
    with kornia's convention for a scalar alpha, and mean over non-ignored elements."""
    keep = t != ignore_index
    safe_t = torch.where(keep, t, torch.zeros_like(t))
    logp = torch.log_softmax(x, dim=1)
    logp_t = logp.gather(1, safe_t.unsqueeze(1)).squeeze(1)
    p_t = logp_t.exp()
    if alpha is None:
        a_t = torch.ones_like(logp_t)
    elif alpha.ndim == 0:
        a_t = alpha.expand_as(logp_t)
    else:
        a_t = alpha[safe_t]
    loss = torch.where(keep, -a_t * (1 - p_t) ** gamma * logp_t, torch.zeros_like(logp_t))
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / keep.sum()


def torchvision_sigmoid_focal_loss(inputs, targets, alpha=0.25, gamma=2.0, reduction="none"):
    """torchvision/ops/focal_loss.py (v0.20), transcribed line by line."""
    p = torch.sigmoid(inputs)
    ce_loss = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce_loss * ((1 - p_t) ** gamma)
    if alpha >= 0:
        alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
        loss = alpha_t * loss
    if reduction == "mean":
        loss = loss.mean()
    elif reduction == "sum":
        loss = loss.sum()
    return loss


def contrastive_torch(x1, x2, y, margin=1.0, reduction="mean"):
    """Hadsell et al. 2006 with y = 1 similar: y d^2 + (1 - y) max(0, margin - d)^2."""
    d = torch.linalg.vector_norm(x1 - x2, dim=-1)
    loss = y * d ** 2 + (1 - y) * torch.clamp(margin - d, min=0) ** 2
    return {"mean": loss.mean(), "sum": loss.sum(), "none": loss}[reduction]


def reduce(loss, reduction):
    return {"mean": loss.mean(), "sum": loss.sum(), "none": loss}[reduction]


def cosface_torch(features, weight, target, s=64.0, m=0.35, reduction="mean"):
    cos = F.normalize(features) @ F.normalize(weight).T
    onehot = F.one_hot(target, weight.shape[0]).to(cos.dtype)
    return F.cross_entropy(s * (cos - m * onehot), target, reduction=reduction)


def anchor_torch(input, target, gamma=0.5, slack=0.05, reduction="mean", anchor="neg", select=False):
    """The authors' AnchorLoss.forward, transcribed (CPU, class-index targets), with its detach().
    ``select``: the class mask's two terms chosen by torch.where instead of multiplied by the
    mask and its complement (the same numbers, but no 0 * inf = NaN for an infinite BCE)."""
    gamma_pos, gamma_neg = (gamma, 0) if anchor == "pos" else (0, gamma)
    target = target.view(-1, 1)
    pt = torch.sigmoid(input)
    class_mask = torch.zeros_like(input).scatter_(1, target, 1.0)
    bce_loss = F.binary_cross_entropy_with_logits(input, class_mask, reduction="none")
    pt_pos = pt.gather(1, target).view(-1, 1)
    pt_neg = (pt * (1 - class_mask)).max(dim=1)[0].view(-1, 1)
    pt_neg = (pt_neg + slack).clamp(max=1).detach()
    pt_pos = (pt_pos - slack).clamp(min=0).detach()
    scaling_pos = (1 - pt + pt_neg).pow(gamma_pos)
    scaling_neg = (1 + pt - pt_pos).pow(gamma_neg)
    if select:
        loss = torch.where(class_mask.bool(), scaling_pos * bce_loss, scaling_neg * bce_loss)
    else:
        loss = class_mask * scaling_pos * bce_loss + (1 - class_mask) * scaling_neg * bce_loss
    return reduce(loss.sum(1), reduction)


def dice_torch(input, target, smooth=1.0, reduction="mean"):
    """The docstring's formula: per sample, 1 - mean over classes of (2 I + smooth) / (S + smooth)."""
    if target.dtype in (torch.int64, torch.int32) and target.ndim == input.ndim - 1:
        p = torch.softmax(input, 1)
        y = F.one_hot(target, input.shape[1]).movedim(-1, 1).to(input.dtype)
    else:
        p = torch.sigmoid(input).unsqueeze(1)
        y = target.unsqueeze(1)
    p = p.reshape(p.shape[0], p.shape[1], -1)
    y = y.reshape(p.shape)
    inter = (p * y).sum(2)
    total = p.sum(2) + y.sum(2)
    return reduce(1 - ((2 * inter + smooth) / (total + smooth)).mean(1), reduction)


def hinge_torch(input, target, margin=1.0, reduction="mean"):
    """max(0, margin - y f) for (N,) scores; Crammer-Singer for (N, C): the hinge against the
    largest competitor (torch's max gives its gradient to one index of a tie)."""
    if input.ndim == 1:
        loss = torch.clamp(margin - target * input, min=0)
    else:
        own = input.gather(1, target[:, None])[:, 0]
        others = input.masked_fill(F.one_hot(target, input.shape[1]).bool(), -torch.inf)
        loss = torch.clamp(margin - own + others.max(1).values, min=0)
    return {"mean": loss.mean(), "sum": loss.sum(), "none": loss}[reduction]


def batch_triplet_torch(embeddings, labels, reduction="mean", **options):
    """tests/naive_triplet.py's enumeration of every triplet, with fastloss's defaults."""
    defaults = {k: p.default for k, p in inspect.signature(fl.batch_triplet_loss).parameters.items()
                if k in ("strategy", "margin", "metric", "soft_margin")}
    o = {**defaults, **options}
    return naive_triplet.batch_triplet_loss(embeddings, labels.numpy(), o["strategy"], o["margin"], o["metric"],
                                            o["soft_margin"], reduction)
