"""`make bench`: run every benchmark, write bench/results/*.json, print a table.

    make bench                 # all
    make bench ARGS="load"     # some: train_speed, handwriting, inference, load, ui_frames
"""

from __future__ import annotations

import importlib
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
from common import machine  # noqa: E402

ALL = ["train_speed", "handwriting", "inference", "load", "ui_frames"]


def table(results: dict) -> str:
    lines = [f"machine: {machine()['cores']} cores, {machine()['cpu']}, torch {machine()['torch']}", ""]
    add = lines.append
    if "train_speed" in results:
        r = results["train_speed"]
        row0 = r["rows"][0]
        add(f"training, one epoch of {row0['images']:,} {r['dataset']} images + validation on {row0['test_images']:,} "
            "(second epoch, best of interleaved rounds)")
        add(f"fp32 matmul (torch.mm, best n x n): {row0['matmul_gflops_all_cores']:.0f} GFLOP/s on all cores "
            f"(n={row0['matmul_n_all_cores']}), {row0['matmul_gflops_single_thread']:.0f} on one "
            f"(n={row0['matmul_n_single_thread']}); bound = epoch FLOPs / the all-cores rate")
        add(f"{'batch':>6} {'PyTorch loop s':>15} {'digitlab s':>11} {'img/s':>8} {'speedup':>8} "
            f"{'+val s':>7} {'GFLOP':>6} {'bound s':>8} {'ratio':>6}")
        for row in r["rows"]:
            base = f"{row['baseline_epoch_s']:>15.2f}" if "baseline_epoch_s" in row else f"{'-':>15}"
            speedup = f"{row['speedup']:>7.2f}x" if "speedup" in row else f"{'-':>8}"
            add(f"{row['batch_size']:>6} {base} {row['digitlab_epoch_s']:>11.2f} "
                f"{row['digitlab_images_per_s']:>8,} {speedup} {row['digitlab_epoch_with_validation_s']:>7.2f} "
                f"{row['epoch_flops'] / 1e9:>6.1f} {row['bound_s']:>8.3f} {row['ratio_to_bound']:>5.2f}x")
        t = r.get("time_to_accuracy")
        if t and t["fashion_mnist_90pct_s"]:
            add(f"time to 90% on Fashion-MNIST test: {t['fashion_mnist_90pct_s']:.1f} s")
        if t and t["sample_98pct_s"]:
            add(f"time to 98% on the MNIST sample: {t['sample_98pct_s']:.1f} s "
                f"(default 20 epochs: {t['sample_final_accuracy']:.2%} in {t['sample_total_s']:.1f} s)")
        add(f"trainer peak RSS: {row0['digitlab_peak_rss_mb']} MB")
        pr = r.get("processes")
        if pr:  # digitlab train --nproc 1 vs 2 (torchrun), batch 128
            one, two, proj = pr["one_process"], pr["two_processes"], pr["projection_two_machines"]
            add(f"--nproc 1 ({one['threads_per_process']} threads): {one['epoch_s']:.2f} s/epoch, run {one['wall_s']:.0f} s; "
                f"--nproc 2 ({two['threads_per_process']} thread{'s' * (two['threads_per_process'] > 1)} each): "
                f"{two['epoch_s']:.2f} s/epoch (x{pr['epoch_ratio_two_over_one']:.2f}, "
                f"{pr['overhead_per_step_ms']:+.2f} ms/step), run {two['wall_s']:.0f} s; "
                f"two machines, projected: {proj['epoch_s']:.2f} s/epoch (x{proj['speedup']:.2f})")
        for c in r.get("cuda") or []:
            add(f"CUDA ({c['gpu']}), batch {c['batch_size']}: {c['epoch_s']:.3f} s/epoch "
                f"({c['epoch_with_validation_s']:.3f} s with validation), {c['images_per_s']:,} img/s")
        add("")
    if "handwriting" in results:
        r = results["handwriting"]
        add(f"drawn-digit benchmark ({r['benchmark_size']['held-out']:,} held-out digits, PNGs through the app's "
            "preprocessing); recipes trained on the sample, side by side")
        add(f"{'recipe':>16} {'held-out':>9} {'tune':>6} {'worst digit':>12} {'sample test':>12} {'train s':>8} "
            f"{'ECE before/after':>17} {'wrong unsure':>13} {'right unsure':>13}")
        for name, v in r["recipes"].items():
            h, t = v["halves"]["held-out"], v["halves"]["tune"]
            worst = min(h["digit"].items(), key=lambda kv: kv[1])
            add(f"{name:>16} {h['accuracy']:>9.1%} {t['accuracy']:>6.1%} {worst[0] + ': ' + format(worst[1], '.0%'):>12} "
                f"{v['sample_test_accuracy']:>12.2%} {v['train_s']:>8.1f} {h['ece_before']:>8.3f}/{h['ece_after']:<8.3f} "
                f"{h['wrong_flagged_unsure']:>13.0%} {h['right_flagged_unsure']:>13.1%}")
        add("")
    if "inference" in results:
        r = results["inference"]
        add(f"inference: one image {r['single_image_model_ms']['onnxruntime_p50'] * 1000:.0f} us (onnxruntime) vs "
            f"{r['single_image_model_ms']['torch_eager_p50'] * 1000:.0f} us (torch); "
            f"{r['batch']['images']:,} images {r['batch']['onnxruntime_s']:.3f} s vs {r['batch']['torch_eager_s']:.3f} s")
        add("")
    if "load" in results:
        r = results["load"]
        for key in ("idle", "while_training"):
            v = r[key]
            add(f"predict route, {r['concurrency']} concurrent, {key.replace('_', ' ')}: {v['requests_per_s']} req/s, "
                f"p50 {v['p50_ms']} ms, p99 {v['p99_ms']} ms, errors {v['errors']}")
        add("")
    if "ui_frames" in results:
        r = results["ui_frames"]
        runs = r.get("runs", [r])
        add(f"the page ({r['page']}), drawing on the pad, {r['seconds']:g} s each; run: sample, batch {r['batch_size']}; "
            f"{len(runs)} run{'s' * (len(runs) > 1)}, one row each")
        add(f"{'':22}{'frame p50':>10}{'p99':>7}{'max':>7}{'long tasks':>11}{'max ms':>7}{'draw p50':>9}{'p95':>7}"
            f"{'main CPU':>9}")
        for key, label in (("idle", "idle"), ("idle_activation_view_off", "idle, view folded"),
                           ("cli_busy", "digitlab train (CLI)"), ("server_unsubscribed", "run, not subscribed"),
                           ("streaming", "run, streaming"), ("history_streaming", "streaming, Runs open")):
            for one in runs:
                if key not in one:
                    continue
                v = one[key]
                f, lt, d = v["frame_interval_ms"], v["long_tasks"], v["draw_to_prediction_ms"]
                cpu = v.get("chromium_cpu_s_per_s", {}).get("renderer_main")
                add(f"{label:22}{f['p50']:>10}{f['p99']:>7}{f['max']:>7}{lt['count']:>11}{lt['max_ms']:>7}"
                    f"{d['p50']:>9}{d['p95']:>7}{'' if cpu is None else f'{cpu:>9.2f}'}")
        for one in runs:
            rl, sp, t = one["reload"], one["training_speed"], one.get("targets", {})
            add(f"reloaded mid-run: {rl['events_in_window']} events replayed and live, {rl['long_tasks']['count']} long "
                f"tasks (max {rl['long_tasks']['max_ms']} ms)"
                + (f"; training {sp['unsubscribed']['epoch_s']} s/epoch not subscribed, {sp['streaming']['epoch_s']} s "
                   f"streaming ({sp['ratio']:.2f}x)" if sp["ratio"] else "")
                + (f"; streaming/idle: p99 x{t['streaming_p99_over_idle']}, draw p95 x{t['draw_p95_streaming_over_idle']}"
                   if t else ""))
    return "\n".join(lines)


def main(names: list[str]) -> int:
    results = {}
    for name in names or ALL:
        if name not in ALL:
            print(f"unknown benchmark {name!r}; choose from {', '.join(ALL)}", file=sys.stderr)
            return 2
        print(f"running {name}...", file=sys.stderr, flush=True)
        results[name] = importlib.import_module(name).main()
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
