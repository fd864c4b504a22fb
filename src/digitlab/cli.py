"""`digitlab ...`: the command line over the library. Errors are one line on stderr, exit code 1."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

# Before torch is imported: idle OpenMP threads sleep instead of spinning, so training never
# starves the server or the browser of CPU (spinning made training 4.5-25x slower under load).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from . import __version__  # noqa: E402
from .training.config import FIELDS as CONFIG_FIELDS  # noqa: E402 - no torch in it


class CliError(Exception):
    pass


def _home(args) -> Path:
    from .data import default_home
    return Path(args.home) if args.home else default_home()


def _store(args):
    from .models import ModelStore
    return ModelStore(_home(args))


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _seed(text: str) -> int:
    if text == "random":
        from .training import draw_seed
        return draw_seed()
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'random', got {text!r}") from None
    return value  # limits: TrainConfig.validate()


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """One option per TrainConfig field, with its default, limits and help (ConfigError checks them)."""
    from .training.config import FIELDS, spec

    for name, f in FIELDS.items():
        s = spec(name)
        kind = _seed if name == "seed" else {"integer": _int, "number": _float, "string": str}[s["type"]]
        low = s.get("minimum", s.get("exclusiveMinimum"))
        limits = f"{'above ' if 'exclusiveMinimum' in s else ''}{low} to {s['maximum']}; " if "maximum" in s else ""
        extra = "; 'random' draws one and records it" if name == "seed" else ""
        parser.add_argument(f.metadata["flag"] or "--" + name.replace("_", "-"), dest=name, type=kind,
                            default=s["default"], choices=s.get("enum"), metavar=None if "enum" in s else name.upper(),
                            help=f"{s['help']} ({limits}default {s['default']}{extra})")


def cmd_train(args) -> int:
    from tqdm import tqdm

    from .job import train_model
    from .training import BatchEnd, EpochEnd, RunStarted, TrainConfig
    from .training.distributed import under_torchrun

    distributed = args.nproc != 1 or args.nnodes != 1
    if distributed and under_torchrun():
        raise CliError("--nproc/--nnodes start torchrun; a process that torchrun started is one rank: leave them out")
    config = TrainConfig(**{name: getattr(args, name) for name in CONFIG_FIELDS}).validate()
    from .training.loop import cpu_cores
    if distributed:
        from .launch import LaunchError, check_options
        try:
            check_options(args.nproc, args.nnodes, args.node_rank, args.rdzv_endpoint, cpu_cores())
        except LaunchError as exc:
            raise CliError(str(exc)) from None
    if config.threads > cpu_cores():
        print(f"digitlab: warning: --threads {config.threads} is more than the {cpu_cores()} usable cores; "
              f"using {cpu_cores()}", file=sys.stderr)
        config.threads = cpu_cores()
    if distributed and config.threads * args.nproc > cpu_cores():
        print(f"digitlab: warning: --nproc {args.nproc} x --threads {config.threads} is more than the "
              f"{cpu_cores()} usable cores: the processes will slow each other down", file=sys.stderr)
    if under_torchrun():
        return _train_rank(args, config)
    bar = None
    quiet = args.json or args.quiet

    def show(event) -> None:
        nonlocal bar
        if isinstance(event, RunStarted) and not quiet:
            workers = (f"{event.processes} processes x {event.threads} thread{'s' * (event.threads > 1)}"
                       if event.processes > 1 else f"{event.threads} thread{'s' * (event.threads > 1)}")
            print(f"training on {event.device} ({event.path}, {workers}), "
                  f"seed {config.seed}: {event.train_size:,} images, {event.batches} batches per epoch",
                  file=sys.stderr)
        elif isinstance(event, BatchEnd):
            if bar is None:
                bar = tqdm(total=event.batches, desc=f"epoch {event.epoch}/{config.epochs}", unit="batch",
                           leave=False, disable=quiet, file=sys.stderr)
            bar.update(event.batch - bar.n)  # a distributed run's rank 0 sends at most 50 a second (BatchThrottle)
            bar.set_postfix(loss=f"{event.loss:.3f}", acc=f"{event.accuracy:.3f}", refresh=False)
        elif isinstance(event, EpochEnd):
            if bar is not None:
                bar.close()
                bar = None
            if not quiet:
                print(f"epoch {event.epoch}/{event.epochs}  loss {event.loss:.4f}  acc {event.accuracy:.4f}  "
                      f"val_loss {event.val_loss:.4f}  val_acc {event.val_accuracy:.4f}  "
                      f"{event.epoch_seconds:.2f}s  {event.images_per_s:,.0f} img/s", file=sys.stderr)

    if distributed:
        try:
            summary = _train_distributed(args, config, show)
        finally:
            if bar is not None:
                bar.close()  # an error line never lands after half a progress bar
        return _print_result(args, summary)

    # First Ctrl-C: stop at the next batch and save the last finished epoch. Second: abort.
    cancel = threading.Event()

    def on_sigint(signum, frame):
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()
        print("\ndigitlab: stopping after this batch; Ctrl-C again to abort without saving", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        result = train_model(_home(args), args.dataset, config, name=args.name, resume=args.resume,
                             callbacks=[show], cancel=cancel, progress=not args.json, force=args.force,
                             with_drawings=args.with_drawings)
    finally:
        signal.signal(signal.SIGINT, previous)
    if result.name is None:
        raise CliError("cancelled before the first epoch finished; nothing saved")
    return _print_result(args, _summary(result))


def _summary(result) -> dict:
    """What `train --json` prints of a finished job."""
    last = result.fit.history[-1]
    return {"model": result.name, "epochs": result.record["epochs"], "test_accuracy": last.val_accuracy,
            "test_loss": last.val_loss, "seconds": round(result.fit.seconds, 3)}


def _print_result(args, summary: dict) -> int:
    if summary.get("model") is None:  # a machine of a multi-machine run whose ranks do not save
        if args.json:
            print(json.dumps(summary))
        else:
            print(f"this machine's {args.nproc} training process{'es' * (args.nproc > 1)} finished; rank 0 "
                  "(on the machine of --node-rank 0) saved the model")
        return 0
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"saved model {summary['model']}: test accuracy {summary['test_accuracy']:.2%} "
              f"(loss {summary['test_loss']:.4f}) after {summary['epochs']} epochs in {summary['seconds']:.1f}s")
    return 0


def _rank_args(args, config) -> list[str]:
    """The `digitlab train` options of every rank: the launcher's, with the seed drawn and without
    the launcher's own options (torchrun runs exactly one rank per process)."""
    out = ["--dataset", args.dataset, "--home", str(_home(args).resolve()), "--quiet"]
    for name, f in CONFIG_FIELDS.items():
        out += [f.metadata["flag"] or "--" + name.replace("_", "-"), str(getattr(config, name))]
    for option in ("name", "resume"):
        if getattr(args, option):
            out += [f"--{option}", getattr(args, option)]
    out += [flag for flag, on in (("--force", args.force), ("--with-drawings", args.with_drawings),
                                  ("--debug", args.debug)) if on]
    return out


