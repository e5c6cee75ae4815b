"""The training loop: data, epochs, resume, periodic verification, checkpoints, export.

A run owns its output folder (:mod:`facelivt.training.lock`), writes every file through
:mod:`facelivt.files` (a full disk stops the run with one clear error and leaves the previous
checkpoint and ``last.json`` whole), and never checkpoints a state that is not finite
(:meth:`facelivt.training.engine.StepRunner.state_problem`)."""
from __future__ import annotations

import functools
import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from facelivt.data import DistributedResumableSampler, build_dataset, build_loader, split_identities
from facelivt.errors import FaceLiVTError, InputNotFoundError, InvalidInputError, check_input_file
from facelivt.evaluation import evaluate_bin
from facelivt.files import write_json, write_text
from facelivt.models import ModelCard, reparameterize_model, save_weights

from .batches import FlipSampler, TrainView, dataset_labels
from .card import RunFacts, training_card
from .checkpoint import CheckpointManager, rng_state, set_rng_state
from .config import Config, validate_config
from .distributed import DistEnv, any_true, broadcast_object, cleanup, init_distributed, union
from .engine import DivergedError, NonFiniteLossError, StepRunner, StepStats, build_step_runner
from .heldout import HeldoutPairs
from .lock import OutputInUseError, OutputLock
from .logging import Progress, RunLogger, plain
from .resume import check_epoch_length, check_resume, seek
from .schedule import lower_lr
from .teacher import data_key, warn_flip_mismatch

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a finished (or budget-stopped) run produced."""

    output_dir: Path
    weights: Optional[Path]  # model.safetensors (train form)
    deploy_weights: Optional[Path]  # model_deploy.safetensors (deploy form)
    best_weights: Optional[Path]
    last_checkpoint: Optional[Path]
    metrics: dict[str, dict]  # final verification results by set name
    best: Optional[dict]
    loss_history: list[float]  # loss of every optimiser step of the run (including resumed parts)
    steps: int
    total_steps: int
    stopped: str  # completed | time_budget | already_finished
    elapsed_s: float
    num_classes: int = 0
    bad_records: int = 0  # distinct unreadable records met so far (skipped, a neighbour used instead)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunState:
    """Where the loop stands, the part of a checkpoint the trainer owns besides the step runner's
    (:meth:`Trainer.state_dict`)."""

    global_step: int = 0  # optimiser steps done
    loss_history: list[float] = field(default_factory=list)  # loss of every optimiser step (resumed parts included)
    best: Optional[dict] = None  # best verification so far: {"metric", "value", "step"}
    elapsed_s: float = 0.0  # training time so far (what train.max_minutes counts)
    finished: bool = False  # reached the end of the run
    bad: set[int] = field(default_factory=set)  # indices (into the base data set) of unreadable records met

    @classmethod
    def from_checkpoint(cls, state: dict[str, Any], total_steps: int) -> "RunState":
        """The loop's part of a checkpoint's ``state``, for a run of ``total_steps``."""
        step = int(state["global_step"])
        bad = state.get("bad_records")
        return cls(
            global_step=step,
            loss_history=[float(v) for v in state["loss_history"].tolist()],
            best=state.get("best"),
            elapsed_s=float(state.get("elapsed_s", 0.0)),
            # a finished run whose train.epochs / max_steps were raised goes on to the new end
            finished=bool(state.get("finished", False)) and step >= total_steps,
            bad={int(i) for i in bad.tolist()} if torch.is_tensor(bad) else set(),
        )


def _dataset_spec(cfg: Config) -> dict[str, Any]:
    d = cfg.data
    if d.type == "synthetic":
        return {"type": "synthetic", "num_identities": d.num_identities, "images_per_identity": d.images_per_identity, "seed": d.synthetic_seed}
    if not Path(d.root).is_dir():  # configs name relative folders (data/...): say what to pass when it is missing
        what = "an image folder DIR/<identity>/<image>" if d.type == "folder" else "the folder of train.rec and train.idx"
        raise InputNotFoundError(f"data.root {d.root} not found: give data.root=DIR, {what} (a relative path is looked "
                                 "up in the working folder, then beside the config file's folder)")
    spec: dict[str, Any] = {"type": d.type, "root": d.root, "max_bad_fraction": d.max_bad_fraction}

    if d.type == "recordio" and d.label_cache:
        spec["label_cache"] = d.label_cache
    return spec


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Trainer:
    """One training run in this process (one rank of it when distributed).

    ``dataset``: any map-style data set of ``(3x112x112 tensor, label)`` items with a ``labels``
    array (e.g. :class:`facelivt.data.SyntheticIdentities`); default: built from ``cfg.data``.
    ``model``: a train-form backbone to train instead of ``cfg.model`` (same object is updated).
    ``teacher``: a distillation teacher module instead of the one ``cfg.distill`` names.

    Constructing a Trainer locks ``cfg.output`` (:class:`OutputInUseError` when another run holds
    it); :meth:`run` releases it at its end, :meth:`close` without running.
    """

    def __init__(
        self,
        cfg: Config,
        env: DistEnv | None = None,
        *,
        dataset: Dataset | None = None,
        model: nn.Module | None = None,
        teacher: nn.Module | None = None,
        progress: bool | None = None,
    ) -> None:
        validate_config(cfg, need_data=dataset is None)
        self.cfg = cfg
        self.env = env or DistEnv()
        self.out = Path(cfg.output)
        self.lock = OutputLock(self.out)
        self._lock_output()
        try:
            self._setup(dataset, model, teacher, progress)
        except BaseException:
            self.close()
            raise

    def _lock_output(self) -> None:
        """Rank 0 locks the output folder; every rank of the run learns whether it could."""
        error: Exception | None = None
        if self.env.is_main:
            try:
                self.lock.acquire()
            except Exception as exc:  # noqa: BLE001 - re-raised below, on every rank
                error = exc
        message = broadcast_object(self.env, str(error) if error is not None else None)
        if error is not None:
            raise error
        if message is not None:
            raise OutputInUseError(message)

    def close(self) -> None:
        """Release the output folder (idempotent)."""
        self.lock.release()

    def _setup(self, dataset: Dataset | None, model: nn.Module | None, teacher: nn.Module | None, progress: bool | None) -> None:
        cfg, t = self.cfg, self.cfg.train
        if t.num_threads is not None:
            torch.set_num_threads(t.num_threads)
        if t.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
            if torch.backends.cudnn.is_available():
                torch.backends.cudnn.benchmark = False
        _seed_everything(t.seed)
        self.show_progress = (t.progress if progress is None else progress) and self.env.is_main
        self._setup_data(dataset)
        warmup = cfg.optim.warmup_steps + int(round(cfg.optim.warmup_epochs * self.steps_per_epoch))
        if warmup >= self.total_steps:
            raise InvalidInputError(f"warm-up ({warmup} steps) must be shorter than the run ({self.total_steps} steps)")

        # ---- trainable state
        self.runner: StepRunner = build_step_runner(
            cfg,
            self.env,
            self.view.num_classes,
            self.total_steps,
            warmup,
            model=model,
            teacher=teacher,
            num_samples=len(self.view),
            cache_dir=str(self.out / "teacher_cache"),
            cache_key=data_key(self.view.indices, self.view.labels),
        )
        env = self.env
        self.ckpt = CheckpointManager(self.out / "checkpoints", env.rank, env.world_size, any_failed=functools.partial(any_true, env))
        self.run_state = RunState()
        self.last_saved_step: Optional[int] = None
        self.checkpoint_lr: Optional[float] = None  # optim.lr of the run that wrote the last checkpoint
        self.changed_settings: dict[str, tuple[Any, Any]] = {}
        self._clock = time.monotonic()
        self._window: list[StepStats] = []
        self._window_start = time.monotonic()
        self._setup_eval()

    def _setup_data(self, dataset: Dataset | None) -> None:
        cfg, t = self.cfg, self.cfg.train
        base = dataset if dataset is not None else build_dataset(_dataset_spec(cfg))
        labels = dataset_labels(base)
        train_idx, held_idx = split_identities(labels, cfg.data.held_out_fraction, cfg.data.split_seed)
        if train_idx.size == 0:
            raise InvalidInputError("no training samples (every identity is held out or unlabelled)")
        self.base, self.labels, self.held_idx = base, labels, held_idx
        self.dataset_object = type(dataset).__name__ if dataset is not None else None
        self.last_metrics: dict[str, dict] | None = None  # the latest verification results (model card)
        self.view = TrainView(base, train_idx, labels, report_bad=True)
        if cfg.distill.enabled and cfg.distill.cache != "none":
            warn_flip_mismatch(base)
        world, accum = self.env.world_size, t.accumulate
        if t.batch_size % (world * accum):
            raise InvalidInputError(
                f"train.batch_size ({t.batch_size}) must be divisible by processes x accumulate ({world} x {accum})"
            )
        self.micro_batch = t.batch_size // (world * accum)
        base_sampler = DistributedResumableSampler(len(self.view), world, self.env.rank, shuffle=True, seed=t.seed, drop_last=True)
        self.sampler = FlipSampler(base_sampler, t.seed, cfg.data.flip)
        self.loader = build_loader(
            self.view,
            self.micro_batch,
            sampler=self.sampler,
            num_workers=cfg.data.num_workers,
            drop_last=True,
            pin_memory=self.env.device.type == "cuda",
        )
        # floor(images / batch) whatever the number of processes, so a resumed run may use another count
        self.steps_per_epoch = (self.sampler.num_samples // self.micro_batch) // accum
        if self.steps_per_epoch < 1:
            raise InvalidInputError(
                f"{len(self.view)} training images are fewer than one step of train.batch_size={t.batch_size}; "
                "lower the batch size or use more data"
            )
        self.total_steps = t.max_steps if t.max_steps is not None else t.epochs * self.steps_per_epoch

    def _setup_eval(self) -> None:
        cfg = self.cfg
        self.heldout: Optional[HeldoutPairs] = None
        if cfg.eval.heldout_pairs and self.env.is_main:
            self.heldout = HeldoutPairs(self.base, self.held_idx, self.labels, cfg.eval.heldout_pairs, seed=cfg.data.split_seed, progress=self.show_progress)
        self.best_key = cfg.eval.best_metric or ("heldout" if cfg.eval.heldout_pairs else (Path(cfg.eval.bins[0]).stem if cfg.eval.bins else None))
        known = (["heldout"] if cfg.eval.heldout_pairs else []) + [Path(b).stem for b in cfg.eval.bins]
        if self.best_key is not None and self.best_key not in known:
            raise InvalidInputError(f"eval.best_metric={self.best_key!r} is none of the evaluated sets: {', '.join(known) or 'none'}")
        for b in cfg.eval.bins:
            check_input_file(b, "verification set")

    # ------------------------------------------------------------------ bad records
    def _note_bad(self, micro_batches: list) -> None:
        for batch in micro_batches:
            if len(batch) > 4 and bool(torch.as_tensor(batch[4]).any()):
                flags = torch.as_tensor(batch[4]).bool()
                for i in torch.as_tensor(batch[2])[flags].tolist():
                    self.run_state.bad.add(int(self.view.indices[int(i)]))

    def bad_records(self) -> int:
        """Distinct unreadable records met so far by every rank, its workers and the verification
        (collective under torch.distributed: call on every rank)."""
        tracker = getattr(self.base, "tracker", None)
        if tracker is not None:
            self.run_state.bad.update(int(i) for i in getattr(tracker, "bad", ()))
        self.run_state.bad = union(self.env, self.run_state.bad)
        return len(self.run_state.bad)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """This rank's checkpoint: the step runner's state plus the loop's :class:`RunState` (position,
        history, best result, clock, bad records), the data set's size, RNG states and config.
        Collective under torch.distributed (:meth:`bad_records`): call on every rank."""
        self.bad_records()
        run, per_epoch = self.run_state, self.steps_per_epoch
        state = self.runner.state_dict()
        state.update(
            {
                "global_step": run.global_step,
                "epoch": run.global_step // per_epoch,
                "step_in_epoch": run.global_step % per_epoch,
                "steps_per_epoch": per_epoch,
                # position in the epoch's order over all ranks (the same for any number of processes)
                "samples_in_epoch": (run.global_step % per_epoch) * self.cfg.train.batch_size,
                "num_classes": self.view.num_classes,
                "train_images": len(self.view),
                "bad_records": torch.tensor(sorted(run.bad), dtype=torch.int64),
                "loss_history": torch.tensor(run.loss_history, dtype=torch.float64),
                "best": run.best,
                "elapsed_s": run.elapsed_s,
                "finished": run.finished,
                "rng": rng_state(),
                "config": self.cfg.to_dict(),
            }
        )
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`'s ``state`` (same epoch length required); the bad records
        already met stay counted."""
        check_epoch_length(state, self.steps_per_epoch)
        self.runner.load_state_dict(state)
        restored = RunState.from_checkpoint(state, self.total_steps)
        restored.bad |= self.run_state.bad
        self.run_state = restored
        set_rng_state(state["rng"])

    def maybe_resume(self) -> Optional[Path]:
        """Continue from the checkpoint ``train.resume`` names (``auto``: the last one, if any),
        refusing one of another model or data set; the folder resumed from, or None for a fresh start."""
        mode = self.cfg.train.resume
        folder = None if mode == "never" else self.ckpt.resolve(None if mode == "auto" else mode)
        if folder is None:
            return None
        state = self.ckpt.load(folder)
        self.changed_settings = check_resume(state, self.cfg.to_dict(), self.view.num_classes, len(self.view), folder)
        if self.changed_settings and self.env.is_main:
            log.info("resuming %s with changed settings: %s", folder,
                     ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in self.changed_settings.items()))
        self.load_state_dict(state)
        self.last_saved_step = self.run_state.global_step
        self.checkpoint_lr = float(state.get("config", {}).get("optim", {}).get("lr", self.cfg.optim.lr))
        return folder

    def save(self) -> Path:
        """Checkpoint the current state, after checking on every rank that it is finite."""
        problem = self.runner.state_problem()
        step = self.run_state.global_step
        if any_true(self.env, problem is not None):
            raise DivergedError(f"the state after optimiser step {step - 1} was not checkpointed: "
                                f"{problem or 'another process holds non-finite values'}")
        folder = self.ckpt.save(self.state_dict(), step, {"epoch": step / self.steps_per_epoch, "finished": self.run_state.finished})
        self.last_saved_step = step
        self.checkpoint_lr = self.cfg.optim.lr
        return folder

    def _stop_advice(self, exc: NonFiniteLossError) -> str:
        """``exc``'s message plus where the last good checkpoint is and how to continue from it."""
        lower = f"optim.lr={lower_lr(self.cfg.optim.lr, self.checkpoint_lr):g}"
        try:
            info = self.ckpt.read_pointer("last")
        except ValueError:
            info = None
        if info is None:
            return f"{exc}. Training stopped before any checkpoint was written: start again with a lower learning rate (e.g. {lower})"
        folder = self.ckpt.root / info["dir"]
        return (
            f"{exc}. Training stopped; the last good checkpoint is {folder} (step {info['step']}): run again with a "
            f"lower learning rate (e.g. {lower}) and train.resume=auto (the default) or train.resume={folder} to continue from it"
        )

    # ------------------------------------------------------------------ rank-0 work
    def _main_only(self, what: str, fn) -> Any:
        """``fn()`` on rank 0; when it fails every rank stops (instead of waiting for rank 0)."""
        error: Exception | None = None
        value = None
        if self.env.is_main:
            try:
                value = fn()
            except Exception as exc:  # noqa: BLE001 - re-raised below
                error = exc
        failed = any_true(self.env, error is not None)
        if error is not None:
            raise error
        if failed:
            raise FaceLiVTError(f"process 0 could not {what} (see its error)")
        return value

    # ------------------------------------------------------------------ verification
    def evaluate(self) -> dict[str, dict]:
        """Verification on every configured set (rank 0 computes; the result reaches every rank)."""
        results: dict[str, dict] = {}
        if self.env.is_main:
            model = self.runner.model
            dev = str(self.env.device)
            if self.heldout is not None:
                results["heldout"] = self.heldout.evaluate(model, self.cfg.eval.batch_size, dev)
            if self.cfg.eval.bins:
                for b in self.cfg.eval.bins:
                    results[Path(b).stem] = evaluate_bin(model, b, batch_size=self.cfg.eval.batch_size, device=dev)
        return broadcast_object(self.env, results)

    @property
    def has_eval(self) -> bool:
        return bool(self.cfg.eval.heldout_pairs or self.cfg.eval.bins)

    def _after_eval(self, results: dict[str, dict], logger: RunLogger, progress: Progress) -> bool:
        """Log results; True when they are the best so far."""
        self.last_metrics = results
        summary = {k: {m: v[m] for m in ("accuracy", "accuracy_std", "auc", "eer") if m in v} for k, v in results.items()}
        logger.log("eval", self.run_state.global_step, **summary)
        text = ", ".join(f"{k} {v['accuracy'] * 100:.2f}%" for k, v in results.items())
        progress.write(f"step {self.run_state.global_step}: verification {text}")
        if self.best_key is None or self.best_key not in results:
            return False
        value = float(results[self.best_key]["accuracy"])
        if self.run_state.best is None or value > float(self.run_state.best["value"]):
            self.run_state.best = {"metric": self.best_key, "value": value, "step": self.run_state.global_step}
            return True
        return False

    def _mark_best(self) -> None:
        best, step = self.run_state.best, self.run_state.global_step
        assert best is not None
        def write() -> None:
            self.ckpt.mark_best(step, best["metric"], best["value"])
            save_weights(self.runner.model, self.out / "best.safetensors", {"step": str(step), "accuracy": str(best["value"]), "metric": best["metric"]},
                         card=self.card())

        self._main_only("write best.safetensors", write)

    # ------------------------------------------------------------------ export
    def card(self) -> ModelCard:
        """The model card of the weights written now (:mod:`facelivt.training.card`)."""
        facts = RunFacts(model=getattr(self.runner.model, "model_name", None) or self.cfg.model.name,
                         identities=self.view.num_classes, images=len(self.view), steps=self.run_state.global_step,
                         steps_per_epoch=self.steps_per_epoch, heldout_images=int(self.held_idx.size),
                         dataset_object=self.dataset_object)
        return training_card(self.cfg, facts, self.last_metrics)

    def export(self) -> tuple[Path, Path]:
        """``model.safetensors`` (train form) and ``model_deploy.safetensors`` (deploy form)."""
        weights, deploy = self.out / "model.safetensors", self.out / "model_deploy.safetensors"

        def write() -> None:
            meta = {"step": str(self.run_state.global_step), "num_classes": str(self.view.num_classes)}
            model, card = self.runner.model, self.card()
            save_weights(model, weights, meta, card=card)
            was_training = model.training
            deployed = reparameterize_model(model)
            model.train(was_training)
            save_weights(deployed.to(memory_format=torch.contiguous_format), deploy, meta, card=card)

        self._main_only("export the weights", write)
        return weights, deploy

    # ------------------------------------------------------------------ loop
    def _tick(self) -> None:
        """Add the time since the last tick to ``elapsed_s`` (what the time budget counts)."""
        now = time.monotonic()
        self.run_state.elapsed_s += now - self._clock
        self._clock = now

    def _time_up(self) -> bool:
        budget = self.cfg.train.max_minutes
        if budget is None:
            return False
        spent = self.run_state.elapsed_s + (time.monotonic() - self._clock)
        return any_true(self.env, spent >= budget * 60.0)

    def _report(self, stats: StepStats, logger: RunLogger, progress: Progress) -> None:
        """Progress bar every step, a ``train`` event every ``train.log_every_steps``."""
        self._window.append(stats)
        window = self._window
        postfix = {"loss": stats.loss, "cls": stats.loss_cls}
        if self.runner.distill is not None:
            postfix["dis"] = stats.loss_dis
        postfix["lr"] = stats.lr
        elapsed_window = max(time.monotonic() - self._window_start, 1e-9)
        postfix["img/s"] = round(sum(s.images for s in window) * self.env.world_size / elapsed_window, 1)
        progress.update(1, **postfix)
        step = self.run_state.global_step
        if step % self.cfg.train.log_every_steps == 0 or step == self.total_steps:
            logger.log(
                "train",
                step,
                epoch=step / self.steps_per_epoch,
                loss=float(np.mean([s.loss for s in window])),
                loss_cls=float(np.mean([s.loss_cls for s in window])),
                loss_dis=float(np.mean([s.loss_dis for s in window])),
                lr=stats.lr,
                grad_norm=float(np.mean([s.grad_norm for s in window])),
                images_per_s=postfix["img/s"],
                bad_records=self.bad_records(),
            )
            self._window, self._window_start = [], time.monotonic()

    def _after_step(self, logger: RunLogger, progress: Progress) -> None:
        """Verification and checkpoints due after this step."""
        cfg, step = self.cfg, self.run_state.global_step
        epoch_end = step % self.steps_per_epoch == 0
        every = cfg.eval.every_steps
        improved = False
        if self.has_eval and ((every and step % every == 0) or (epoch_end and cfg.eval.every_epoch)):
            improved = broadcast_object(self.env, self._after_eval(self.evaluate(), logger, progress))
        every_ckpt = cfg.train.checkpoint_every_steps
        if improved or epoch_end or (every_ckpt and step % every_ckpt == 0):
            self._tick()
            self.save()
        if improved:
            self._mark_best()

    def _epochs(self, logger: RunLogger, progress: Progress) -> str:
        """Train to ``total_steps``: ``completed``, or ``time_budget`` when ``train.max_minutes`` ran out."""
        t, run = self.cfg.train, self.run_state
        while run.global_step < self.total_steps:
            if self._time_up():
                return "time_budget"
            in_epoch = seek(self.sampler, run.global_step, self.steps_per_epoch, t.batch_size)
            batches = iter(self.loader)
            for _ in range(in_epoch, self.steps_per_epoch):
                if run.global_step >= self.total_steps:
                    break
                if self._time_up():
                    return "time_budget"
                micro = [next(batches) for _ in range(t.accumulate)]
                self._note_bad(micro)
                stats = self.runner.step(micro, run.global_step)
                run.global_step += 1
                run.loss_history.append(stats.loss)
                self._report(stats, logger, progress)
                if run.global_step >= self.total_steps:
                    break
                self._after_step(logger, progress)
            del batches
        return "completed"

    def _finish(self, stopped: str, already: bool, logger: RunLogger, progress: Progress) -> tuple[dict, Path, Path]:
        """The end: final verification, checkpoint, export."""
        self._tick()
        if stopped == "completed":
            self.run_state.finished = True
        final_metrics: dict[str, dict] = {}
        improved = False
        if self.has_eval and not already:
            final_metrics = self.evaluate()
            improved = broadcast_object(self.env, self._after_eval(final_metrics, logger, progress))
        run = self.run_state
        if self.last_saved_step != run.global_step or improved or (run.finished and not already):
            self.save()
        if improved:
            self._mark_best()
        weights, deploy = self.export()
        return final_metrics, weights, deploy

    def _start_event(self, logger: RunLogger, resumed_from: Optional[Path]) -> None:
        env = self.env
        logger.log(
            "start",
            self.run_state.global_step,
            resumed_from=str(resumed_from) if resumed_from else None,
            total_steps=self.total_steps,
            steps_per_epoch=self.steps_per_epoch,
            num_classes=self.view.num_classes,
            train_images=len(self.view),
            heldout_images=int(self.held_idx.size),
            world_size=env.world_size,
            device=str(env.device),
            changed_settings={k: list(v) for k, v in self.changed_settings.items()},
            lock_taken_over_from=self.lock.stale.pid if self.lock.stale else None,
            bad_records=self.bad_records(),
        )

    def run(self) -> TrainResult:
        """Train (or continue) to the end, then release the output folder."""
        try:
            return self._run()
        finally:
            self.close()

    def _run(self) -> TrainResult:
        cfg, env = self.cfg, self.env
        logger = RunLogger(self.out, enabled=env.is_main, tensorboard=cfg.train.tensorboard)
        try:
            resumed_from = self.maybe_resume()
            self._main_only("write config.yaml", lambda: write_text(self.out / "config.yaml", cfg.to_yaml()))
            already = self.run_state.global_step >= self.total_steps
            self._start_event(logger, resumed_from)
            progress = Progress(self.total_steps, self.run_state.global_step, self.show_progress, messages=env.is_main)
            self._clock = self._window_start = time.monotonic()
            try:
                stopped = "already_finished" if already else self._epochs(logger, progress)
                final_metrics, weights, deploy = self._finish(stopped, already, logger, progress)
            except NonFiniteLossError as exc:
                error = type(exc)(self._stop_advice(exc))
                try:
                    logger.log("error", self.run_state.global_step, message=str(error))
                except OSError as log_error:  # e.g. a full disk: the divergence is the error to report
                    log.warning("%s", log_error)
                raise error from None
            finally:
                progress.close()
            self._tick()
            result = self._result(stopped, final_metrics, weights, deploy)
            logger.log("end", result.steps, stopped=stopped, elapsed_s=result.elapsed_s, metrics=final_metrics,
                       best=result.best, bad_records=result.bad_records)
            self._main_only("write result.json", lambda: write_json(self.out / "result.json", plain(self._summary(result))))
        finally:
            logger.close()
        if self.runner.targets is not None:
            self.runner.targets.flush()
        return result

    def _result(self, stopped: str, metrics: dict, weights: Path, deploy: Path) -> TrainResult:
        return TrainResult(
            output_dir=self.out,
            weights=weights,
            deploy_weights=deploy,
            best_weights=(self.out / "best.safetensors") if self.run_state.best is not None else None,
            last_checkpoint=self.ckpt.resolve(),
            metrics=metrics,
            best=self.run_state.best,
            loss_history=list(self.run_state.loss_history),
            steps=self.run_state.global_step,
            total_steps=self.total_steps,
            stopped=stopped,
            elapsed_s=self.run_state.elapsed_s,
            num_classes=self.view.num_classes,
            bad_records=self.bad_records(),
        )

    def _summary(self, result: TrainResult) -> dict[str, Any]:
        """What ``result.json`` holds."""
        return {
            "stopped": result.stopped,
            "steps": result.steps,
            "total_steps": result.total_steps,
            "elapsed_s": round(result.elapsed_s, 2),
            "final_loss": result.loss_history[-1] if result.loss_history else None,
            "metrics": result.metrics,
            "best": result.best,
            "bad_records": result.bad_records,
            "weights": str(result.weights),
            "deploy_weights": str(result.deploy_weights),
        }


def train(
    config: Config,
    *,
    dataset: Dataset | None = None,
    model: nn.Module | None = None,
    teacher: nn.Module | None = None,
    progress: bool | None = None,
) -> TrainResult:
    """Train as ``config`` says and return a :class:`TrainResult`.

    ``dataset`` replaces ``config.data``'s data set (identity split and flips still follow
    ``config.data``); ``model`` replaces ``config.model``'s backbone (trained in place);
    ``teacher`` (with ``config.distill.enabled``) replaces the configured teacher. Under torchrun every process
    calls this; the process group is created here (and destroyed after) unless one exists.
    """
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    env = init_distributed(config.train.device)
    try:
        trainer = Trainer(config, env, dataset=dataset, model=model, teacher=teacher, progress=progress)
        return trainer.run()
    finally:
        cleanup(env)
        # process-wide torch settings the config may have changed go back to what they were
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])
