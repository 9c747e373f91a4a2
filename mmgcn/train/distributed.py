r"""Data-parallel training on ``torch.distributed``: torchrun, DDP, rank-0 selection.

How a run is shared among ``W`` processes (ranks), on one machine or several:

* **Launch.** ``torchrun --nproc-per-node N -m mmgcn train ...`` (or ``mmgcn bench --nproc
  N``, which starts the ranks of each cell through the same elastic launcher, :func:`launch`)
  sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` in every
  process; :meth:`DistributedContext.from_env` reads them and joins the process group:
  NCCL when the run trains on CUDA (rank ``r`` on ``cuda:LOCAL_RANK``), gloo on CPU.
* **Data.** Every rank holds the whole dataset and draws the *same* epoch of BPR triples
  (the :class:`~mmgcn.train.sampling.BPRSampler` seeded with the run seed: one shuffled
  order and one set of negatives per epoch, identical on every rank, captured in
  checkpoints). :class:`ShardedBPRSampler` gives rank ``r`` the ``r``-th of ``W`` equal
  slices of each global batch of ``batch_size`` triples; a short last batch is padded by
  repeating its first triples, as ``torch.utils.data.DistributedSampler`` pads. The
  ranks together therefore take the same optimisation steps as one process with the same
  global batch, up to the order of floating-point sums (a 1-rank run *is* the
  single-process run).
* **Gradients.** :class:`DataParallelLoss` runs ``model.loss`` through
  :class:`~torch.nn.parallel.DistributedDataParallel`, which averages gradients over the
  ranks during ``backward``; every rank then applies the same Adam step, so parameters stay
  identical. Models that propagate over the whole graph at every step (LightGCN, MMGCN, the
  graph fusion models) *replicate* that propagation on every rank, as RecBole's DDP does:
  only the per-triple work divides. Sampled-subgraph training (``train.num_neighbors``,
  :mod:`mmgcn.train.subgraph`) propagates over each rank's own batch neighbourhood, so the
  graph work divides too.
* **Selection.** Rank 0 alone evaluates the valid split, writes checkpoints, logs, metrics
  and the run directory, and runs the final test; the validation outcome is broadcast and
  every rank applies the same early-stopping rule to it, so all ranks stop together.
* **Resume.** Rank 0 reads ``checkpoints/last.pt`` and broadcasts it (other ranks need no
  shared file system); each rank's own random state (dropout, neighbour sampling) is
  gathered into the checkpoint and handed back to that rank, so a resumed run continues as
  the uninterrupted one would.

The constants: buffers (graph operators, features) are built by every rank from the
dataset and never broadcast; only parameters are synchronised when DDP starts.
"""

from __future__ import annotations

import inspect
import logging
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from mmgcn.train.checkpoint import capture_rng_state, restore_rng_state
from mmgcn.train.sampling import BPRSampler

log = logging.getLogger(__name__)

#: environment variables torchrun sets in every process
ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
#: the rank-dependent seed offset: rank r > 0 reseeds its global generators with seed + r * this
RANK_SEED_STRIDE = 1_000_003