def _train_distributed(args, config, show) -> dict:
    """The launcher: check, fetch the dataset once, run torchrun, show rank 0's events (digitlab.launch)."""
    from .data import load_dataset
    from .launch import LaunchError, launch, torchrun_command
    from .models import ModelStore, check_name
    from .training.loop import pick_device

    home = _home(args)
    pick_device(config.device)  # a missing GPU is said now, not by every rank
    if args.node_rank == 0:  # the machine whose rank 0 saves
        store = ModelStore(home)
        store.ensure_writable()
        resume = store.resolve(args.resume) if args.resume else None
        if args.name or resume:
            store.check_free(check_name(args.name or resume), resume, args.force)
    load_dataset(args.dataset, home=home, progress=not (args.json or args.quiet))  # downloaded once, here
    cmd = torchrun_command(_rank_args(args, config), args.nproc, args.nnodes, args.node_rank, args.rdzv_endpoint,
                           args.rdzv_id, args.rdzv_backend)
    if args.debug:
        print("digitlab: " + " ".join(cmd), file=sys.stderr)
    if args.nnodes > 1 and not (args.json or args.quiet):
        print(f"digitlab: machine {args.node_rank} of {args.nnodes} ({args.nproc} process{'es' * (args.nproc > 1)}) "
              f"waiting for the others at {args.rdzv_endpoint}", file=sys.stderr)
    try:
        result = launch(cmd, show, debug=args.debug)
    except LaunchError as exc:
        raise CliError(str(exc)) from None
    if result is None:
        return {"model": None, "node_rank": args.node_rank}
    if result.get("cancelled"):
        raise CliError("cancelled before the first epoch finished; nothing saved")
    return result


