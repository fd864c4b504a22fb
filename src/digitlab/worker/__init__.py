"""The training worker process, its message protocol and its supervision from the server."""

from .supervisor import WorkerSupervisor, describe_exit

__all__ = ["WorkerSupervisor", "describe_exit"]
