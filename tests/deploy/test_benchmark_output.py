"""bench.md and bench.json are written as one set: a full disk leaves an earlier pair unchanged."""
from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from disk_helpers import fill, listing, tmpfs
from facelivt.cpu import cpu_capability
from facelivt.deploy.bench_report import save_result, to_markdown
from facelivt.deploy.bench_results import BenchResult
from facelivt.deploy.benchmark import BenchConfig, environment
from facelivt.errors import OutputWriteError


def _result() -> BenchResult:
    cfg = BenchConfig.quick_config(models=("facelivt_s",), batch_sizes=(1,), tables=("peers",))
    return BenchResult(environment(cfg.threads, cfg.device), asdict(cfg))


def test_save_result_writes_both(tmp_path):
    result = _result()
    md, js = save_result(result, tmp_path / "b")
    assert md.read_text(encoding="utf-8") == to_markdown(result)
    assert json.loads(js.read_text())["config"]["threads"] == result.config["threads"]
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["bench.json", "bench.md"]


def test_save_result_on_a_full_disk_keeps_the_earlier_pair():
    with tmpfs("200k") as disk:
        (disk / "bench.md").write_text("earlier md\n")
        (disk / "bench.json").write_text('{"earlier": true}\n')
        before = listing(disk)
        fill(disk, leave=0)
        with pytest.raises(OutputWriteError, match="No space left on device"):
            save_result(_result(), disk)
        (disk / ".filler").unlink()
        assert listing(disk) == before


def test_bench_records_and_prints_the_cpu_capability(tmp_path):
    result = _result()
    cap = cpu_capability(result.environment["threads"])
    assert result.environment["cpu_capability"]["summary"] == cap.summary()
    md, js = save_result(result, tmp_path / "b")
    assert f"- CPU capability: {cap.summary()}" in md.read_text(encoding="utf-8").splitlines()
    assert json.loads(js.read_text())["environment"]["cpu_capability"]["torch"] == cap.torch