def _train_rank(args, config) -> int:
    """One torchrun rank: the same job as a one-process run, in its process group; rank 0 saves."""
    from .job import train_model
    from .launch import run_rank
    from .training.loop import pick_device

    def train(group, callbacks, cancel):
        result = train_model(_home(args), args.dataset, config, name=args.name, resume=args.resume,
                             callbacks=callbacks, cancel=cancel, force=args.force,
                             with_drawings=args.with_drawings, group=group)
        if group.rank != 0:
            return None
        return {"cancelled": True} if result.name is None else _summary(result)

    return run_rank(train, lambda: pick_device(config.device).type, debug=args.debug)


def cmd_predict(args) -> int:
    from .inference import Predictor
    from .inference.preprocess import PreprocessError

    store = _store(args)
    name = store.resolve(args.model)
    from .inference.confidence import of_record
    record = store.record(name)
    predictor = Predictor(store.onnx_path(name), calibration=of_record(record))
    classes = record.get("classes") or [str(d) for d in range(10)]
    named = classes != [str(i) for i in range(len(classes))]  # not just numbered: say the class's name
    failures = 0
    for path in args.images:
        try:
            prediction = predictor.predict_bytes(Path(path).read_bytes())
        except (OSError, PreprocessError) as exc:
            failures += 1
            msg = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            print(f"digitlab: error: {path}: {msg}", file=sys.stderr)
            continue
        label = classes[prediction.digit] if prediction.digit < len(classes) else str(prediction.digit)
        if args.json:
            print(json.dumps({"image": path, **prediction.to_dict(), "class": label}))
        else:
            def said(i):
                return classes[i] if named and i < len(classes) else str(i)
            number = f", class {prediction.digit}" if named else ""
            unsure = "" if prediction.sure else f", not sure: {said(prediction.digit)} or {said(prediction.runner_up)}?"
            print(f"{path}: {said(prediction.digit)} ({prediction.confidence:.1%}{number}{unsure})")
    return 1 if failures else 0


def cmd_evaluate(args) -> int:
    from .data import load_dataset
    from .evaluation import evaluate_model

    store = _store(args)
    name = store.resolve(args.model)
    record = store.record(name)
    ds = load_dataset(args.dataset or record.get("dataset", "sample"), home=_home(args), progress=not args.json)
    report = evaluate_model(store.onnx_path(name), ds)
    report["model"] = name
    report["classes"] = list(ds.classes)  # one name per row and column of the K x K confusion matrix
    if args.json:
        report.pop("misclassified", None)
        print(json.dumps(report))
        return 0
    print(f"model {name} on {ds.name} test ({report['count']} images): accuracy {report['accuracy']:.2%}, "
          f"loss {report['loss']:.4f}")
    print("per class: " + "  ".join(f"{c}: {a:.1%}" for c, a in zip(ds.classes, report["per_class_accuracy"])))
    print("confusion matrix (rows: true, columns: predicted)")
    width = max(5, len(str(max(max(row) for row in report["confusion"]))) + 1)
    print("      " + "".join(f"{i:>{width}}" for i in range(len(report["confusion"]))))
    for i, row in enumerate(report["confusion"]):
        print(f"{i:>6}" + "".join(f"{v:>{width}}" for v in row))
    return 0


