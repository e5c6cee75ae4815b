"""Export forms as the exporters use them, and tools to look at the graph ONNX Runtime runs.

The exporters (:mod:`~facelivt.deploy.onnx_export`, :mod:`~facelivt.deploy.torchscript`,
:mod:`~facelivt.deploy.coreml`) call :func:`facelivt.models.export_form.export_form_model`: a copy of a
(deploy-form) model in which every block whose eager forward reads tensor shapes at run time is
replaced by its export form, an equivalent module built for a fixed map size (float32 round-off).
The blocks own those forms (``export_form()`` next to ``reparameterize()``):

- FaceLiVT's MHLA becomes ``ExportMHLA`` (LayerNormalization over (C, H, W), heads first so each
  head's token MLP is one MatMul, constant reshapes with the batch as -1);
- MHSA becomes ``ExportMHSA`` (same idea; the 1/sqrt(d) scale is folded into the q projection);
- EdgeFace's SDTA block becomes ``ExportSDTA`` (constant positional encoding, shape-free reshapes,
  L2-normalisation without Expand), and PReLU (MobileFaceNet) becomes ``a*x + (1-a)*relu(x)``
  (ORT's PRelu kernel is slow and leaves the blocked conv layout), so the peers get the same care.

The export-form classes live beside their blocks (:mod:`facelivt.models.layers`,
:mod:`facelivt.models.export_form`, :mod:`facelivt.models.peers.edgeface`). ``graph_ops`` /
``optimized_graph`` count the nodes before and after ONNX Runtime's graph optimisations
(``SessionOptions.optimized_model_filepath``).
"""
from __future__ import annotations

import collections
import os
import tempfile
from pathlib import Path

from facelivt.deploy.sessions import onnx_session
from facelivt.extras import require
from facelivt.files import write_bytes

__all__ = ["graph_ops", "optimized_graph"]


def graph_ops(path_or_model) -> dict[str, int]:
    """Node count per op type of an ONNX file or ``onnx.ModelProto``."""
    onnx = require("onnx", "Reading an ONNX graph")

    model = onnx.load(str(path_or_model)) if isinstance(path_or_model, (str, os.PathLike)) else path_or_model
    return dict(collections.Counter(n.op_type for n in model.graph.node))


def optimized_graph(path: str | os.PathLike, threads: int = 1, keep: str | os.PathLike | None = None) -> dict[str, int]:
    """Op counts of the graph ONNX Runtime actually runs (all optimisations on, CPU provider).

    ``keep``: also write that optimised model there (it is specific to this machine's CPU).
    """
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "optimized.onnx"
        onnx_session(path, threads, optimized_path=out)
        if keep:
            write_bytes(keep, out.read_bytes())
        return graph_ops(out)
