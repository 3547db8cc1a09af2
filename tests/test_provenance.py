"""Where a result came from: the machine record, the model card, the report's banner."""

from __future__ import annotations

import json
import subprocess
from importlib import metadata
from pathlib import Path

import pandas as pd
import pytest
from helpers import params, sh

from pipeline.core import machine
from pipeline.evaluation import modelcard
from pipeline.evaluation.comparison import ModelResult, compare
from pipeline.evaluation.report import markdown, to_html

XEON = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512bw avx512_vnni avx512_bf16 avx512_fp16 \
amx_bf16 amx_tile amx_int8
processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: fpu
"""
EPYC = "model name\t: AMD EPYC 9B14\nflags\t\t: avx avx2 fma avx512f avx512_bf16\n"
RANDOM = {"arch": "resnet50", "requested": "auto", "source": "random", "seed": 42}
IMAGENET = {"arch": "resnet50", "requested": "auto", "source": "imagenet",
            "file": "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
            "md5": "4d473c1dd8becc155b73f8504c6f6626"}
DATA = {"images": 400, "classes": 2, "splits": {"train": 280, "val": 60, "test": 60},
        "per_class": {"cat": 200, "dog": 200}, "dropped": {"bad": 3, "duplicates": 1},
        "source": {"kind": "folder", "sha256": None}}
CHOSEN = {"recommended": "head", "accuracy": 0.5, "accuracy_low": 0.3774,
          "accuracy_high": 0.6226}
CARD = {"model": "head", "name": "head", "family": "head", "input": "image", "image_size": 128,
        "classes": ["cat", "dog"], "preprocessing": "raw RGB pixels in [0, 255]",
        "exported": "resnet50 backbone + models/head.keras",
        "machine": machine.describe(EPYC)}


def test_cpuinfo_gives_the_model_and_the_kernel_selecting_features():
    cpu, isa = machine.parse_cpuinfo(XEON)
    assert cpu == "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz"
    assert isa == ["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16",
                   "amx_tile", "amx_bf16", "amx_int8"]  # the first CPU's flags, fixed order
    assert machine.parse_cpuinfo(EPYC)[1] == ["avx2", "fma", "avx512f", "avx512_bf16"]


def test_the_metrics_record_is_one_line_with_the_cpu_its_kernels_and_the_versions():
    found = machine.describe(XEON)
    assert found["isa"][-3:] == ["amx_tile", "amx_bf16", "amx_int8"]
    assert found["tensorflow"] == metadata.version("tensorflow")
    assert machine.record(found) == (
        "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz (avx2 fma avx512f avx512_vnni "
        "avx512_bf16 avx512_fp16 amx_tile amx_bf16 amx_int8), no accelerator; "
        + ", ".join(f"{n} {found[n]}" for n in machine.RUNTIMES if found[n] != "not installed")
        + f"; Python {found['python']}")


def test_dvc_metrics_diff_shows_the_machine_beside_the_change_when_asked(tmp_path):
    """The machine is a run fact (reports/runs/), not a metric: `dvc metrics diff` shows
    the results alone, and with `--targets metrics reports/runs` (docs/reproducibility.md)
    the machine's row beside the change it may explain."""
    sh(tmp_path, "git", "init", "-q")
    sh(tmp_path, "git", "config", "user.email", "t@example.invalid")
    sh(tmp_path, "git", "config", "user.name", "t")
    sh(tmp_path, "dvc", "init", "-q")
    (tmp_path / "dvc.yaml").write_text("metrics:\n  - metrics/evaluate/wrn.json\n")
    (tmp_path / "metrics/evaluate").mkdir(parents=True)
    (tmp_path / "reports/runs/evaluate").mkdir(parents=True)
    for cpuinfo, accuracy in ((EPYC, 0.5), (XEON, 0.45)):
        (tmp_path / "metrics/evaluate/wrn.json").write_text(json.dumps({"accuracy": accuracy}))
        (tmp_path / "reports/runs/evaluate/wrn.json").write_text(json.dumps(
            {"machine": machine.record(machine.describe(cpuinfo))}))
        if accuracy == 0.5:
            sh(tmp_path, "git", "add", "-A")
            sh(tmp_path, "git", "commit", "-qm", "epyc")
    results = sh(tmp_path, "dvc", "metrics", "diff").stdout
    assert " accuracy " in results and "machine" not in results, results
    out = sh(tmp_path, "dvc", "metrics", "diff", "--targets", "metrics", "reports/runs").stdout
    row = next(line for line in out.splitlines() if " machine " in line)
    assert "AMD EPYC 9B14 (avx2" in row and "Intel(R) Xeon(R)" in row and "amx_tile" in row
    assert any(" accuracy " in line and "-0.05" in line for line in out.splitlines()), out


