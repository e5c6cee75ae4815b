"""Training losses: margin softmax heads, Partial FC, embedding distillation."""
from .distill import DistillationLoss
from .margin import CombinedMarginLoss, margin_loss
from .partial_fc import PartialFC, partial_fc_loss, shard_range

__all__ = ["CombinedMarginLoss", "DistillationLoss", "PartialFC", "margin_loss", "partial_fc_loss", "shard_range"]
