"""benchmarks/serve_load.py in its tiny mode: two real servers on loopback, a handful of requests per row,
both stopped by the script. Its tables' structure and that every request succeeded (no timing asserted:
the speed goals are read off the script's own output)."""
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "serve_load.py"
SINGLE, BATCHED = "no batching (--max-batch 1)", "micro-batching (--max-batch 32)"


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.split("|")[1:-1]]


def _tables(out: str) -> dict[str, list[list[str]]]:
    """Each table under the line that names it (the line before its blank line)."""
    blocks = out.split("\n\n")
    return {blocks[i - 1].strip().splitlines()[-1]: [_cells(ln) for ln in block.splitlines() if ln.startswith("| ")]
            for i, block in enumerate(blocks) if i and block.startswith("| ")}


def test_serve_load_quick_prints_its_tables_and_every_request_succeeds(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--json", str(tmp_path / "load.json")],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert out.startswith("CPU capability: CPU ") and "client and server share this machine's" in out
    tables = _tables(out)
    kinds = ("aligned 112x112 crops (aligned=true)", "raw photos (detect + align in the server)")
    titles = ("throughput", "the model inside the server (from /metrics)")
    assert list(tables) == [f"{k}: {t}" for k in kinds for t in titles]
    expected = [[s, c] for s in (SINGLE, BATCHED) for c in ("1", "4")]
    for kind in kinds:
        speed, model = tables[f"{kind}: throughput"], tables[f"{kind}: the model inside the server (from /metrics)"]
        assert speed[0][:4] == ["server", "clients", "requests", "failed"] and len(speed[0]) == 9
        assert [r[:2] for r in speed[2:]] == expected
        assert all(r[2] == "6" and r[3] == "0" and float(r[4]) > 0 for r in speed[2:])  # every request answered
        assert speed[2][7] == "1.00x" and speed[2][8] == "1.00x"  # the one-at-a-time row is its own reference
        assert all(len(r) == 9 for r in speed) and all(len(r) == 9 for r in model)
        own, served = model[2:5], model[5:]
        assert [r[0].split(" (")[0] for r in own] == [f"model's own, batch {b}" for b in (1, 8, 32)]
        assert own[-1][5] == "1.00x" and all(float(r[4]) > 0 for r in own)
        assert [r[:2] for r in served] == expected
        assert all(int(r[2]) > 0 for r in served)  # every row's requests went through the model
        assert {r[3] for r in served[:2]} == {"1.0"}  # --max-batch 1: one crop per model call
    goals = [ln for ln in out.splitlines() if ln.startswith("goal, ")]
    assert len(goals) == 4 and all(ln.endswith((": met", ": not met")) for ln in goals)
    data = json.loads((tmp_path / "load.json").read_text())
    assert len(data["rows"]) == 8 and all(r["failed"] == 0 and r["errors"] == {} for r in data["rows"])
    assert all(0 < r["model_images"] <= r["requests"] for r in data["rows"] if r["kind"] == "aligned")
    assert set(data["exit_codes"].values()) == {0}  # both servers stopped cleanly by SIGTERM
    assert data["cpu_capability"]["summary"] in out.splitlines()[0]