@dataclass(frozen=True)
class DistributedContext:
    """This process's place in a data-parallel run.

    Args:
        rank: global rank, ``0 .. world_size - 1`` (rank 0 evaluates and writes).
        world_size: number of processes.
        local_rank: rank on this machine (picks the GPU under NCCL).
        backend: ``"gloo"`` (CPU) or ``"nccl"`` (CUDA).
    """

    rank: int
    world_size: int
    local_rank: int = 0
    backend: str = "gloo"

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} outside world size {self.world_size}")
        if self.backend not in ("gloo", "nccl"):
            raise ValueError(f"backend {self.backend!r}: use 'gloo' (CPU) or 'nccl' (CUDA)")

    # ------------------------------------------------------------------ set-up
    @classmethod
    def from_env(cls, device: str = "cpu") -> DistributedContext | None:
        """The context torchrun describes in the environment, with the process group joined.

        Args:
            device: the run's ``train.device``; CUDA (``cuda``, ``cuda:N``, or ``auto`` with a
                GPU) selects NCCL, anything else gloo.

        Returns:
            ``None`` when the process was not started by torchrun (no ``WORLD_SIZE``) or
            is alone (``WORLD_SIZE=1``): nothing to synchronise.

        Raises:
            ValueError: torchrun's variables are incomplete or malformed.
        """
        if "WORLD_SIZE" not in os.environ:
            return None
        missing = [name for name in ENV_VARS if not os.environ.get(name)]
        if missing:
            raise ValueError(
                f"distributed run: environment variable(s) {missing} are not set; start the ranks with "
                f"torchrun (it sets {list(ENV_VARS)}), e.g. torchrun --nproc-per-node 2 -m mmgcn train ..."
            )
        try:
            rank, world, local = (int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
        except ValueError as exc:
            raise ValueError(f"distributed run: RANK / WORLD_SIZE / LOCAL_RANK must be integers ({exc})") from None
        if world == 1:
            return None
        cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
        context = cls(rank=rank, world_size=world, local_rank=local, backend="nccl" if cuda else "gloo")
        context.join()
        return context

    def join(self) -> None:
        """Join the default process group (``env://``) unless this process already has."""
        if dist.is_initialized():
            if dist.get_world_size() != self.world_size or dist.get_rank() != self.rank:
                raise ValueError(f"the process group ({dist.get_rank()}/{dist.get_world_size()}) is not "
                                 f"this context's ({self.rank}/{self.world_size})")
            return
        if self.backend == "nccl":
            torch.cuda.set_device(self.local_rank)
        dist.init_process_group(self.backend, init_method="env://", rank=self.rank, world_size=self.world_size)
        log.info("rank %d of %d joined the %s process group (%s:%s)", self.rank, self.world_size, self.backend,
                 os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT"))

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the rank that evaluates and writes."""
        return self.rank == 0

    def device(self, requested: torch.device) -> torch.device:
        """The device this rank trains on: ``cuda:LOCAL_RANK`` for a CUDA run, else ``requested``."""
        if requested.type == "cuda":
            return torch.device("cuda", self.local_rank)
        if self.backend == "nccl":
            raise ValueError("the NCCL backend needs a CUDA device; train on CPU with gloo")
        return requested

    def seed(self, seed: int) -> None:
        """Give every rank but 0 its own global random streams (dropout, neighbour sampling).

        Rank 0 keeps the streams of ``seed``, so a 1-rank run is the single-process run.
        The BPR sampler has its own generator, seeded alike on every rank.
        """
        if self.rank:
            from mmgcn.utils.seed import seed_everything

            seed_everything(seed + RANK_SEED_STRIDE * self.rank, deterministic=torch.are_deterministic_algorithms_enabled())

    # ------------------------------------------------------------------ collectives
    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (pickled between our own processes)."""
        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0, device=self._object_device())
        return box[0]

    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj`` in rank order on rank 0; ``None`` elsewhere."""
        out: list[Any] | None = [None] * self.world_size if self.is_main else None
        if self.backend == "nccl":  # gather_object needs the current device set for NCCL
            torch.cuda.set_device(self.local_rank)
        dist.gather_object(obj, out, dst=0)
        return out

    def mean(self, value: float) -> float:
        """The mean of a float over the ranks."""
        tensor = torch.tensor([float(value)], dtype=torch.float64, device=self._object_device())
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return float(tensor.item()) / self.world_size

    def barrier(self) -> None:
        dist.barrier()

    def _object_device(self) -> torch.device:
        return torch.device("cuda", self.local_rank) if self.backend == "nccl" else torch.device("cpu")

    # ------------------------------------------------------------------ random states
    def capture_rng(self) -> list[dict[str, Any]] | None:
        """Every rank's random state, on rank 0 (a collective: call it on every rank)."""
        return self.gather(capture_rng_state())

    def restore_rng(self, state: dict[str, Any]) -> None:
        """Restore this rank's random state from a checkpoint written by rank 0.

        A checkpoint of a run with another number of ranks (or a single-process one) has no
        state for this rank: rank 0 takes the saved one, the others reseed from it.
        """
        per_rank = state.get("rng_ranks")
        if per_rank is not None and len(per_rank) == self.world_size:
            restore_rng_state(per_rank[self.rank])
            return
        restore_rng_state(state["rng"])
        if self.rank:
            torch.manual_seed(int(torch.randint(0, 2**62, (1,)).item()) + RANK_SEED_STRIDE * self.rank)
        if self.is_main:
            log.warning("the checkpoint holds random states for %s rank(s), this run has %d; "
                        "ranks other than 0 continue with derived streams",
                        "no per-rank" if per_rank is None else len(per_rank), self.world_size)

    # ------------------------------------------------------------------ wrappers
    def shard(self, sampler: BPRSampler) -> ShardedBPRSampler:
        """``sampler`` (seeded alike on every rank) restricted to this rank's triples."""
        return ShardedBPRSampler(sampler, self.rank, self.world_size)

    def wrap(self, module: nn.Module, device: torch.device) -> DataParallelLoss:
        """``module.loss`` under DistributedDataParallel (see :class:`DataParallelLoss`)."""
        return DataParallelLoss(module, device)


class ShardedBPRSampler:
    """Rank ``rank``'s share of every global batch of a :class:`BPRSampler`.

    The wrapped sampler draws the epoch (order and negatives) exactly as in a single
    process; global batch ``b`` of ``n_b`` triples is cut into ``world_size`` slices of
    ``ceil(n_b / world_size)`` triples, slice ``r`` going to rank ``r``; where ``n_b`` is not
    a multiple, the last slices wrap around to the batch's first triples (at most
    ``world_size - 1`` repeated triples per batch, none when ``batch_size`` is a multiple of
    ``world_size`` except in the epoch's last batch). Every rank gets the same number of
    steps, each of the same size, which DistributedDataParallel requires.

    Args:
        sampler: the epoch sampler, identically seeded on every rank.
        rank: this process's rank.
        world_size: number of ranks.
    """

    def __init__(self, sampler: BPRSampler, rank: int, world_size: int) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.sampler, self.rank, self.world_size = sampler, rank, world_size

    @property
    def n_interactions(self) -> int:
        """Train interactions per epoch (all ranks together)."""
        return self.sampler.n_interactions

    def n_batches(self, batch_size: int) -> int:
        """Steps per epoch: as many as one process takes with global batch ``batch_size``."""
        return self.sampler.n_batches(batch_size)

    def local_size(self, global_size: int) -> int:
        """Triples per rank in a global batch of ``global_size``."""
        return -(-global_size // self.world_size)

    def batches(self, batch_size: int) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        """One epoch of this rank's ``(users, pos, neg)``; ``batch_size`` is the global batch."""
        for users, pos, neg in self.sampler.batches(batch_size):
            size = users.numel()
            local = self.local_size(size)
            index = (self.rank * local + torch.arange(local)) % size
            yield users[index], pos[index], neg[index]

    def state_dict(self) -> dict[str, Any]:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state)

    def __repr__(self) -> str:
        return f"ShardedBPRSampler(rank={self.rank}, world_size={self.world_size}, {self.sampler!r})"


class _LossForward(nn.Module):
    """``forward`` = the wrapped module's ``loss``: what DistributedDataParallel calls."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, users: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
        return self.model.loss(users, pos, neg)


class DataParallelLoss(nn.Module):
    """A model's ``loss(users, pos, neg)`` run through DistributedDataParallel.

    ``backward`` of the returned loss averages the gradients of all ranks (bucketed
    all-reduce, overlapped with the backward pass). Buffers (graph operators, features,
    masks) are constants every rank builds from the dataset: they are never broadcast.
    A model whose loss uses some parameters in some steps only declares it
    (``same_parameters_every_step = False``, e.g. LATTICE, whose learned item graph takes
    gradients at an epoch's first batch only); DDP then finds the unused parameters at every
    step (an extra pass over the autograd graph), which the other models skip.

    Args:
        model: the recommender (or a wrapper with a ``loss`` method, e.g. sampled-subgraph
            training), already on ``device``.
        device: this rank's device.
        find_unused_parameters: force DDP's unused-parameter search on or off (default
            ``None``: on when a module inside ``model`` declares
            ``same_parameters_every_step = False``).
    """

    def __init__(self, model: nn.Module, device: torch.device, find_unused_parameters: bool | None = None) -> None:
        super().__init__()
        if find_unused_parameters is None:
            find_unused_parameters = any(not getattr(m, "same_parameters_every_step", True) for m in model.modules())
        inner = _LossForward(model)
        buffers = [f"model.{name}" for name, _ in model.named_buffers()]
        nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(inner, buffers)
        ddp = nn.parallel.DistributedDataParallel
        # buffers are ignored above (never synced at start); newer torch names the per-step switch
        no_buffer_sync = ({"forward_sync_buffers": False}
                          if "forward_sync_buffers" in inspect.signature(ddp.__init__).parameters
                          else {"broadcast_buffers": False})
        self.ddp = ddp(
            inner,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=find_unused_parameters,
            **no_buffer_sync,
        )

    @property
    def module(self) -> nn.Module:
        """The wrapped model."""
        return self.ddp.module.model

    def loss(self, users: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
        return self.ddp(users, pos, neg)


# ---------------------------------------------------------------------- launching
def _worker(fn: Callable[..., Any], device: str, args: Sequence[Any]) -> Any:
    context = DistributedContext.from_env(device)
    try:
        return fn(context, *args)
    finally:
        if context is not None and dist.is_initialized():
            dist.destroy_process_group()


def launch(fn: Callable[..., Any], nproc: int, *args: Any, device: str = "cpu") -> list[Any]:
    """Run ``fn(context, *args)`` in ``nproc`` fresh processes on this machine; their results.

    The processes are started by torch's elastic launcher (what ``torchrun --standalone``
    uses: a c10d rendezvous on a free port of 127.0.0.1, no restarts), so each sees the same
    environment as under torchrun. ``fn`` and ``args`` must be picklable (``fn`` a
    module-level function); ``context`` is the rank's :class:`DistributedContext`
    (``None`` when ``nproc`` is 1).

    Returns:
        The return values of ``fn``, in rank order.

    Raises:
        torch.distributed.elastic.multiprocessing.errors.ChildFailedError: a rank failed
            (the others are stopped).
    """
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if nproc < 1:
        raise ValueError(f"nproc must be >= 1, got {nproc}")
    config = LaunchConfig(
        min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=f"mmgcn-{uuid.uuid4().hex[:8]}",
        rdzv_backend="c10d", rdzv_endpoint="127.0.0.1:0", max_restarts=0, start_method="spawn",
        monitor_interval=0.1,
    )
    results = elastic_launch(config, _worker)(fn, device, tuple(args))
    return [results[rank] for rank in range(nproc)]


__all__ = [
    "ENV_VARS",
    "DataParallelLoss",
    "DistributedContext",
    "ShardedBPRSampler",
    "launch",
]
