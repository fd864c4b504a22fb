"""Training in several processes, on one machine or several, started by PyTorch's own launcher
(torchrun, `python -m torch.distributed.run`): `digitlab train --nproc N` (see digitlab.launch).

Every process (a "rank") loads the whole dataset and runs fit() with the same seed, so all of them
draw the same permutation and the same augmentation for every batch; each takes its slice of the
global batch (`torch.tensor_split(batch, world)[rank]`), splits it into its own thread shards,
weights each shard's loss by its share of the *global* batch and sums the shard gradients; one
all-reduce (a sum) per step then gives every rank the gradient of the whole batch's mean loss:
the same math as the in-process ShardedStep, so 2 processes of 1 thread compute exactly what 1
process of 2 threads does. The batch's loss, its correct count and a "stop" flag (a cancel
anywhere stops every rank at the same batch) travel in the same all-reduce. Validation is
shared too: each rank scores every world-th chunk of the test split.

Backends: gloo on CPU, nccl on CUDA (one GPU per local rank). A rank that dies makes the others'
next collective fail (PeerLost) or torchrun stop them (SIGTERM): the run fails and rank 0, the only
one that saves, never reaches a save with a step missing.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from .config import ConfigError

#: how long a collective waits for a silent (not dead: a dead peer is noticed at once) process
TIMEOUT = timedelta(minutes=5)
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


class PeerLost(RuntimeError):
    """Another training process stopped answering (died, was killed, or its machine went away)."""


def under_torchrun() -> bool:
    """True in a process that torchrun started (it sets these variables for every rank)."""
    return all(name in os.environ for name in TORCHRUN_ENV) and "TORCHELASTIC_RUN_ID" in os.environ


@dataclass
class Group:
    """This process's place in the run: its rank among `world` processes, its local rank on its
    machine, and the collectives fit() needs, with their failures turned into one-line errors."""

    rank: int
    world: int
    local_rank: int
    local_world: int
    backend: str
    device: torch.device  # where the collectives' tensors live: cpu (gloo) or this rank's GPU (nccl)

    @classmethod
    def start(cls, device_type: str = "cpu") -> "Group":
        """Join the process group torchrun set up (its environment variables say where)."""
        if not under_torchrun():
            raise ConfigError("distributed training needs the torchrun launcher: use `digitlab train --nproc N`")
        env = {name: int(os.environ[name]) for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")}
        if device_type == "cuda":
            if torch.cuda.device_count() < env["LOCAL_WORLD_SIZE"]:
                raise ConfigError(f"{env['LOCAL_WORLD_SIZE']} processes on this machine but only "
                                  f"{torch.cuda.device_count()} CUDA GPU(s): use --nproc {torch.cuda.device_count()}")
            device = torch.device("cuda", env["LOCAL_RANK"])
            torch.cuda.set_device(device)
            backend = "nccl"
        elif device_type == "cpu":
            device, backend = torch.device("cpu"), "gloo"
        else:
            raise ConfigError(f"distributed training runs on cpu (gloo) or cuda (nccl), not {device_type}")
        try:
            dist.init_process_group(backend, timeout=TIMEOUT, rank=env["RANK"], world_size=env["WORLD_SIZE"])
        except (RuntimeError, ValueError) as exc:
            raise PeerLost(f"could not join the other training processes ({_short(exc)})") from None
        return cls(env["RANK"], env["WORLD_SIZE"], env["LOCAL_RANK"], env["LOCAL_WORLD_SIZE"], backend, device)

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()

    # --- collectives, each failure a PeerLost with one line ------------------------------------

    def all_reduce(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum `tensor` over every rank, in place."""
        try:
            dist.all_reduce(tensor)
        except (RuntimeError, dist.DistError) as exc:
            raise PeerLost(f"rank {self.rank} lost contact with another training process ({_short(exc)})") from None
        return tensor

    def broadcast(self, tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
        try:
            dist.broadcast(tensor, src)
        except (RuntimeError, dist.DistError) as exc:
            raise PeerLost(f"rank {self.rank} lost contact with another training process ({_short(exc)})") from None
        return tensor

    # --- what fit() calls ----------------------------------------------------------------------

    def start_run(self, model: torch.nn.Module, dataset, config) -> None:
        """Check that every rank trains the same data with the same options, then give every rank
        rank 0's weights (the same seed made them equal already; a resumed model may differ by machine)."""
        recipe = {k: v for k, v in config.to_dict().items() if k not in ("threads", "device")}
        digest = hashlib.sha256((dataset.content_hash + json.dumps(recipe, sort_keys=True)).encode()).digest()
        mine = torch.tensor(list(digest), dtype=torch.float32, device=self.device)
        ref = self.broadcast(mine.clone())
        differs = self.all_reduce(torch.tensor([float(not torch.equal(ref, mine))], device=self.device))
        if differs.item():
            raise ConfigError(f"the {self.world} training processes do not all have the same dataset and options "
                              "(every machine needs the same --dataset content and the same hyperparameters)")
        tensors = [t for t in model.state_dict().values() if t.is_floating_point()]
        flat = self.broadcast(torch.cat([t.detach().reshape(-1) for t in tensors]).to(self.device))
        with torch.no_grad():
            offset = 0
            for t in tensors:
                t.copy_(flat[offset:offset + t.numel()].view_as(t))
                offset += t.numel()

    def reduce_step(self, grads: list[torch.Tensor], loss: torch.Tensor, correct: torch.Tensor,
                    stop: bool) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """One all-reduce per step: the shard-summed gradients (replaced by the sums over all ranks,
        in place in `grads`), the batch's loss and correct count, and whether any rank asked to stop."""
        extra = torch.stack([loss.detach().float().reshape(()), correct.float().reshape(()),
                             torch.tensor(float(stop), device=loss.device)])
        flat = self.all_reduce(torch.cat([g.reshape(-1) for g in grads] + [extra]).to(self.device))
        offset = 0
        for i, g in enumerate(grads):
            grads[i] = flat[offset:offset + g.numel()].view(g.shape)
            offset += g.numel()
        loss_sum, correct_sum, stops = flat[offset:offset + 3].to(loss.device)
        return loss_sum, correct_sum.round().long(), bool(stops.item())

    def evaluation_share(self, n: int, chunk: int) -> list[int]:
        """The chunk starts of a test split of `n` images this rank scores: every world-th one."""
        return list(range(self.rank * chunk, n, self.world * chunk))


def _short(exc: BaseException) -> str:
    """A collective's error as a short line (gloo's messages start with a source path in brackets)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if text.startswith("[") and "] " in text:
        text = text.split("] ", 1)[1]
    return text[:200]
