"""Deployment: MAC/parameter counting, inference optimisation, export and benchmarking."""
from facelivt.deploy.counting import Complexity, complexity, count_macs, count_params
from facelivt.deploy.optimize import InferenceModule, optimize_for_inference

__all__ = ["Complexity", "InferenceModule", "complexity", "count_macs", "count_params", "optimize_for_inference"]