def test_random_weights_are_the_cards_loud_first_line():
    text = modelcard.render(CARD, RANDOM, DATA, CHOSEN, {"macro_f1": 0.49},
                            modelcard.model_params(params(), "head"), "abc123")
    first = text.splitlines()[0]
    assert first.startswith("> **⚠ RANDOM WEIGHTS.**")
    assert "no ImageNet weights were available" in first
    assert "transfer learning did not happen in this run" in first
    assert "Accuracy 50.0 % (95 % Wilson interval 37.7–62.3 %) on 60 test images" in text
    assert "Dropped: 3 bad image(s), 1 duplicate(s)" in text
    assert "cat 200, dog 200" in text
    assert "Calibration: not measured in this run" in text
    assert "Git commit: abc123." in text
    assert "Trained on: AMD EPYC 9B14 (avx2 fma avx512f avx512_bf16), no accelerator" in text
    assert "Scored on: not recorded." in text
    assert "head is a softmax head on the frozen ResNet50 backbone's features" in text
    assert "head:\n  solver: lbfgs\n  dropout: 0.2\n" in text  # the params that made it


def test_imagenet_weights_are_said_quietly_with_their_hash_and_calibration_shown():
    evaluation = {"macro_f1": 0.49, "temperature": 1.7, "ece": 0.12, "ece_calibrated": 0.04}
    text = modelcard.render(CARD, IMAGENET, DATA, CHOSEN, evaluation,
                            modelcard.model_params(params(), "head"), "abc123",
                            {"machine": machine.record(CARD["machine"])})
    assert text.splitlines()[0] == "# Model card: head"
    assert "RANDOM" not in text
    assert "ImageNet weights (Keras' file resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5, " \
           "md5 4d473c1dd8becc155b73f8504c6f6626)" in text
    assert "expected calibration error 0.120, 0.040 after temperature scaling (T = 1.7)" in text
    assert "Scored on: AMD EPYC 9B14" in text


def test_the_card_says_when_the_temperature_did_not_help_beside_the_figures():
    hurt = {"temperature": 1.31, "ece": 0.089, "ece_calibrated": 0.106, "nll": 0.30,
            "nll_calibrated": 0.31}
    text = modelcard.render(CARD, IMAGENET, DATA, CHOSEN, hurt,
                            modelcard.model_params(params(), "head"), "abc123")
    performance = text.split("## Performance")[1].split("## Intended use")[0]
    assert ("- Calibration: expected calibration error 0.089, 0.106 after temperature scaling "
            "(T = 1.31).\n- **⚠ Calibration did not help:** Temperature scaling (T = 1.31) did "
            "not improve the test ECE or NLL (ECE 0.089 → 0.106, NLL 0.300 → 0.310): likely "
            "the 60 validation images it was fitted on are too few") in performance
    off = modelcard.render(CARD, IMAGENET, DATA, CHOSEN, {"ece": 0.2, "nll": 1.0},
                           modelcard.model_params(params(), "head"), "abc123")
    assert ("expected calibration error 0.200; no temperature fitted (evaluate.calibration: "
            "none): the raw probabilities ship.") in off
    helped = hurt | {"ece_calibrated": 0.05, "nll_calibrated": 0.2}
    assert "did not help" not in modelcard.render(CARD, IMAGENET, DATA, CHOSEN, helped,
                                                  modelcard.model_params(params(), "head"), "x")


def test_a_scratch_winner_among_random_backbones_says_its_win_is_no_finding():
    card = CARD | {"model": "wrn", "family": "wrn"}
    text = modelcard.render(card, RANDOM, DATA, CHOSEN | {"recommended": "wrn"}, {},
                            modelcard.model_params(params(), "wrn"), "abc123")
    assert text.splitlines()[0].startswith("> **⚠ RANDOM WEIGHTS in this run.**")
    assert "its win says nothing about transfer learning" in text.splitlines()[0]
    assert "wrn was trained from scratch (random initialisation, by design)" in text


def test_the_commit_is_unknown_outside_git_and_marked_when_code_changed(tmp_path):
    assert modelcard.git_commit(tmp_path) == "unknown"
    sh(tmp_path, "git", "init", "-q")
    sh(tmp_path, "git", "config", "user.email", "t@example.invalid")
    sh(tmp_path, "git", "config", "user.name", "t")
    for name in ("params.yaml", "metrics/report.json"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("a: 1\n")
    sh(tmp_path, "git", "add", "-A")
    sh(tmp_path, "git", "commit", "-qm", "x")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True,
                          text=True).stdout.strip()
    (tmp_path / "metrics/report.json").write_text("a: 2\n")  # the run's own output
    assert modelcard.git_commit(tmp_path) == head
    (tmp_path / "params.yaml").write_text("a: 2\n")
    assert modelcard.git_commit(tmp_path) == f"{head} + uncommitted changes"


