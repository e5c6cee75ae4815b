"""Deployment: MAC/parameter counting, inference optimisation, export and benchmarking.

Layers, each importing only from those below it: leaves (``interface``, ``sessions``, ``timing``,
``counting``, ``crops``, ``int8_choice``), checks and export forms (``parity``, ``onnx_graph``), one module
per format (``onnx_export``, ``torchscript``, ``coreml``, ``quantize``), and the pipelines on top
(``export``, ``optimize``, ``benchmark`` with ``bench_results`` and ``bench_report``).
"""
from facelivt.deploy.counting import Complexity, complexity, count_macs, count_params
from facelivt.deploy.optimize import InferenceModule, optimize_for_inference

__all__ = ["Complexity", "InferenceModule", "complexity", "count_macs", "count_params", "optimize_for_inference"]
