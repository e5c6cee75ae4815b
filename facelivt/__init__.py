"""facelivt: FaceLiVT face recognition (ICIP 2025) as an installable library and command-line tool."""
from facelivt.deploy.optimize import optimize_for_inference
from facelivt.models import convert_released_state_dict, create_model, list_models, load_model, reparameterize_model, save_weights

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "convert_released_state_dict",
    "create_model",
    "list_models",
    "load_model",
    "optimize_for_inference",
    "reparameterize_model",
    "save_weights",
]
