"""A command imports only what it uses: ``facelivt verify`` of two real photos with a local weights file
loads no export, plotting, clustering, index or compiler package (each costs start-up time)."""
from __future__ import annotations

import json
import subprocess
import sys

import facelivt

NOT_FOR_VERIFY = ["onnx", "onnxruntime", "onnxscript", "matplotlib", "sklearn", "scipy", "faiss", "coremltools",
                  "tensorboard", "sympy", "torch._dynamo", "torch._inductor", "torch.onnx",
                  "facelivt.deploy", "facelivt.training", "facelivt.quickstart"]

SCRIPT = """
import json, sys
from facelivt.cli import main
rc = main(sys.argv[1:])
print(json.dumps({"rc": rc, "modules": sorted(sys.modules)}))
"""


def test_verify_with_local_weights_imports_only_what_it_uses(tmp_path, shared_dir):
    weights = tmp_path / "w.safetensors"
    facelivt.save_weights(facelivt.create_model("facelivtv2_xs"), weights)
    folders = sorted(p for p in (shared_dir / "data" / "celeba_subset").iterdir() if p.is_dir())[:2]
    photos = [str(min(f.glob("*.jpg"))) for f in folders]
    proc = subprocess.run([sys.executable, "-c", SCRIPT, "verify", *photos, "--weights", str(weights), "--quiet"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["rc"] == 0
    loaded = [m for m in NOT_FOR_VERIFY if m in result["modules"]]
    assert loaded == []
