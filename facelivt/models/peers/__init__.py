"""Peer face-recognition models, for comparison only: registered as ``edgeface_xs`` and
``mobilefacenet`` in the model registry, so ``create_model``/``load_model``/``reparameterize_model``
and the counters work on them as on FaceLiVT."""
from facelivt.models.peers.edgeface import EdgeFace, edgeface_xs
from facelivt.models.peers.mobilefacenet import MobileFaceNet, mobilefacenet
from facelivt.models.registry import list_models, register_model

PEER_MODELS = {"edgeface_xs": edgeface_xs, "mobilefacenet": mobilefacenet}

for _name, _builder in PEER_MODELS.items():
    if _name not in list_models():
        register_model(_name, _builder)

__all__ = ["PEER_MODELS", "EdgeFace", "MobileFaceNet", "edgeface_xs", "mobilefacenet"]
