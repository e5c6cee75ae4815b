"""torch.hub entry points: ``torch.hub.load(repo_dir, "facelivt_s", source="local", weights=PATH)``.

``weights`` may be this project's safetensors or the authors' released ``.pt``; nothing is downloaded.
"""
dependencies = ["torch", "safetensors"]

from facelivt.models import V2_VARIANTS as _V2_VARIANTS  # noqa: E402
from facelivt.models import VARIANTS as _VARIANTS  # noqa: E402
from facelivt.models import load_model as _load_model  # noqa: E402


def _entry(name: str):
    def entry(weights: str | None = None, deploy: bool = False, **overrides):
        return _load_model(name, weights, deploy=deploy, **overrides)

    entry.__name__ = name
    entry.__doc__ = f"{name} (train form unless deploy=True); weights: path to safetensors or a released .pt"
    return entry


for _name in [*_VARIANTS, *_V2_VARIANTS]:
    globals()[_name] = _entry(_name)
