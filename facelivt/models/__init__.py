"""FaceLiVT model library: layers, network, registry, reparameterization, released-checkpoint layout."""
from facelivt.models.config import V2_VARIANTS, VARIANTS, FaceLiVTConfig, FaceLiVTv2Config
from facelivt.models.facelivt import FaceLiVT
from facelivt.models.facelivtv2 import FaceLiVTv2
from facelivt.models.preprocess import DEFAULT_PREPROCESS, Preprocess, preprocess_of
from facelivt.models.registry import create_model, list_models, register_model
from facelivt.models.reparam import count_batchnorm, reparameterize_model

__all__ = [
    "FaceLiVT",
    "FaceLiVTConfig",
    "DEFAULT_PREPROCESS",
    "Preprocess",
    "FaceLiVTv2",
    "FaceLiVTv2Config",
    "V2_VARIANTS",
    "VARIANTS",
    "count_batchnorm",
    "create_model",
    "list_models",
    "preprocess_of",
    "register_model",
    "reparameterize_model",
]

from facelivt.models.released import CheckpointMismatchError, convert_released_state_dict  # noqa: E402
from facelivt.models.weights import load_model, read_checkpoint, save_weights  # noqa: E402

__all__ += ["CheckpointMismatchError", "convert_released_state_dict", "load_model", "read_checkpoint", "save_weights"]
from facelivt.models import peers  # noqa: E402,F401  (registers peer models)
from facelivt.models.export_form import export_form_model  # noqa: E402

__all__ += ["export_form_model"]
