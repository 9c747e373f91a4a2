"""Training: negative sampling, the BPR trainer with early stopping on valid, checkpoints."""

from mmgcn.train.checkpoint import load_checkpoint, save_checkpoint
from mmgcn.train.sampling import BPRSampler
from mmgcn.train.trainer import TrainConfig, Trainer, TrainResult, run_epoch

__all__ = ["BPRSampler", "TrainConfig", "TrainResult", "Trainer", "load_checkpoint", "run_epoch", "save_checkpoint"]
