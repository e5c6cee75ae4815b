"""``facelivt quickstart``: the whole FaceLiVT story in minutes on a laptop CPU.

Synthetic identities (or an image folder) are split into training and held-out identities; a small
MHSA teacher is trained, then FaceLiVT-S with distillation from it and, for comparison, without;
the three are evaluated on held-out verification pairs (10-fold protocol), reparameterized (deploy
form checked against the train form), exported to ONNX (checked with ONNX Runtime) and timed
against EdgeFace-XS. The report folder holds ``report.md``, ``report.html``, ``results.json``,
the figures and the weights of every model::

    from facelivt.quickstart import QuickstartOptions, run_quickstart
    result = run_quickstart(QuickstartOptions(out="quickstart_out", budget_minutes=6))
    print(result.results["verification"]["student_kd"]["accuracy"])
"""
from .data import FaceArray, VerificationPairs, folder_faces, make_pairs, split_faces, synthetic_faces
from .pipeline import REPORT_FILES, STEPS, QuickstartResult, run_quickstart
from .plan import DEFAULT_BUDGET_MINUTES, QUICK_BUDGET_MINUTES, Plan, QuickstartOptions, base_plan, plan_steps

__all__ = [
    "DEFAULT_BUDGET_MINUTES",
    "FaceArray",
    "Plan",
    "QUICK_BUDGET_MINUTES",
    "QuickstartOptions",
    "QuickstartResult",
    "REPORT_FILES",
    "STEPS",
    "VerificationPairs",
    "base_plan",
    "folder_faces",
    "make_pairs",
    "plan_steps",
    "run_quickstart",
    "split_faces",
    "synthetic_faces",
]
