"""Training: configs, the optimisation step, the loop with checkpoints / resume / verification,
distillation with a teacher-embedding cache, and ``facelivt train``.

Quick start::

    from facelivt.data import SyntheticIdentities
    from facelivt.training import Config, train

    cfg = Config(output="runs/demo")
    cfg.train.batch_size, cfg.train.epochs = 32, 2
    result = train(cfg, dataset=SyntheticIdentities(32, 16))
    print(result.weights, result.loss_history[-1])
"""
from .checkpoint import CheckpointManager, atomic_torch_save, load_checkpoint_file, rng_state, set_rng_state
from .config import (
    Config,
    DataConfig,
    DistillConfig,
    EvalConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    TrainSection,
    config_from_dict,
    load_config,
    validate_config,
)
from .distributed import DistEnv, init_distributed
from .engine import DivergedError, NonFiniteLossError, StepRunner, StepStats, build_step_runner
from .heldout import HeldoutPairs, PairVerification, build_pairs
from .lock import OutputInUseError, OutputLock
from .reshard import reshard_state
from .resume import ResumeMismatchError
from .schedule import PolyWarmupScheduler, poly_lr
from .teacher import TeacherCache, TeacherTargets, build_teacher
from .trainer import RunState, Trainer, TrainResult, train

__all__ = [
    "CheckpointManager",
    "Config",
    "DataConfig",
    "DistEnv",
    "DistillConfig",
    "DivergedError",
    "EvalConfig",
    "HeldoutPairs",
    "LossConfig",
    "ModelConfig",
    "NonFiniteLossError",
    "OptimConfig",
    "OutputInUseError",
    "OutputLock",
    "PairVerification",
    "PolyWarmupScheduler",
    "ResumeMismatchError",
    "RunState",
    "StepRunner",
    "StepStats",
    "TeacherCache",
    "TeacherTargets",
    "TrainResult",
    "TrainSection",
    "Trainer",
    "atomic_torch_save",
    "build_pairs",
    "build_step_runner",
    "build_teacher",
    "config_from_dict",
    "init_distributed",
    "load_checkpoint_file",
    "load_config",
    "poly_lr",
    "reshard_state",
    "rng_state",
    "set_rng_state",
    "train",
    "validate_config",
]
