"""torch.hub entry points: ``torch.hub.load(repo_dir, "facelivt_s", source="local", pretrained=True)``
or ``weights=PATH``.

``pretrained=True`` loads the authors' published weights of that variant (fetched once into the facelivt
cache, see ``facelivt models``); ``weights`` may be this project's safetensors, the authors' released
``.pt``, a pretrained name or a remote reference (``hf://owner/repo/file``, ``https://...``).
"""
dependencies = ["torch", "safetensors", "huggingface_hub"]

from facelivt.models import V2_VARIANTS as _V2_VARIANTS  # noqa: E402
from facelivt.models import VARIANTS as _VARIANTS  # noqa: E402
from facelivt.models import load_model as _load_model  # noqa: E402


def _entry(name: str):
    def entry(pretrained: bool = False, weights: str | None = None, deploy: bool = False, **overrides):
        return _load_model(name, weights, pretrained=pretrained, deploy=deploy, **overrides)

    entry.__name__ = name
    entry.__doc__ = (f"{name} (train form unless deploy=True); pretrained=True: the published weights; "
                     "weights: a file, pretrained name or remote reference")
    return entry


for _name in [*_VARIANTS, *_V2_VARIANTS]:
    globals()[_name] = _entry(_name)