def test_the_card_is_written_beside_card_json_from_the_runs_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for path, content in (("data/weights.json", RANDOM), ("reports/data/prepare.json", DATA),
                          ("metrics/evaluate/head.json", {"macro_f1": 0.5}),
                          ("reports/runs/evaluate/head.json",
                           {"machine": machine.record(machine.describe(XEON))})):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(content))
    written = modelcard.write_model_card(tmp_path / "artifacts/classifier", CARD, params(), CHOSEN)
    assert written == tmp_path / "artifacts/classifier/README.md"
    assert written.read_text().startswith("> **⚠ RANDOM WEIGHTS.**")
    assert "Scored on: Intel(R) Xeon(R) Platinum 8481C" in written.read_text()  # run facts


SHIPPED = {"resnet50": 23_602_054, "wrn": 691_029}  # the committed run's networks


def _results(seconds: dict[str, float]) -> list[ModelResult]:
    n = 20
    table = pd.DataFrame({"path": [f"i{i}.jpg" for i in range(n)], "label": ["cat"] * n,
                          "predicted": ["cat"] * n, "confidence": 0.9, "correct": True})
    return [ModelResult(name, name, {"macro_f1": 1.0},
                        {"trainable_params": params_, "train_seconds": seconds[name]}, table,
                        {"machine": machine.record(CARD["machine"]),
                         "shipped_params": SHIPPED[name],
                         "shipped_mb": round(SHIPPED[name] * 4 / 1e6, 2)})
            for name, params_ in (("resnet50", 23_000_000), ("wrn", 700_000))]


def test_the_banner_heads_the_report_with_the_weights_and_the_machine():
    report = compare(_results({"resnet50": 1.0, "wrn": 2.0}), "trainable_params", 0.05)
    md = markdown(report, DATA, {}, weights=RANDOM)
    head = md.split("**Recommended")[0]
    assert "> **⚠ The ResNet50 backbone has RANDOM weights (no ImageNet weights were " \
           "available)" in head
    assert "> Machine (every test score): AMD EPYC 9B14 (avx2 fma avx512f avx512_bf16)" in head
    page = to_html(report, DATA, {}, weights=IMAGENET)
    assert page.index("ImageNet weights (Keras&#x27; file") < page.index("Recommended: wrn")


@pytest.mark.parametrize("cost", ["shipped_params", "trainable_params"])
def test_the_counted_costs_recommend_the_same_model_whatever_the_timings(cost):
    runs = [{"resnet50": 90.0, "wrn": 99.0}, {"resnet50": 99.0, "wrn": 90.0}]
    chosen = {compare(_results(s), cost, 0.05).choice.model for s in runs}
    assert chosen == {"wrn"}  # 0.7 M trainable parameters, tied on accuracy


def test_the_default_cost_counts_what_ships_the_head_with_its_backbone():
    # The ants/bees run: the head won as "cheapest" on its 4,098 trainable
    # parameters, but it ships behind the whole backbone: as big as the fine-tuned resnet50.
    assert params().report.cost == "shipped_params"  # params.yaml's default
    n = 40
    labels = ["ants", "bees"] * (n // 2)

    def result(name: str, right: int, trainable: int, shipped: int) -> ModelResult:
        table = pd.DataFrame({"path": [f"i{i}.jpg" for i in range(n)], "label": labels,
                              "predicted": labels, "confidence": 0.9,
                              "correct": [i < right for i in range(n)]})
        return ModelResult(name, name, {}, {"trainable_params": trainable}, table,
                           {"shipped_params": shipped, "shipped_mb": round(shipped * 4 / 1e6, 2)})

    models = [result("head", 37, 4_098, 23_591_810), result("resnet50", 38, 23_538_690,
                                                             23_591_810)]
    by_trainable = compare(models, "trainable_params", 0.05)
    assert by_trainable.choice.model == "head"  # the old default's pick
    report = compare(models, "shipped_params", 0.05)
    assert report.choice.model == "resnet50"  # same size shipped: the more accurate one
    assert ("cost resnet50 23,591,810 (94.4 MB shipped) vs head 23,591,810 (94.4 MB shipped)"
            in report.choice.reason)
    md = markdown(report, DATA, {})
    assert "the cheapest in parameters of the network that ships (a head with its backbone)" \
        in md
    assert "| shipped params | shipped MB |" in md
    assert "| 23,591,810 | 94.4 |" in md


def test_measured_seconds_flip_the_tie_and_the_reason_says_why():
    runs = [{"resnet50": 90.0, "wrn": 99.0}, {"resnet50": 99.0, "wrn": 90.0}]
    reports = [compare(_results(s), "train_seconds", 0.05) for s in runs]
    assert [r.choice.model for r in reports] == ["resnet50", "wrn"]
    assert all("measured seconds: depends on the machine and its load" in r.choice.reason
               for r in reports)


def test_equal_costs_go_by_name_whatever_the_order():
    results = _results({"resnet50": 5.0, "wrn": 5.0})
    for order in (results, results[::-1]):
        assert compare(order, "train_seconds", 0.05).choice.model == "resnet50"
