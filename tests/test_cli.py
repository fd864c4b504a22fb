import json
import subprocess
import sys

import pytest

from strokes import render


def digitlab(*args, home, check=True):
    proc = subprocess.run([sys.executable, "-m", "digitlab.cli", *args, "--home", str(home)],
                          capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def one_line_error(proc, text):
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("digitlab: error:") and text in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_train_json_then_predict_evaluate_models_export(tmp_path):
    home = tmp_path / "home"
    out = digitlab("train", "--epochs", "3", "--name", "cli", "--json", home=home)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["model"] == "cli" and result["epochs"] == 3 and result["test_accuracy"] > 0.9
    assert set(result) == {"model", "epochs", "test_accuracy", "test_loss", "seconds"}

    resumed = json.loads(digitlab("train", "--epochs", "1", "--resume", "cli", "--json", home=home).stdout)
    assert resumed["model"] == "cli" and resumed["epochs"] == 4

    paths = []
    for digit, kw in [(7, {}), (1, dict(left=20, top=30, height=90, width=9))]:
        path = tmp_path / f"d{digit}.png"
        render(digit, **kw).save(path)
        paths.append(str(path))
    lines = digitlab("predict", *paths, "--json", home=home).stdout.strip().splitlines()
    preds = [json.loads(line) for line in lines]
    assert [p["digit"] for p in preds] == [7, 1]
    assert all(len(p["probabilities"]) == 10 and 0 < p["confidence"] <= 1 for p in preds)

    report = json.loads(digitlab("evaluate", "--json", home=home).stdout)
    assert report["count"] == 2000 and len(report["confusion"]) == 10 and report["accuracy"] > 0.9

    assert "Total params: 53,866" in digitlab("summary", home=home).stdout
    assert "cli" in digitlab("models", home=home).stdout
    digitlab("export", "cli", "--format", "onnx", "--out", str(tmp_path / "m.onnx"), home=home)
    assert (tmp_path / "m.onnx").stat().st_size > 100_000
    digitlab("models", "rm", "cli", home=home)
    assert "no saved models" in digitlab("models", home=home).stdout


@pytest.mark.parametrize("args, text", [
    (["train", "--dataset", "nope"], "unknown dataset 'nope'"),
    (["train", "--lr", "nan"], "learning_rate"),
    (["train", "--epochs", "0"], "epochs: must be from 1 to 1000"),
    (["train", "--seed", "-1"], "seed"),
    (["train", "--batch-size", "9000"], "larger than the 8000"),
    (["train", "--name", "../evil", "--epochs", "1"], "invalid model name"),
    (["predict", "x.png"], "no saved models yet"),
    (["summary", "--model", "ghost"], "no model named 'ghost'"),
    (["data", "--dataset", "/nonexistent/folder"], "not a folder"),
])
def test_errors_are_one_line(tmp_path, args, text):
    one_line_error(digitlab(*args, home=tmp_path, check=False), text)


def test_predict_reports_bad_files_and_exits_non_zero(trained_home, tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not an image")
    blank = tmp_path / "blank.png"
    from PIL import Image
    Image.new("L", (100, 100), 255).save(blank)
    proc = digitlab("predict", str(tmp_path / "bad.png"), str(blank), str(tmp_path / "missing.png"),
                    home=trained_home, check=False)
    assert proc.returncode == 1
    assert "not a PNG or JPEG" in proc.stderr and "nothing drawn" in proc.stderr and "No such file" in proc.stderr


def test_help_for_every_command(tmp_path):
    for cmd in ["serve", "train", "predict", "evaluate", "summary", "models", "export", "data", "drawings"]:
        assert "usage: digitlab " + cmd in digitlab(cmd, "--help", home=tmp_path).stdout


def test_data_describes_sample(tmp_path):
    info = json.loads(digitlab("data", "--json", home=tmp_path).stdout)
    assert info["train"] == 8000 and info["test"] == 2000


def test_unwritable_home_is_a_clear_error(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "models").write_text("not a folder")  # as root, permissions cannot make it unwritable
    proc = digitlab("train", "--epochs", "1", "--name", "x", home=home, check=False)
    one_line_error(proc, "cannot save models in")


def test_ctrl_c_stops_after_the_batch_and_keeps_finished_epochs(tmp_path):
    import re
    import signal
    from digitlab.models import ModelStore

    proc = subprocess.Popen([sys.executable, "-m", "digitlab.cli", "train", "--epochs", "200", "--name", "stopped",
                             "--home", str(tmp_path), "--batch-size", "32"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:  # per-epoch lines end in a newline (the progress bar does not)
        if re.search(r"epoch 1/200 +loss", line):
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    epochs = int(re.search(r"saved model stopped: .* after (\d+) epochs", out).group(1))
    assert 1 <= epochs < 200 and "stopping after this batch" in err
    assert ModelStore(tmp_path).record("stopped")["epochs"] == epochs


def test_train_never_silently_replaces_a_model(trained_home, tmp_path):
    import shutil
    from digitlab.models import ModelStore

    home = tmp_path / "home"
    shutil.copytree(trained_home / "models", home / "models")
    before = ModelStore(home).record("base")
    one_line_error(digitlab("train", "--epochs", "1", "--name", "base", home=home, check=False), "exists")
    digitlab("train", "--epochs", "1", "--name", "other", home=home)
    one_line_error(digitlab("train", "--epochs", "1", "--resume", "other", "--name", "base", home=home, check=False),
                   "exists")
    assert ModelStore(home).record("base") == before  # untouched
    digitlab("train", "--epochs", "1", "--resume", "other", home=home)  # resuming is replacing on purpose
    digitlab("train", "--epochs", "1", "--name", "base", "--force", home=home)
    assert ModelStore(home).record("base")["epochs"] == 1


def test_more_threads_than_cores_are_capped_with_a_warning(tmp_path):
    import os
    cores = len(os.sched_getaffinity(0))
    proc = digitlab("train", "--epochs", "1", "--threads", "256", "--name", "t", "--json", home=tmp_path)
    assert f"--threads 256 is more than the {cores} usable cores; using {cores}" in proc.stderr
    from digitlab.models import ModelStore
    assert ModelStore(tmp_path).record("t")["config"]["threads"] == cores


def _serve(home, *args):
    return subprocess.Popen([sys.executable, "-m", "digitlab.cli", "serve", "--no-browser", "--home", str(home), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_serve_port_zero_prints_the_real_port_and_bad_ports_are_one_line(tmp_path):
    import httpx
    proc = _serve(tmp_path, "--port", "0")
    try:
        url = proc.stdout.readline().split()[1]
        port = int(url.rsplit(":", 1)[1].strip("/"))
        assert port > 0
        assert httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=30).status_code == 200
    finally:
        proc.terminate()
        proc.wait(30)
    for bad in ("-1", "70000"):
        one_line_error(digitlab("serve", "--no-browser", "--port", bad, home=tmp_path / "b", check=False), "--port")


def test_serve_restarted_after_a_crash_gets_the_same_port(tmp_path):
    """Connections left in TIME_WAIT by a killed server used to push the restart to the next port."""
    import signal
    import time

    import httpx
    from server_util import free_port
    port = free_port()
    for attempt in range(2):
        proc = _serve(tmp_path, "--port", str(port))
        client = httpx.Client()  # a keep-alive connection, open when the server dies (as a page's is)
        try:
            assert proc.stdout.readline().strip() == f"open http://127.0.0.1:{port}/", attempt
            for _ in range(100):
                try:
                    client.get(f"http://127.0.0.1:{port}/api/health", timeout=30)
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
            client.close()
