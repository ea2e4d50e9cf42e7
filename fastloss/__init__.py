"""fastloss: torch.nn's losses from NumPy arrays, value and gradient in one fused call.

Every loss has torch.nn.functional's name, arguments and numbers, plus keyword-only
``grad=True`` to get ``(loss, grad)``; criterion classes carry the same names as
torch.nn's. See README.md and the API contract for the details.
"""
from ._warmup import warmup
from .diagnose import diagnose_training
from .classification import (BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, FocalLoss, KLDivLoss, NLLLoss,
                             SigmoidFocalLoss, binary_cross_entropy, binary_cross_entropy_with_logits,
                             cross_entropy, focal_loss, kl_div, nll_loss, sigmoid_focal_loss)
from .ctc import CTCLoss, ctc_forced_align, ctc_loss
from .triplet import BatchTripletLoss, batch_triplet_loss, mine_triplets, pairwise_distances
from .embedding import (ContrastiveLoss, CosineEmbeddingLoss, TripletMarginLoss, TripletMarginWithDistanceLoss,
                        contrastive_loss, cosine_embedding_loss, triplet_margin_loss, triplet_margin_with_distance_loss)
from .extras import AnchorLoss, DiceLoss, LargeMarginCosineLoss, anchor_loss, dice_loss, large_margin_cosine_loss
from .margin import (HingeEmbeddingLoss, HingeLoss, MarginRankingLoss, MultiLabelMarginLoss, MultiLabelSoftMarginLoss,
                     MultiMarginLoss, SoftMarginLoss, hinge_embedding_loss, hinge_loss, margin_ranking_loss,
                     multi_margin_loss, multilabel_margin_loss, multilabel_soft_margin_loss, soft_margin_loss)
from .regression import (GaussianNLLLoss, HuberLoss, L1Loss, MSELoss, PoissonNLLLoss, SmoothL1Loss, gaussian_nll_loss,
                         huber_loss, l1_loss, mse_loss, poisson_nll_loss, smooth_l1_loss)

__version__ = "0.1.0"
