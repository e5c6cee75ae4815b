"""Resume with another number of processes: the Partial FC class centres (and their AdamW moments)
and the position in the epoch are re-split, and the continued run is the run that would have used
the new count from that step."""
from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from facelivt.data import DistributedResumableSampler
from facelivt.training import CheckpointManager, load_checkpoint_file, train
from facelivt.training.reshard import ReshardError, reshard_state

from train_helpers import GLOO_SCRIPT, RESHARD_IDENTITIES, TinyNet, reshard_config, reshard_faces


def even_split(num_classes: int, parts: int) -> list[tuple[int, int]]:
    """(start, end) of each part, the first ``num_classes % parts`` one row longer (written here
    independently of facelivt.losses.shard_range)."""
    bounds, start = [], 0
    for r in range(parts):
        size = num_classes // parts + (1 if r < num_classes % parts else 0)
        bounds.append((start, start + size))
        start += size
    return bounds


def fake_states(num_classes: int, world: int, dim: int = 3) -> tuple[list[dict], dict[str, torch.Tensor]]:
    """Rank states shaped like the trainer's: a replicated backbone tensor (param 0) and the centre
    shard (param 1) with AdamW moments."""
    g = torch.Generator().manual_seed(world)
    full = {k: torch.randn(num_classes, dim, generator=g) for k in ("weight", "exp_avg", "exp_avg_sq")}
    backbone = torch.randn(4, generator=g)
    states = []
    for r, (a, b) in enumerate(even_split(num_classes, world)):
        states.append({
            "rank": r, "world_size": world, "global_step": 7,
            "model": {"w": backbone.clone()},
            "partial_fc": {"weight": full["weight"][a:b].clone(), "sample_step": torch.tensor(7)},
            "optimizer": {
                "state": {0: {"step": torch.tensor(7.0), "exp_avg": backbone * 0.1, "exp_avg_sq": backbone ** 2},
                          1: {"step": torch.tensor(7.0), "exp_avg": full["exp_avg"][a:b].clone(),
                              "exp_avg_sq": full["exp_avg_sq"][a:b].clone()}},
                "param_groups": [{"params": [0], "lr": 0.1}, {"params": [1], "lr": 0.1}],
            },
            "rng": {"torch": torch.tensor([r])},
            "bad_records": torch.tensor([r, 100 + r]),
        })
    return states, full


@pytest.mark.parametrize("old", [1, 2, 3])
@pytest.mark.parametrize("new", [1, 2, 3, 4])
def test_resplit_shards_lay_end_to_end_as_before(old, new):
    states, full = fake_states(10, old)
    out = [reshard_state(states, new, r) for r in range(new)]
    assert torch.equal(torch.cat([s["partial_fc"]["weight"] for s in out]), full["weight"])
    for key in ("exp_avg", "exp_avg_sq"):
        assert torch.equal(torch.cat([s["optimizer"]["state"][1][key] for s in out]), full[key])
    for r, s in enumerate(out):
        a, b = even_split(10, new)[r]
        assert s["partial_fc"]["weight"].shape[0] == b - a
        assert torch.equal(s["optimizer"]["state"][1]["step"], torch.tensor(7.0))
        assert torch.equal(s["optimizer"]["state"][0]["exp_avg"], states[0]["optimizer"]["state"][0]["exp_avg"])
        assert torch.equal(s["model"]["w"], states[0]["model"]["w"])
        assert torch.equal(s["rng"]["torch"], torch.tensor([r % old]))
        assert sorted(s["bad_records"].tolist()) == sorted({v for r2 in range(old) for v in (r2, 100 + r2)})
    # and back: nothing lost on the way
    back = [reshard_state(out, old, r) for r in range(old)]
    for r in range(old):
        assert torch.equal(back[r]["partial_fc"]["weight"], states[r]["partial_fc"]["weight"])
        assert torch.equal(back[r]["optimizer"]["state"][1]["exp_avg_sq"], states[r]["optimizer"]["state"][1]["exp_avg_sq"])


def test_resplit_refuses_rank_files_that_do_not_fit():
    states, _ = fake_states(10, 2)
    with pytest.raises(ReshardError, match="rank 1 is at step"):
        reshard_state([states[0], dict(states[1], global_step=8)], 3, 0)
    with pytest.raises(ReshardError, match="cannot be split over 11"):
        reshard_state(states, 11, 0)
    bad = copy.deepcopy(states)
    bad[1]["optimizer"]["state"][1]["exp_avg"] = bad[1]["optimizer"]["state"][1]["exp_avg"][:2]
    with pytest.raises(ReshardError, match="exp_avg"):
        reshard_state(bad, 3, 0)


def test_manager_resplits_the_rank_files_of_a_checkpoint(tmp_path):
    states, full = fake_states(10, 2)
    for r, s in enumerate(states):
        CheckpointManager(tmp_path, rank=r, world_size=2).save(s, 7)
    loaded = [CheckpointManager(tmp_path, rank=r, world_size=3).load(tmp_path / "step-00000007") for r in range(3)]
    assert torch.equal(torch.cat([s["partial_fc"]["weight"] for s in loaded]), full["weight"])
    assert [s["world_size"] for s in loaded] == [3, 3, 3] and [s["rank"] for s in loaded] == [0, 1, 2]
    (tmp_path / "step-00000007" / "rank1.pt").unlink()
    with pytest.raises(ValueError, match="written by 2 processes but rank1.pt is missing"):
        CheckpointManager(tmp_path, rank=0, world_size=1).load(tmp_path / "step-00000007")