def cmd_summary(args) -> int:
    from .models import build, format_summary, layer_table

    if args.model is None and not _store(args).list():
        from .training.config import DEFAULT_ARCHITECTURE
        model = build(DEFAULT_ARCHITECTURE)  # nothing trained yet: show the architecture itself
    else:
        model, _ = _store(args).load(_store(args).resolve(args.model))
    print(format_summary(layer_table(model)))
    return 0


def cmd_models(args) -> int:
    store = _store(args)
    if args.action == "rm":
        if not args.name:
            raise CliError("models rm needs a model NAME")
        store.delete(args.name)
        print(f"deleted model {args.name}")
        return 0
    if args.action is not None:
        raise CliError(f"unknown models action {args.action!r}; use `digitlab models` or `digitlab models rm NAME`")
    models = store.list()
    if args.json:
        print(json.dumps(models))
        return 0
    if not models:
        print("no saved models yet; train one with `digitlab train`")
        return 0
    print(f"{'name':<32}{'dataset':<16}{'epochs':>7}{'test acc':>10}  updated")
    for r in models:
        acc = f"{r['test_accuracy']:.2%}" if r.get("test_accuracy") is not None else "-"
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.get("updated", 0)))
        print(f"{r['name']:<32}{r.get('dataset', '?'):<16}{r.get('epochs', 0):>7}{acc:>10}  {when}")
    return 0


def cmd_export(args) -> int:
    import shutil

    store = _store(args)
    name = store.resolve(args.name)
    out = Path(args.out)
    if args.format == "onnx":
        src = store.onnx_path(name)
    elif args.format == "safetensors":
        src = store.file_path(name, "weights")
    else:
        return _export_tfjs(store, name, out)
    if out.is_dir():
        out = out / f"{name}.{args.format}"
    try:
        shutil.copyfile(src, out)
    except OSError as exc:
        raise CliError(f"cannot write {out}: {exc.strerror or exc}") from None
    print(f"wrote {out} ({out.stat().st_size:,} bytes)")
    return 0


def _export_tfjs(store, name: str, out: Path) -> int:
    """`export --format tfjs`: OUT/model.json + its weight shard, for tf.loadLayersModel."""
    from .models.tfjs import TfjsError, write_folder

    try:
        written = write_folder(store, name, out)
    except TfjsError as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"cannot write {out}: {exc.strerror or exc}") from None
    print(f"wrote {written[1]} and {written[0].name} ({written[0].stat().st_size:,} bytes): "
          f"a TF.js Layers model for tf.loadLayersModel")
    return 0


def cmd_import(args) -> int:
    from .models.tfjs import TfjsError, import_model

    try:
        record = import_model(_store(args), args.source, name=args.name, force=args.force)
    except TfjsError as exc:
        raise CliError(str(exc)) from None
    print(f"imported {record['provenance']['imported']['source']} as model {record['name']} "
          f"({record['architecture']}, {record['parameters']:,} parameters)")
    return 0


def cmd_data(args) -> int:
    from .data import load_dataset

    ds = load_dataset(args.dataset, home=_home(args), allow_download=args.download or args.dataset == "sample",
                      progress=True)
    info = ds.describe()
    if args.json:
        print(json.dumps(info))
        return 0
    print(f"{info['name']}: {info['train']:,} train + {info['test']:,} test images, "
          f"{info['image_shape'][0]}x{info['image_shape'][1]}, from {info['source']}")
    for label, tr, te in zip(info["classes"], info["train_counts"], info["test_counts"]):
        print(f"  {label:<12} train {tr:>6,}  test {te:>6,}")
    return 0


