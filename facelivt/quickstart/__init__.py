"""``facelivt quickstart``: the whole FaceLiVT story in minutes on a laptop CPU, an application on top
of the library (it owns only its plan and its report).

Synthetic identities (or an image folder) are split into training and held-out identities; a small
MHSA teacher is trained, then FaceLiVT-S with distillation from it and, for comparison, without
(:func:`facelivt.training.train`); the three are evaluated on held-out verification pairs (10-fold
protocol), reparameterized (deploy form checked against the train form), exported to ONNX (checked
with ONNX Runtime) and timed against EdgeFace-XS. Its settings are one config file,
``quickstart.yaml`` beside this module: the training sections of ``facelivt train`` plus a
``quickstart`` section. The report folder holds ``report.md``, ``report.html``, ``results.json``,
the figures and the weights of every model::

    from facelivt.quickstart import load_quickstart_config, run_quickstart
    config = load_quickstart_config(overrides=["quickstart.out=quickstart_out", "quickstart.budget_minutes=6"])
    print(run_quickstart(config).summary.verification["student_kd"].accuracy)  # results.json: summary.to_json()
"""
from .config import DEFAULT_CONFIG, QUICK_BUDGET_MINUTES, QuickstartConfig, QuickstartSettings, load_quickstart_config
from .pipeline import REPORT_FILES, QuickstartResult, run_quickstart
from .plan import Plan, base_plan, plan_steps
from .results import RunSummary
from .steps import STEPS

__all__ = [
    "DEFAULT_CONFIG",
    "Plan",
    "QUICK_BUDGET_MINUTES",
    "QuickstartConfig",
    "QuickstartResult",
    "QuickstartSettings",
    "REPORT_FILES",
    "RunSummary",
    "STEPS",
    "base_plan",
    "load_quickstart_config",
    "plan_steps",
    "run_quickstart",
]
