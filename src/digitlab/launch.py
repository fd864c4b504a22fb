"""`digitlab train --nproc N`: training in N processes per machine through torchrun, both sides.

The launcher (`launch`, the `digitlab train` the user started) checks what it can at once (the
options, the model name, the dataset: downloaded here, once per machine, before any process
starts), then runs

    python -m torch.distributed.run --nproc-per-node N [--standalone | --nnodes M --node-rank R
        --rdzv-endpoint HOST:PORT [--rdzv-id ID] [--rdzv-backend static|c10d]] --max-restarts 0
        -m digitlab.cli train ...the same options...

with the same Python, in its own session (so a Ctrl-C in the terminal reaches only the launcher).
Each rank (`run_rank`) joins the process group and runs the same training job; rank 0 alone
saves, and writes its events as lines `@digitlab {json}` on its stdout, which the launcher turns
back into typed events for the same progress display as a one-process run. Any rank that fails
writes one such line with its error. torchrun's own output is kept back (shown with --debug);
a failure becomes one line: the first real cause (a rank's own error, or the signal that killed
a rank), never the others' "lost contact" that follows it.

Ctrl-C once: the launcher creates a cancel file that every rank watches; a cancel anywhere stops
every rank at the same batch (training.distributed) and rank 0 saves the finished epochs. Twice:
torchrun is told to stop every rank; nothing is saved. A launcher killed outright takes its ranks
with it (each watches the launcher's pid).
"""

from __future__ import annotations

import collections
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

MARK = "@digitlab "  # a rank's lines for the launcher start with this
WATCH_INTERVAL = 0.1  # seconds between a rank's looks at the cancel file and the launcher
ENV_CANCEL, ENV_LAUNCHER = "DIGITLAB_CANCEL_FILE", "DIGITLAB_LAUNCHER_PID"
MAX_NPROC_PER_CORE = 4
RDZV_BACKENDS = ("static", "c10d")


class LaunchError(Exception):
    """A distributed run could not start or did not finish; the message is one line."""


# --- the launcher ---------------------------------------------------------------------------------

def check_options(nproc: int, nnodes: int, node_rank: int, rdzv_endpoint: str | None, cores: int) -> None:
    """The launcher's own options, checked before anything starts (one-line LaunchError)."""
    if not 1 <= nproc <= MAX_NPROC_PER_CORE * cores:
        raise LaunchError(f"--nproc: must be from 1 to {MAX_NPROC_PER_CORE * cores} "
                          f"({MAX_NPROC_PER_CORE} per core of this machine's {cores}), got {nproc}")
    if not 1 <= nnodes <= 1024:
        raise LaunchError(f"--nnodes: must be from 1 to 1024, got {nnodes}")
    if not 0 <= node_rank < nnodes:
        raise LaunchError(f"--node-rank: must be from 0 to {nnodes - 1} (--nnodes {nnodes}), got {node_rank}")
    if nnodes > 1 and not rdzv_endpoint:
        raise LaunchError("--nnodes above 1 needs --rdzv-endpoint HOST:PORT (the machine of --node-rank 0, "
                          "reachable from every machine)")
    if rdzv_endpoint and not re.fullmatch(r"[A-Za-z0-9.\-_:\[\]]+:[0-9]{1,5}", rdzv_endpoint):
        raise LaunchError(f"--rdzv-endpoint: expected HOST:PORT, got {rdzv_endpoint[:80]!r}")


def torchrun_command(rank_args: list[str], nproc: int, nnodes: int = 1, node_rank: int = 0,
                     rdzv_endpoint: str | None = None, rdzv_id: str | None = None,
                     rdzv_backend: str = "static") -> list[str]:
    """The torchrun command line (same Python) that runs `digitlab.cli train rank_args` in every rank."""
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}", "--max-restarts=0",
           "--monitor-interval=0.2", "--shutdown-timeout=10"]
    if nnodes == 1 and not rdzv_endpoint:
        cmd.append("--standalone")  # a rendezvous on a free local port
    else:
        cmd += [f"--nnodes={nnodes}", f"--node-rank={node_rank}", f"--rdzv-endpoint={rdzv_endpoint}",
                f"--rdzv-backend={rdzv_backend}"]
        if rdzv_id:
            cmd.append(f"--rdzv-id={rdzv_id}")
    return cmd + ["-m", "digitlab.cli", "train", *rank_args]


