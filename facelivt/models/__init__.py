"""FaceLiVT model library: layers, network, registry, reparameterization, released-checkpoint layout."""
from facelivt.models.config import VARIANTS, FaceLiVTConfig
from facelivt.models.facelivt import FaceLiVT
from facelivt.models.registry import create_model, list_models, register_model
from facelivt.models.reparam import count_batchnorm, reparameterize_model

__all__ = [
    "FaceLiVT",
    "FaceLiVTConfig",
    "VARIANTS",
    "count_batchnorm",
    "create_model",
    "list_models",
    "register_model",
    "reparameterize_model",
]