def _epoch_positions(n: int, world: int, rank: int, start: int, count: int, epoch: int = 3) -> list[int]:
    s = DistributedResumableSampler(n, world, rank, shuffle=True, seed=5, drop_last=True)
    s.set_epoch(epoch)
    s.set_global_start(start)
    return list(s)[:count]


@pytest.mark.parametrize("n", [40, 41, 47])
@pytest.mark.parametrize("old,new", [(2, 1), (1, 3), (2, 3), (3, 4), (4, 2)])
def test_resumed_epoch_sees_the_remaining_samples_exactly_once(n, old, new):
    batch = 12
    steps = n // batch  # steps of an epoch, whatever the number of processes
    order = _epoch_positions(n, 1, 0, 0, n)  # the epoch's order (one process takes all of it)
    for done in range(steps + 1):
        seen = []
        for r in range(old):  # the first run: `done` steps of batch / old images per process
            seen += _epoch_positions(n, old, r, 0, done * batch // old)
        for r in range(new):  # the resumed run, from where the first stopped
            seen += _epoch_positions(n, new, r, done * batch, (steps - done) * batch // new)
        assert sorted(seen) == sorted(order[: steps * batch]), (done, old, new)  # nothing repeated or dropped
        assert len(set(seen)) == len(seen)


def _torchrun(nproc: int, *args: str | Path) -> None:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           str(GLOO_SCRIPT), *map(str, args)]
    proc = subprocess.run(cmd, cwd=GLOO_SCRIPT.parent, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]


def _write_split(src: Path, dst: Path, new: int) -> None:
    """The step folder ``src`` written by several processes, merged and cut for ``new`` processes by the
    test's own code, as a checkpoint of a ``new``-process run (the reference)."""
    pointer = json.loads((src.parent / "last.json").read_text())
    old = pointer["world_size"]
    states = [torch.load(src / f"rank{r}.pt", weights_only=True) for r in range(old)]
    pid = states[0]["optimizer"]["param_groups"][1]["params"][0]
    full = {"weight": torch.cat([s["partial_fc"]["weight"] for s in states])}
    for key in ("exp_avg", "exp_avg_sq"):
        full[key] = torch.cat([s["optimizer"]["state"][pid][key] for s in states])
    folder = dst / "checkpoints" / src.name
    folder.mkdir(parents=True)
    for r, (a, b) in enumerate(even_split(RESHARD_IDENTITIES, new)):
        s = copy.deepcopy(states[0])
        s["partial_fc"]["weight"] = full["weight"][a:b].clone()
        for key in ("exp_avg", "exp_avg_sq"):
            s["optimizer"]["state"][pid][key] = full[key][a:b].clone()
        s["rng"] = states[r % old]["rng"]
        s["rank"], s["world_size"] = r, new
        torch.save(s, folder / f"rank{r}.pt")
    (dst / "checkpoints" / "last.json").write_text(json.dumps(dict(pointer, world_size=new)))


def _final(output: Path) -> tuple[dict, list[torch.Tensor], list[float]]:
    pointer = json.loads((output / "checkpoints" / "last.json").read_text())
    ranks = [load_checkpoint_file(output / "checkpoints" / pointer["dir"] / f"rank{r}.pt") for r in range(pointer["world_size"])]
    return load_file(str(output / "model.safetensors")), [s["partial_fc"]["weight"] for s in ranks], ranks[0]["loss_history"].tolist()


@pytest.mark.slow
def test_resume_with_another_process_count_continues_the_same_run(tmp_path):
    two = tmp_path / "two"
    _torchrun(2, "--stop-after", "4", two)  # 2 processes, stopped after the checkpoint of step 4 (mid-epoch)
    step4 = two / "checkpoints" / "step-00000004"
    assert json.loads((two / "checkpoints" / "last.json").read_text())["world_size"] == 2
    first_losses = load_checkpoint_file(step4 / "rank0.pt")["loss_history"].tolist()
    before = load_checkpoint_file(step4 / "rank0.pt")["model"]

    runs = {}
    for new in (1, 3):
        resumed, reference = tmp_path / f"resumed{new}", tmp_path / f"reference{new}"
        shutil.copytree(two, resumed)  # continued by `new` processes: re-split on loading
        _write_split(step4, reference, new)  # the same state, split by the test, as if always run by `new`
        if new == 1:
            for out in (resumed, reference):
                train(reshard_config(out), dataset=reshard_faces(), model=TinyNet(dim=16))
        else:
            _torchrun(new, resumed, reference)
        runs[new] = _final(resumed)
        ref = _final(reference)
        weights, centres, losses = runs[new]
        assert weights.keys() == ref[0].keys() and all(torch.equal(weights[k], ref[0][k]) for k in weights)
        assert torch.equal(torch.cat(centres), torch.cat(ref[1])) and len(centres) == new
        assert losses == ref[2] and len(losses) == 6 and losses[:4] == first_losses
        assert any((weights[k] - before[k]).abs().max() > 1e-4 for k in weights)  # it did train on
    # and it is the run one process would have made from the start (up to float summation order)
    straight = tmp_path / "straight"
    train(reshard_config(straight), dataset=reshard_faces(), model=TinyNet(dim=16))
    ref_weights, ref_centres, ref_losses = _final(straight)
    for new, (weights, centres, losses) in runs.items():
        assert max((weights[k] - ref_weights[k]).abs().max().item() for k in weights) < 1e-6, new
        assert (torch.cat(centres) - ref_centres[0]).abs().max() < 1e-6, new
        assert losses == pytest.approx(ref_losses, rel=1e-6), new