def launch(cmd: list[str], on_event, debug: bool = False) -> dict:
    """Run torchrun `cmd`; every event rank 0 reports goes to `on_event` as a typed event.

    Returns rank 0's result (`{"model", "epochs", "test_accuracy", "test_loss", "seconds"}`, or
    `{"cancelled": true}` when stopped before its first epoch), or None on a machine without rank 0
    once its ranks finished. Raises LaunchError (one line) when the run fails, KeyboardInterrupt
    after a second Ctrl-C.
    """
    tmp = Path(tempfile.mkdtemp(prefix="digitlab-launch-"))
    cancel_file = tmp / "cancel"
    env = {**os.environ, ENV_CANCEL: str(cancel_file), ENV_LAUNCHER: str(os.getpid()),
           "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE"), "PYTHONUNBUFFERED": "1"}
    log: collections.deque[str] = collections.deque(maxlen=2000)  # torchrun's and the ranks' other output
    errors: list[dict] = []
    result: dict | None = None
    done = 0  # ranks on this machine that finished
    state = {"interrupts": 0}

    def on_sigint(signum, frame):
        state["interrupts"] += 1
        if state["interrupts"] == 1:
            cancel_file.touch()
            print("\ndigitlab: stopping every process after this batch; Ctrl-C again to abort without saving",
                  file=sys.stderr)
        else:
            _signal_group(proc, signal.SIGTERM)

    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True,
                            bufsize=1, start_new_session=True, errors="replace")
    reader = threading.Thread(target=_drain, args=(proc.stderr, log, debug), name="torchrun-stderr", daemon=True)
    reader.start()
    previous = signal.signal(signal.SIGINT, on_sigint) if threading.current_thread() is threading.main_thread() else None
    try:
        for line in proc.stdout:
            if not line.startswith(MARK):
                log.append(line.rstrip("\n"))
                if debug:
                    print(line, end="", file=sys.stderr)
                continue
            try:
                message = json.loads(line[len(MARK):])
            except ValueError:
                log.append(line.rstrip("\n"))
                continue
            if "event" in message:
                event = _event(message["event"])
                if event is not None:
                    on_event(event)
            elif "done" in message:
                done += 1
                if "result" in message:
                    result = message["result"]
            elif "error" in message:
                errors.append(message)
        code = proc.wait()
    except BaseException:
        _signal_group(proc, signal.SIGTERM)
        proc.wait()
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        reader.join(timeout=5)
        shutil.rmtree(tmp, ignore_errors=True)
    if state["interrupts"] > 1:
        raise KeyboardInterrupt
    if result is not None:
        if code != 0:  # rank 0 had saved; another rank failed afterwards
            print(f"digitlab: warning: {failure(errors, list(log), code)} (after the model was saved)", file=sys.stderr)
        return result
    if code == 0 and done and not errors:
        return None  # a machine without rank 0: its ranks finished, rank 0 saved elsewhere
    raise LaunchError(f"{failure(errors, list(log), code)}; nothing was saved")


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    """torchrun leads its own process group (start_new_session): it stops its ranks on SIGTERM."""
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _drain(stream, log, debug: bool) -> None:
    for line in stream:
        log.append(line.rstrip("\n"))
        if debug:
            print(line, end="", file=sys.stderr)


def _event(data: dict):
    """A typed training event back from its dict (the WebSocket's format)."""
    from dataclasses import fields

    from .training import events

    kinds = {c.__dataclass_fields__["type"].default: c for c in (events.RunStarted, events.BatchEnd, events.EpochEnd)}
    cls = kinds.get(data.get("type"))
    if cls is None:
        return None
    names = {f.name for f in fields(cls) if f.init}
    return cls(**{k: v for k, v in data.items() if k in names})


_ROOT = re.compile(r"^\s*rank\s*:\s*(\d+)", re.M)
_EXIT = re.compile(r"^\s*exitcode\s*:\s*(-?\d+)(?:\s*\(pid:\s*(\d+)\))?", re.M)
_HOST = re.compile(r"^\s*host\s*:\s*(\S+)", re.M)


def rank_failures(log: list[str]) -> list[dict]:
    """The failed ranks torchrun lists in its final report: rank, exit code, pid, host."""
    text = "\n".join(log)
    start = text.rfind("Failures:")
    if start < 0:
        return []
    out = []
    for block in re.split(r"\n\[\d+\]:", text[start:])[1:]:
        rank, code, host = _ROOT.search(block), _EXIT.search(block), _HOST.search(block)
        if rank and code:
            out.append({"rank": int(rank.group(1)), "exitcode": int(code.group(1)),
                        "pid": int(code.group(2)) if code.group(2) else None, "host": host.group(1) if host else None})
    return out


