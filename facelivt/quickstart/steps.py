"""The quickstart's steps, in order: key and title (used by the progress output and the report)."""

STEPS = (
    ("data", "data: faces and the identity split"),
    ("plan", "plan: calibrate a training step, size the runs to the budget"),
    ("teacher", "train the teacher"),
    ("student_kd", "train the student with distillation"),
    ("student_plain", "train the student without distillation"),
    ("evaluate", "held-out verification (10-fold protocol)"),
    ("reparameterize", "reparameterize: deploy form, parity, weights"),
    ("onnx", "export ONNX and check it with ONNX Runtime"),
    ("benchmark", "benchmark train form, deploy form, ONNX Runtime and the peer"),
    ("report", "write the report"),
)
