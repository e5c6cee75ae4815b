"""Run under ``torchrun --nproc_per_node N`` (gloo, CPU): train a TinyNet on the synthetic faces of
``train_helpers.reshard_config`` into each OUTPUT in turn (one process group for all), resuming
whatever checkpoint is there.

``--stop-after K`` ends the run right after the checkpoint of step K is written (as if it had
been killed then), so a later run can continue it with another number of processes."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch.distributed as dist

from facelivt.training import Trainer, train

from train_helpers import TinyNet, reshard_config, reshard_faces


class Stop(Exception):
    pass


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("outputs", nargs="+")
    parser.add_argument("--stop-after", type=int, default=None)
    args = parser.parse_args()
    if args.stop_after is not None:
        save = Trainer.save

        def save_then_stop(self):
            folder = save(self)
            if self.run_state.global_step == args.stop_after:
                raise Stop
            return folder

        Trainer.save = save_then_stop
    dist.init_process_group("gloo")
    try:
        for output in args.outputs:
            try:
                train(reshard_config(Path(output)), dataset=reshard_faces(), model=TinyNet(dim=16))
            except Stop:
                pass
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