def failure(errors: list[dict], log: list[str], code: int) -> str:
    """The one line that says why a distributed run failed: a rank's own error first, then a rank
    killed by a signal (it could not say), then the others' "lost contact", then torchrun's exit."""
    own = sorted((e for e in errors if not e.get("peer")), key=lambda e: e.get("rank", 0))
    if own:
        return f"process rank {own[0].get('rank', '?')}: {own[0]['error']}"
    for f in rank_failures(log):
        if f["exitcode"] < 0 and -f["exitcode"] != signal.SIGTERM:
            try:
                name = signal.Signals(-f["exitcode"]).name
            except ValueError:
                name = f"signal {-f['exitcode']}"
            about = ", ".join(([f"pid {f['pid']}"] if f["pid"] else []) + ([f"on {f['host']}"] if f["host"] else []))
            return (f"training process rank {f['rank']}{f' ({about})' if about else ''} was killed by {name}; "
                    "the other processes were stopped")
    if errors:
        return f"process rank {errors[0].get('rank', '?')}: {errors[0]['error']}"
    last = next((line.strip() for line in reversed(log) if line.strip() and not line.startswith(("=", "-", " "))), "")
    return f"torchrun exited with code {code}" + (f": {last[:200]}" if last else "")


# --- a rank -----------------------------------------------------------------------------------------

class Terminated(Exception):
    """torchrun stopped this rank (SIGTERM): another one failed, or the launcher aborted."""


def run_rank(train, device_type, debug: bool = False) -> int:
    """Run the training job `train(group, callbacks, cancel)` (it returns the job's result) in this
    torchrun rank, reporting to the launcher as `MARK` lines on stdout; `device_type()` says where
    it trains ("cpu" or "cuda"). Every rank ends with a "done" line, or an "error" line. Returns
    the exit code."""
    from .training.distributed import Group, PeerLost
    from .training.events import BatchThrottle, RunStarted
    from .worker.protocol import one_line

    rank = int(os.environ.get("RANK", "0"))
    lock = threading.Lock()
    out = sys.stdout

    def send(message: dict) -> None:
        with lock:
            try:
                out.write(MARK + json.dumps(message) + "\n")
                out.flush()
            except OSError:  # the launcher's end of the pipe is gone: so is the launcher
                os._exit(1)

    def on_sigterm(signum, frame):
        raise Terminated("stopped by torchrun (another process failed, or the run was aborted)")

    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the launcher's cancel file says stop, not a stray Ctrl-C
    cancel = threading.Event()
    threading.Thread(target=_watch, args=(cancel,), name="rank-watch", daemon=True).start()
    passes = BatchThrottle()  # rank 0 sends batch events as often as the server's own worker does

    def report(event) -> None:
        if not passes(event):
            return
        data = event.to_dict()
        if isinstance(event, RunStarted):
            data["provenance"] = {}  # the launcher does not need it (the record has it)
        send({"event": data})

    group = None
    try:
        group = Group.start(device_type())
        result = train(group, [report] if rank == 0 else [], cancel)
        send({"done": rank, **({"result": result} if rank == 0 else {})})
        return 0
    except (Terminated, PeerLost) as exc:
        send({"error": str(exc), "rank": rank, "peer": True})
        return 1
    except Exception as exc:  # noqa: BLE001 - every failure reaches the launcher as one line
        send({"error": one_line(exc), "rank": rank, "peer": False})
        if debug:
            raise
        return 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if group is not None:
            try:
                group.close()
            except Exception:  # noqa: BLE001 - a broken group cannot be closed cleanly; the process ends anyway
                pass


def _watch(cancel: threading.Event) -> None:
    """Set `cancel` when the launcher's cancel file appears; end this rank when the launcher is gone."""
    cancel_file = os.environ.get(ENV_CANCEL)
    launcher = int(os.environ.get(ENV_LAUNCHER, "0") or 0)
    while True:
        if cancel_file and not cancel.is_set() and os.path.exists(cancel_file):
            cancel.set()
        if launcher and not _alive(launcher):
            os._exit(1)  # the launcher was killed: nobody can see this run, so nothing more is written
        time.sleep(WATCH_INTERVAL)


def _alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True  # no /proc (macOS): kill(0) is all we know
