"""facelivt: FaceLiVT face recognition (ICIP 2025) as an installable library and command-line tool."""
from facelivt.models import create_model, list_models, reparameterize_model

__version__ = "0.1.0"

__all__ = ["create_model", "list_models", "reparameterize_model", "__version__"]
