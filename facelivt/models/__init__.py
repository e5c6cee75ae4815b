"""FaceLiVT model library: layers, network, registry, reparameterization, released-checkpoint layout."""
from facelivt.models.config import V2_VARIANTS, VARIANTS, FaceLiVTConfig, FaceLiVTv2Config
from facelivt.models.embed import embed_batches, embed_images, embedding_dim
from facelivt.models.facelivt import FaceLiVT
from facelivt.models.facelivtv2 import FaceLiVTv2
from facelivt.models.preprocess import DEFAULT_PREPROCESS, Preprocess, preprocess_of
from facelivt.models.registry import build_model, check_model_name, list_models, register_model
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
    "build_model",
    "check_model_name",
    "count_batchnorm",
    "embed_batches",
    "embed_images",
    "embedding_dim",
    "list_models",
    "preprocess_of",
    "register_model",
    "reparameterize_model",
]

from facelivt.models.released import CheckpointMismatchError, convert_released_state_dict  # noqa: E402
from facelivt.models.card import CalibratedThreshold, HeldOutResult, ModelCard, TrainingData, read_card  # noqa: E402
from facelivt.models.weights import read_checkpoint, save_weights, store_card, weights_fingerprint  # noqa: E402
from facelivt.models.pretrained import DEFAULT_PRETRAINED, PRETRAINED, PretrainedWeights, list_pretrained, pretrained_weights  # noqa: E402
from facelivt.models.hub import CachedWeights, DownloadError, IntegrityError, cached_weights, fetch_weights, facelivt_home  # noqa: E402
from facelivt.models.factory import create_model, load_model, resolve_weights, weights_variant  # noqa: E402

__all__ += ["CheckpointMismatchError", "convert_released_state_dict", "create_model", "load_model", "read_checkpoint",
            "resolve_weights", "save_weights", "DEFAULT_PRETRAINED", "PRETRAINED", "PretrainedWeights", "list_pretrained",
            "pretrained_weights", "CachedWeights", "DownloadError", "IntegrityError", "cached_weights", "fetch_weights",
            "facelivt_home", "weights_variant", "CalibratedThreshold", "HeldOutResult", "ModelCard", "TrainingData",
            "read_card", "store_card", "weights_fingerprint"]
from facelivt.models import peers  # noqa: E402,F401  (registers peer models)
from facelivt.models.export_form import export_form_model  # noqa: E402

__all__ += ["export_form_model"]