def cmd_drawings(args) -> int:
    """List the taught drawings, delete some, or write them as an IDX folder."""
    from .data.drawings import DrawingNotFound, DrawingStore
    from .server.db import RunDB

    db = RunDB(_home(args) / "runs.sqlite3")  # the server's database: safe to share (SQLite WAL)
    try:
        store = DrawingStore(_home(args), db)
        if args.action == "rm":
            if not args.args:
                raise CliError("drawings rm needs one or more drawing IDs (see `digitlab drawings`)")
            for text in args.args:
                try:
                    store.delete(_int(text))
                except (argparse.ArgumentTypeError, DrawingNotFound) as exc:
                    raise CliError(f"no drawing {text}" if isinstance(exc, DrawingNotFound) else str(exc)) from None
                print(f"deleted drawing {text}")
            return 0
        if args.action == "export":
            if len(args.args) != 1:
                raise CliError("drawings export needs one folder: `digitlab drawings export DIR`")
            out = store.export(args.args[0])
            print(f"wrote {out['train']} drawings to learn from and {out['test']} held out (as the test split) to "
                  f"{out['folder']}" + (f"; skipped {out['damaged']} damaged" if out["damaged"] else "")
                  + f"\ntrain on them: digitlab train --dataset {out['folder']}")
            return 0
        if args.action is not None:
            raise CliError(f"unknown drawings action {args.action!r}; use `digitlab drawings`, "
                           "`drawings rm ID...` or `drawings export DIR`")
        drawings = store.list()
    finally:
        db.close()
    if args.json:
        print(json.dumps([d.to_dict() for d in drawings]))
        return 0
    if not drawings:
        print("no drawings yet: correct or confirm a prediction on the page's Draw card")
        return 0
    print(f"{'id':>5}  {'label':>5}  {'read as':>7}  {'model':<28}{'taught':<18}note")
    for d in drawings:
        read = "-" if d.predicted is None else str(d.predicted)
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(d.created))
        note = f"damaged: {d.damaged}" if d.damaged else "held out" if d.heldout else ""
        print(f"{d.id:>5}  {d.label:>5}  {read:>7}  {(d.model or '-'):<28}{when:<18}{note}")
    usable = [d for d in drawings if not d.damaged]
    counts = [sum(1 for d in usable if d.label == k) for k in range(10)]
    print("per digit: " + "  ".join(f"{k}: {c}" for k, c in enumerate(counts))
          + f"  ({sum(d.heldout for d in usable)} held out)")
    return 0


def cmd_serve(args) -> int:
    from .server.serve import serve
    return serve(host=args.host, port=args.port, home=_home(args), dataset=args.dataset,
                 open_browser=not args.no_browser, token=args.token, allow_hosts=tuple(args.allow_host))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="digitlab", description="Train and use a handwritten-digit recognizer.")
    parser.add_argument("--version", action="version", version=f"digitlab {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--home", help="folder for models, run history and downloads (default: $DIGITLAB_HOME or ~/.digitlab)")
    common.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    ds_help = "sample (embedded, default), mnist, fashion-mnist, or a folder of IDX files"

    p = sub.add_parser("serve", parents=[common], help="start the web app and print its URL")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000,
                   help="port to listen on; if taken, the next free one (0: any free port)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser tab")
    p.add_argument("--dataset", default="sample", help=ds_help)
    p.add_argument("--token", default=os.environ.get("DIGITLAB_TOKEN"),
                   help="access token (required when not on 127.0.0.1; generated if absent)")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="another Host name the server answers to (e.g. a proxy's); repeatable. "
                        "Only its own address and localhost are accepted otherwise (DNS rebinding)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("train", parents=[common], help="train a model with a progress bar and save it")
    p.add_argument("--dataset", default="sample", help=ds_help)
    add_config_options(p)
    p.add_argument("--name", help="model name (default: DATASET-DATE-TIME); an existing one only with --force")
    p.add_argument("--force", action="store_true", help="replace an existing model of that --name")
    p.add_argument("--resume", metavar="NAME", help="continue training this saved model")
    p.add_argument("--with-drawings", action="store_true",
                   help="mix in the drawings taught on the page (`digitlab drawings`), oversampled to about "
                        "15%% of each epoch; the held-out ones are measured before and after")
    p.add_argument("--nproc", type=_int, default=1,
                   help="training processes on this machine, started by torchrun, each on its share of every "
                        "batch (default 1: this process alone; each takes its share of the cores, or --threads)")
    p.add_argument("--nnodes", type=_int, default=1,
                   help="machines in a distributed run (torchrun's option; each runs this command with its --node-rank)")
    p.add_argument("--node-rank", type=_int, default=0, help="this machine's place, 0 to NNODES-1 (torchrun's option)")
    p.add_argument("--rdzv-endpoint", metavar="HOST:PORT",
                   help="where the machines meet: a free port on the --node-rank 0 machine (torchrun's option)")
    p.add_argument("--rdzv-id", help="the run's id, the same on every machine (torchrun's option; c10d backend)")
    p.add_argument("--rdzv-backend", choices=("static", "c10d"), default="static",
                   help="torchrun's rendezvous: static (the default: ranks follow --node-rank, so rank 0, which "
                        "saves the model, runs on the --node-rank 0 machine) or c10d (ranks in order of arrival)")
    p.add_argument("--json", action="store_true", help="end with one JSON line of results")
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("predict", parents=[common], help="recognise the digit in PNG/JPEG images")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--model", help="model name (default: the newest)")
    p.add_argument("--json", action="store_true", help="one JSON object per image")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("evaluate", parents=[common], help="test accuracy, per-class accuracy, confusion matrix")
    p.add_argument("--model", help="model name (default: the newest)")
    p.add_argument("--dataset", help="dataset (default: the one the model was trained on)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("summary", parents=[common], help="Keras-style layer table of a model")
    p.add_argument("--model", help="model name (default: the newest, or the untrained architecture)")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("models", parents=[common], help="list saved models, or `models rm NAME`")
    p.add_argument("action", nargs="?", help="rm")
    p.add_argument("name", nargs="?")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("export", parents=[common], help="write a portable model file")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--format", default="onnx", choices=["onnx", "safetensors", "tfjs"])
    p.add_argument("--out", required=True, metavar="PATH",
                   help="file or folder to write (tfjs: a folder, made if missing, for model.json + its weights)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("import", parents=[common], help="add a TF.js Layers model (model.json + weights) to the store")
    p.add_argument("source", metavar="DIR", help="the model's folder, or its .json file (e.g. x.json saved by "
                   "model.save('downloads://x'), next to x.weights.bin)")
    p.add_argument("--name", help="model name (default: from the file's name); an existing one only with --force")
    p.add_argument("--force", action="store_true", help="replace an existing model of that --name")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("drawings", parents=[common],
                       help="the drawings taught on the page: list, `drawings rm ID...`, `drawings export DIR`")
    p.add_argument("action", nargs="?", help="rm or export")
    p.add_argument("args", nargs="*", metavar="ID/DIR")
    p.add_argument("--json", action="store_true", help="list as JSON")
    p.set_defaults(func=cmd_drawings)

    p = sub.add_parser("data", parents=[common], help="describe a dataset; --download fetches and verifies it")
    p.add_argument("--dataset", default="sample", help=ds_help)
    p.add_argument("--download", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_data)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .data import DatasetError
    from .inference import PreprocessError
    from .models import StoreError
    from .server.serve import ServeError
    from .training import ConfigError

    try:
        return args.func(args)
    except (CliError, DatasetError, StoreError, ConfigError, PreprocessError, ServeError, OSError) as exc:
        if args.debug:
            raise
        print(f"digitlab: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("digitlab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
