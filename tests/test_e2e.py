"""End to end: the project copied into a fresh git repository, driven with dvc as a user would.

A tiny profile (tests/helpers.py) keeps a full `dvc repro` to a minute or two on a 2-core
CPU. This module: what a run writes, what each kind of change re-runs (your own images
among them), a second clone that pulls the run, the gate. A killed training and queued
experiments are in test_e2e_workflows.py (another project, so that pytest-xdist runs the
two modules side by side).
"""

from __future__ import annotations

import csv
import json
import re
import typing

import numpy as np
import pytest
import yaml
from helpers import (
    ALWAYS,
    ALWAYS_STATUS,
    CHECKS,
    EVALUATE,
    MODELS,
    NOISE,
    ROOT,
    STDERR,
    commit,
    e2e_project,
    exp_run,
    project_state,
    repeated,
    repo_params,
    restore_project,
    sh,
    shell,
    stage_outputs,
    stages_run,
    workspace,
)
from PIL import Image

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """The project after its first `dvc repro`, and its state then."""
    repo = e2e_project(tmp_path_factory.mktemp("project"))
    return repo, project_state(repo)


@pytest.fixture
def project(first_run):
    """The shared project as its first run left it, whatever the tests before changed
    (params.yaml, outputs, commits) or left when they failed: one failure stays one."""
    repo, state = first_run
    restore_project(repo, state)
    return repo


def test_repro_runs_every_stage_quietly_and_writes_outputs(project):
    log = (project / "first_repro.log").read_text()
    expected = {"params", "sample", "source", "prepare", "validate", "weights", "scratch_weights",
                "features", "train_head",
                "finetune@resnet50", "scratch@wrn", "export", "report",
                *EVALUATE}
    assert stages_run(log) == expected
    # Quiet: each stage says its few lines once, no library notice, on stdout or stderr.
    assert not NOISE.search(log), NOISE.search(log).group(0)
    said = stage_outputs(log.partition(STDERR)[0])
    assert set(said) == expected
    assert {name: repeated(lines) for name, lines in said.items() if repeated(lines)} == {}
    report = said["report"]  # the recommendation and where the report is, not the report
    assert len(report) == 2 and "reports/report.html" in report[1], report
    assert len(list((project / "data/sample").rglob("*.jpg"))) == 30
    for name in MODELS:
        card = json.loads((project / f"models/{name}.json").read_text())
        assert card["classes"] == ["circle", "square", "star", "stripes", "triangle"]
        scores = json.loads((project / f"metrics/evaluate/{name}.json").read_text())
        assert 0 <= scores["accuracy"] <= 1
    features = json.loads((project / "reports/runs/features.json").read_text())  # run facts
    assert features["weights"] == "random" and features["machine"]
    report = json.loads((project / "metrics/report.json").read_text())
    assert report["recommended"] in MODELS
    assert (project / "artifacts/classifier/model.keras").is_file()
    export = json.loads((project / "reports/export.json").read_text())
    assert export["model"] == report["recommended"]
    # The tiny profile exports model.keras alone (every format: the test after the changes).
    assert {f: r["status"] for f, r in export["formats"].items()} == {"keras": "ok"} | {
        f: "not requested" for f in ("saved_model", "saved_model_bytes", "tflite",
                                     "tflite_int8", "onnx")}
    assert "<h2>Formats</h2>" in (project / "reports/report.html").read_text()
    assert "Which model to ship" in (project / "reports/report.html").read_text()


def _shown(project) -> dict:
    """`dvc plots show --json`: each chart and picture of the plots page, without errors."""
    shown = json.loads(sh(project, "dvc", "plots", "show", "--json").stdout)
    assert not shown.get("errors"), shown.get("errors")
    return shown["data"]


def test_every_declared_plot_exists_and_is_not_empty(project):
    """What `dvc plots show` draws: the top-level charts and each stage's plots."""
    shown = _shown(project)
    pictures = [name for name, p in shown.items() if p[0]["type"] == "image"]
    charts = {name: p[0]["content"] for name, p in shown.items() if p[0]["type"] == "vega"}
    for model in MODELS:
        for name in ("confusion.csv", "per_class.csv", "reliability.csv"):
            assert f"plots/{model}/{name}" in charts, (model, name)
        assert {f"plots/{model}/mistakes.png", f"plots/{model}/confused_pairs.png"} <= set(
            pictures)
    # 4 curves, 3 per model; the data's 2 and the report's, 2 per model, augmented batches.
    assert len(charts) == 4 + 3 * len(MODELS)
    assert len(pictures) == 3 + 2 * len(MODELS) + len(MODELS) - 1
    for name in pictures:
        assert (project / name).stat().st_size > 0, name
    for name, spec in charts.items():
        assert spec["data"]["values"], f"{name} has no rows"
    curves = charts["Validation accuracy of every model (per epoch)"]["data"]["values"]
    assert {row["model"] for row in curves} == set(MODELS)
    sh(project, "dvc", "plots", "show", "-o", "page")
    html = (project / "page" / "index.html").read_text()
    assert "cdn.jsdelivr" not in html and "vega-embed" in html  # inlined: renders offline


def metric_columns(project) -> dict[str, object]:
    """Every metric column of `dvc exp show` (the workspace's row): ``file:key`` (a nested
    key dotted, as DVC names its column) to value."""
    shown = json.loads(sh(project, "dvc", "exp", "show", "--json").stdout)
    out = {}

    def walk(node: dict, name: str) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{name}{key}.")
            else:
                out[f"{name}{key}"] = value
    for path, found in shown[0]["data"]["metrics"].items():
        walk(found["data"], f"{path}:")
    return out


def test_metrics_are_few_results_as_numbers(project):
    """`dvc exp show` compares runs on a few results, whatever the number of classes: each
    a number (the recommended model's name aside), no timing, size or machine line (the
    run facts are in reports/runs/, docs/reproducibility.md). The full count (every export
    format) is checked after the export test below."""
    columns = metric_columns(project)
    # 10 for the data, the validation and the report; 9 per model (1 training, 8
    # evaluation); 1 per exported format (the tiny profile exports model.keras alone).
    assert len(columns) == 10 + 9 * len(MODELS) + 1, sorted(columns)
    words = {k: v for k, v in columns.items() if not isinstance(v, int | float)}
    assert words == {"metrics/report.json:recommended": columns[
        "metrics/report.json:recommended"]}, words
    assert not [k for k in columns if re.search(r"second|latency|size|machine|runtime|"
                                                r"distribute|shipped", k)], sorted(columns)


def test_second_repro_runs_only_the_always_changed_checks(project):
    again = sh(project, "dvc", "repro")
    assert stages_run(again.stdout) == ALWAYS
    status = json.loads(sh(project, "dvc", "status", "--json").stdout)
    assert status == ALWAYS_STATUS, status


def test_same_params_give_the_same_metrics_and_an_empty_metrics_diff(project):
    """Training and evaluation re-run on the same commit: the same results, so `dvc metrics
    diff` prints nothing (its timings, which moved, are run facts and no metrics)."""
    files = ["metrics/train/head.json", "metrics/evaluate/head.json"]
    before = {name: (project / name).read_text() for name in files}
    sh(project, "dvc", "repro", "--force", "--single-item", "train_head")
    sh(project, "dvc", "repro", "--force", "--single-item", "evaluate_head")
    assert {name: (project / name).read_text() for name in files} == before
    assert sh(project, "dvc", "metrics", "diff").stdout.strip() == ""


# Each change runs to a cheap target; `dvc status` then names every other stage that reads
# what changed (its params, or an output that the run replaced): what `dvc repro` would run
# next. The fine-tune's evaluation reads the fine-tune's model alone: the README tour runs
# that step for real (a head param: the head alone, then what it feeds), at the end.
@pytest.mark.parametrize(("settings", "target", "ran", "stale"), [
    # The backbone: features and all that starts from them; never the scratch network.
    # (The image size, not the batch size: a batch size can give byte-identical features
    # on some CPUs, and DVC then rightly skips the head.)
    (["backbone.image_size=40"], "evaluate_head", {"features", "train_head", "evaluate_head"},
     {"finetune@resnet50", "export", "report"}),
    # A fine-tune entry and a scratch entry: those models, their evaluations, the report.
    (["finetune.resnet50.learning_rate=0.0001", "scratch.wrn.dropout=0.1"], "scratch@wrn",
     {"scratch@wrn"}, {"finetune@resnet50", "evaluate_scratch@wrn", "export", "report"}),
])
def test_a_change_reaches_exactly_the_stages_that_read_it(project, settings, target, ran,
                                                          stale):
    done, changed = exp_run(project, *settings, target=target)
    assert (done - CHECKS, changed) == (ran, stale)


def test_own_image_folder_as_data_source(project, tmp_path):
    """A folder of the user's own photos as data.source (a space in its path, a class name
    that is not ASCII, images of several sizes, a hidden file): `dvc exp run` of the head's
    evaluation runs every stage from prepare to it on those images, and `dvc status` then
    names every other stage after the data as changed, so that `dvc repro` re-runs it. (The
    stages past the head read the images as the features stage does and run in the other
    tests; run here too, they were four fifths of this test's time.)"""
    own = tmp_path / "my photos"
    rng = np.random.default_rng(0)
    for label in ("cats", "dogs", "ñandú birds"):
        (own / label).mkdir(parents=True)
        for i in range(6):
            pixels = rng.integers(0, 255, (24 + i, 30, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(own / label / f"img {i}.png")
    (own / ".DS_Store").write_bytes(b"\0")
    assert json.loads(sh(project, "dvc", "status", "--json").stdout) == ALWAYS_STATUS
    run = sh(project, "dvc", "exp", "run", "evaluate_head", "-S", f"data.source='{own}'")
    assert stages_run(run.stdout) - CHECKS == {
        "prepare", "validate", "features", "train_head", "evaluate_head"}
    card = json.loads((project / "models/head.json").read_text())
    assert card["classes"] == ["cats", "dogs", "ñandú birds"]
    summary = json.loads((project / "reports/data/prepare.json").read_text())
    assert summary["skipped"] == {"hidden": 1}
    with (project / "reports/predictions/head.csv").open(encoding="utf-8") as rows:
        tested = list(csv.DictReader(rows))
    assert len(tested) == summary["splits"]["test"]  # the test images of the own folder
    assert all((own / row["path"]).is_file() for row in tested), tested
    # A data change makes everything after the demo data stale, not the head alone.
    status = json.loads(sh(project, "dvc", "status", "--json").stdout)
    assert {stage for stage, why in status.items() if why != ["always changed"]} == {
        "finetune@resnet50", "scratch@wrn", "evaluate_finetune@resnet50",
        "evaluate_scratch@wrn", "export", "report"}, status


def test_every_export_format_is_converted_and_checked(project):
    """All the formats the code knows, through dvc: only export and the report re-run, each
    format agrees with the Keras model, and its one metric (its agreement) keeps `dvc exp
    show` within 45 metric columns; sizes and timings are its run facts."""
    from pipeline.core.params import ExportFormat

    every = list(typing.get_args(ExportFormat))
    assert set(every) == set(repo_params()["export"]["formats"])  # the shipped params: all
    run = sh(project, "dvc", "exp", "run", "-S", f"export.formats=[{','.join(every)}]")
    try:
        assert stages_run(run.stdout) - CHECKS == {"export", "report"}
        # The converters' notices (TensorFlow's deprecations through tf2onnx, the TFLite
        # converter's and interpreter's C++ lines) are in the stage's log, not its output,
        # and no line of it comes twice (a second root handler once printed each again).
        assert not NOISE.search(run.stdout + run.stderr), NOISE.search(
            run.stdout + run.stderr).group(0)
        export = stage_outputs(run.stdout)["export"]
        assert not repeated(export + run.stderr.splitlines()), run.stdout + run.stderr
        kept = (project / ".cache/logs/export.log").read_text()
        assert "is deprecated" in kept and "fully_quantize" in kept, kept
        export = json.loads((project / "reports/export.json").read_text())
        formats = export["formats"]
        assert {f: r["status"] for f, r in formats.items() if f != "tflite_int8"} == {
            f: "ok" for f in ("keras", "saved_model", "saved_model_bytes", "tflite", "onnx")}
        # int8 is measured too, and says so when it loses more than a point (the tiny
        # profile's random 32 px ResNet does: one test image is several points).
        int8 = formats["tflite_int8"]
        assert int8["status"] == ("ok" if int8["accuracy_change"] >= -0.01 else "below target")
        assert {p.name for p in (project / "artifacts/classifier").iterdir()} >= {
            "model.keras", "saved_model", "model.tflite", "model_int8.tflite", "model.onnx"}
        page = (project / "reports/report.html").read_text()
        assert "<h2>Formats</h2>" in page and "not requested" not in page  # the new export
        columns = metric_columns(project)
        # The six formats (keras and saved_model_bytes with the four asked for): 43.
        assert len(columns) == 10 + 9 * len(MODELS) + len(formats) <= 45, sorted(columns)
        assert {k for k in columns if k.startswith("metrics/export.json")} == {
            f"metrics/export.json:{f}_agreement" for f in formats}
        facts = json.loads((project / "reports/runs/export.json").read_text())["formats"]
        assert all(f["size_bytes"] > 0 and f["latency_ms_p50"] > 0 for f in facts.values())
    finally:
        sh(project, "git", "checkout", "--", ".")
        sh(project, "dvc", "checkout", "--force")


def test_the_gate_passes_the_committed_run_and_refuses_drift(project):
    ok = sh(project, "python", "-m", "pipeline.gate")
    assert "## Quality gate: PASSED" in ok.stdout
    params = (project / "params.yaml").read_text()
    (project / "params.yaml").write_text(params.replace("dropout: 0.2", "dropout: 0.25", 1))
    try:
        drift = sh(project, "python", "-m", "pipeline.gate", check=False)
    finally:
        (project / "params.yaml").write_text(params)
    assert drift.returncode == 1
    assert "- train_head: params head in params.yaml" in drift.stdout
    assert "gate failed: dvc.lock matches params.yaml, the code and the outputs" in drift.stderr
    assert "gate: run `dvc repro`" in drift.stderr
    # A committed metric edited by hand (the first false pass): its hash in dvc.lock
    # no longer matches, and DVC's status says so by file.
    report = project / "metrics/report.json"
    committed = report.read_text()
    report.write_text(committed.replace('"accuracy": ', '"accuracy": 0.99, "was": ', 1))
    try:
        edited = sh(project, "python", "-m", "pipeline.gate", check=False)
    finally:
        report.write_text(committed)
    assert edited.returncode == 1, edited.stdout + edited.stderr
    assert "- report: output metrics/report.json modified" in edited.stdout


def _bomb(width: int = 30) -> str:
    """Three lines of nested YAML aliases: 30**3 values once expanded."""
    items = ", ".join(["x"] * width)
    return (f"lol1: &a1 [{items}]\n" + f"lol2: &a2 [{', '.join(['*a1'] * width)}]\n"
            + f"lol3: [{', '.join(['*a2'] * width)}]\n")


def test_a_refused_run_changes_nothing(project):
    """An invalid params.yaml, through `dvc repro` (whole, and of one target) and `dvc exp
    run -S`: the run exits non-zero naming the key, and every file of the workspace (the
    outputs DVC would remove first, dvc.lock, the committed metrics) keeps its bytes. The
    params stage runs first and alone: every stage depends on it (tests/test_deps.py).
    `dvc exp run -S` itself writes its value into params.yaml before any stage runs (and
    leaves it there, as after a run that passes): that file alone is DVC's doing."""
    params = (project / "params.yaml").read_text()
    # The head's lines, whatever comment follows their value.
    dropout = re.search(r"^  dropout: 0\.2\b.*\n", params, re.M).group()
    refused = [  # (params.yaml, command, what the output says)
        (re.sub(r"^(  learning_rate:) 0\.001\b", r"\1 .inf", params.replace(
            "seed: 42", "seed: 4.5"), count=1, flags=re.M),
         ["dvc", "repro"], ["seed: Input should be a valid integer (got 4.5)",
                            "head.learning_rate: Input should be a finite number (got inf)"]),
        (params.replace("source: data/sample", "source: no such photos"),
         ["dvc", "repro", "train_head"], ["data.source: 'no such photos' does not exist"]),
        (params, ["dvc", "exp", "run", "-S", "head.batch_size=1e30", "-S", "+head.dropuot=0.1"],
         ["head.batch_size: Input should be a valid integer (got 1e+30)",
          "head.dropuot: unknown key, did you mean head.dropout?"]),
        (params.replace(dropout, dropout + dropout.replace("0.2", "0.5"), 1), ["dvc", "repro"],
         ['found duplicate key "dropout"']),  # DVC's own ruamel refuses it, before any stage
        (_bomb() + params, ["dvc", "repro"], ["its YAML aliases expand to",
                                              "more than the 10,000 a params file may hold"]),
    ]
    try:
        for text, command, says in refused:
            (project / "params.yaml").write_text(text)
            before = workspace(project)
            run = sh(project, *command, check=False)
            output = run.stdout + run.stderr
            assert run.returncode != 0, output
            assert all(line in output for line in says), (command, says, output[-3000:])
            assert stages_run(run.stdout) <= {"params"}, run.stdout
            after = workspace(project)
            if "exp" in command:  # -S wrote params.yaml: the value it was asked to write
                assert "batch_size: 1e+30" in (project / "params.yaml").read_text()
                del before["params.yaml"], after["params.yaml"]
            assert after == before, (command, {k for k in before.keys() | after.keys()
                                               if before.get(k) != after.get(k)})
    finally:
        (project / "params.yaml").write_text(params)
    assert json.loads(sh(project, "dvc", "status", "--json").stdout) == ALWAYS_STATUS


def test_a_model_is_one_entry_in_params_yaml(project):
    """A third scratch entry in params.yaml, nothing else: `dvc repro` trains and evaluates
    it, and the report and the plots show it, dvc.yaml untouched. Removing it again: the
    next run neither fails on what it left nor shows it."""
    dvc_yaml = (project / "dvc.yaml").read_bytes()
    params = (project / "params.yaml").read_text()
    raw = yaml.safe_load(params)
    raw["scratch"]["wrn_b"] = raw["scratch"]["wrn"] | {"dropout": 0.1}
    (project / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    try:
        added = stages_run(sh(project, "dvc", "repro").stdout)
        assert {"scratch@wrn_b", "evaluate_scratch@wrn_b", "report"} <= added
        assert not added & {"train_head", "finetune@resnet50", "scratch@wrn", *EVALUATE}
        scores = json.loads((project / "metrics/evaluate/wrn_b.json").read_text())
        assert 0 <= scores["accuracy"] <= 1
        assert "\n| wrn_b" in (project / "reports/report.md").read_text()  # its table row
        shown = _shown(project)
        assert "plots/wrn_b/confusion.csv" in shown and "plots/wrn_b/mistakes.png" in shown
        for title in ("Validation accuracy of every model (per epoch)",
                      "Learning rate of the scheduled models (per epoch)"):
            rows = shown[title][0]["content"]["data"]["values"]
            assert "wrn_b" in {row["model"] for row in rows}, title
        assert (project / "dvc.yaml").read_bytes() == dvc_yaml

        (project / "params.yaml").write_text(params)
        removed = stages_run(sh(project, "dvc", "repro").stdout)
        assert "report" in removed and not any("wrn_b" in s for s in removed)
        assert "wrn_b" not in (project / "reports/report.md").read_text()
        assert "wrn_b" not in json.dumps(_shown(project))
        status = json.loads(sh(project, "dvc", "status", "--json").stdout)
        assert status == ALWAYS_STATUS, status
    finally:
        (project / "params.yaml").write_text(params)
        sh(project, "git", "checkout", "--", ".")
        sh(project, "dvc", "checkout", "--force")



def test_a_scratch_weights_file_replaced_in_place_re_runs_its_entry(project):
    """scratch.NAME.weights names a file; DVC tracks its contents, not just its name: a
    file replaced under the same name re-runs that entry (and what reads it) alone."""
    params = (project / "params.yaml").read_text()
    # Two weights files for the entry's network: the trained one, and one nudged.
    sh(project, "python", "-c",
       "import keras, numpy as np, pipeline.models\n"
       "m = keras.saving.load_model('models/wrn.keras', compile=False)\n"
       "m.save_weights('a.weights.h5')\n"
       "w = m.layers[-1].kernel; w.assign(w.numpy() + 0.01)\n"
       "m.save_weights('b.weights.h5')\n")
    (project / "start.weights.h5").write_bytes((project / "a.weights.h5").read_bytes())
    raw = yaml.safe_load(params)
    raw["scratch"]["wrn"]["weights"] = "start.weights.h5"
    (project / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    try:
        first = stages_run(sh(project, "dvc", "repro", "scratch@wrn").stdout)
        assert first - CHECKS == {"scratch@wrn"}
        record = json.loads((project / "data/scratch_weights/wrn.json").read_text())
        assert record["source"] == "file" and len(record["sha256"]) == 64
        assert "scratch@wrn" not in _changed(project)

        (project / "start.weights.h5").write_bytes((project / "b.weights.h5").read_bytes())
        assert "scratch@wrn" not in _changed(project)  # not until scratch_weights looks
        # Forced alone (-s skips the hashing), it refuses a file its record does not hold.
        alone = sh(project, "dvc", "repro", "--force", "--single-item", "scratch@wrn",
                   check=False)
        assert alone.returncode != 0
        assert "changed since the scratch_weights stage" in alone.stdout + alone.stderr
        sh(project, "dvc", "repro", "scratch_weights")
        changed = _changed(project)
        assert "scratch@wrn" in changed, changed
        assert not {"train_head", "finetune@resnet50", "features"} & set(changed), changed

        # A file no network loads, params unchanged: the scratch_weights check refuses it
        # (on every repro), before scratch@wrn could remove the model it has.
        (project / "start.weights.h5").write_bytes(b"\0" * 100)
        before = workspace(project)
        junk = sh(project, "dvc", "repro", check=False)
        assert junk.returncode != 0
        assert ("error: scratch.wrn.weights: 'start.weights.h5' is not a readable HDF5 weights "
                "file" in junk.stdout + junk.stderr), junk.stdout + junk.stderr
        assert "scratch@wrn" not in stages_run(junk.stdout)
        assert workspace(project) == before
    finally:
        (project / "params.yaml").write_text(params)
        for name in ("a", "b", "start"):
            (project / f"{name}.weights.h5").unlink(missing_ok=True)
        sh(project, "git", "checkout", "--", ".")
        sh(project, "dvc", "checkout", "--force")


def _changed(project) -> dict:
    """`dvc status` as {stage: what changed}, without the always-changed checks."""
    status = json.loads(sh(project, "dvc", "status", "--json").stdout)
    return {k: v for k, v in status.items() if v != ["always changed"]}


def test_the_gate_passes_a_fresh_clone_without_dvc_cache_and_sees_a_changed_card(
        project, tmp_path):
    """CI runs the gate on a clone with no DVC cache: export and report depend on the
    ``models`` folder, whose .keras files are then missing. That is missing data, not
    drift; a card (in git) under it that differs from the commit still is drift."""
    assert sh(project, "python", "-m", "pipeline.gate", check=False).returncode == 0
    sh(project, "git", "add", "-A")
    sh(project, "git", "commit", "-qm", "the run", "--allow-empty")
    clone = tmp_path / "clone"
    sh(tmp_path, "git", "clone", "-q", str(project), str(clone))
    assert not (clone / "models" / "head.keras").exists()  # no cache, no pull
    ok = sh(clone, "python", "-m", "pipeline.gate", check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "## Quality gate: PASSED" in ok.stdout
    card = clone / "models" / "head.json"
    card.write_text(card.read_text().replace('"family": "head"', '"family": "changed"', 1))
    drift = sh(clone, "python", "-m", "pipeline.gate", check=False)
    assert drift.returncode == 1
    assert "export: models modified" in drift.stdout, drift.stdout


def test_a_second_clone_pulls_the_shared_cache_and_recomputes_nothing(project, tmp_path):
    """The team workflow: a DVC remote (a local folder here, s3://... for a team), the
    user's own images tracked with `dvc add`; a fresh clone pulls instead of recomputing."""
    photos = project / "photos"
    for label in ("a", "b"):
        (photos / label).mkdir(parents=True)
        Image.new("RGB", (8, 8), label == "a" and "red" or "blue").save(photos / label / "1.png")
    remote = tmp_path / "remote"
    sh(project, "dvc", "add", "photos")
    sh(project, "dvc", "remote", "add", "-d", "storage", str(remote))
    commit(project, "photos and a shared cache")
    sh(project, "dvc", "push")
    clone = tmp_path / "clone"
    sh(tmp_path, "git", "clone", "-q", str(project), str(clone))
    sh(clone, "dvc", "pull")
    assert (clone / "photos/a/1.png").read_bytes() == (photos / "a/1.png").read_bytes()
    again = sh(clone, "dvc", "repro")
    assert stages_run(again.stdout) == ALWAYS  # the always-changed checks
    assert json.loads(sh(clone, "dvc", "metrics", "diff", "--json").stdout or "{}") == {}
    assert json.loads(sh(clone, "dvc", "status", "--json").stdout) == ALWAYS_STATUS


def tour(readme: str) -> list[str]:
    """The commands of the README's five-minute tour, in order, as a shell reads them:
    each indented code line of the section, a line ending in ``\\`` joined to the next."""
    section = readme.split("\n## A five-minute tour\n", 1)[1].split("\n## ", 1)[0]
    commands, current = [], ""
    for line in section.splitlines():
        if not line.startswith("    "):
            continue
        current += line.strip() + "\n"
        if not line.endswith("\\"):
            commands.append(current.strip())
            current = ""
    return commands


def test_the_readme_tour_runs_as_written_and_ends_in_a_state_the_gate_passes(project):
    """Every command of the README's tour, literally and in its order, in a project that
    ran once: an experiment on the head alone, the comparisons, then `dvc exp apply`,
    `dvc repro` of what the experiment left stale, the gate, and a commit. Each command
    exits 0; `-S` changes the one line of params.yaml; the repro after the apply runs
    exactly what the head feeds; the gate passes; the commit leaves a clean workspace.
    The README losing a step of that loop fails it too."""
    commands = tour((ROOT / "README.md").read_text(encoding="utf-8"))
    assert tour((ROOT / "docs/getting-started.md").read_text(encoding="utf-8")) == commands
    kinds = [next((k for k in ("dvc exp run", "dvc exp apply", "dvc repro",
                               "python -m pipeline.gate", "git commit") if c.startswith(k)),
                  None) for c in commands]
    assert [k for k in kinds if k] == ["dvc repro", "dvc exp run", "dvc exp apply",
                                       "dvc repro", "python -m pipeline.gate", "git commit"], (
        commands)
    start = sh(project, "git", "rev-parse", "HEAD").stdout.strip()
    applied = False
    try:
        for command, kind in zip(commands, kinds, strict=True):
            done = shell(project, command)
            if kind == "dvc repro":  # the first: nothing to do; after the apply: what is stale
                stale = ({"finetune@resnet50", "evaluate_finetune@resnet50", "export", "report"}
                         if applied else set())
                assert stages_run(done.stdout) == ALWAYS | stale, (command, done.stdout)
            elif kind == "dvc exp run":  # the head alone, and one line of params.yaml
                assert stages_run(done.stdout) - CHECKS == {"train_head", "evaluate_head"}
                diff = sh(project, "git", "diff", "-U0", "params.yaml").stdout
                changed = [line.split("#")[0].rstrip() for line in diff.splitlines()
                           if line[:1] in "+-" and line[:3] not in ("+++", "---")]
                assert changed == ["-  dropout: 0.2", "+  dropout: 0.1"], diff
            elif kind == "dvc exp apply":
                applied = True
            elif kind == "python -m pipeline.gate":
                assert "## Quality gate: PASSED" in done.stdout, done.stdout
        assert (project / "diff/index.html").is_file()  # dvc plots diff's page: ignored
        assert sh(project, "git", "status", "--porcelain").stdout == ""
        assert json.loads(sh(project, "dvc", "status", "--json").stdout) == ALWAYS_STATUS
        assert yaml.safe_load((project / "params.yaml").read_text())["head"]["dropout"] == 0.1
    finally:
        sh(project, "git", "reset", "-q", "--hard", start)
        sh(project, "dvc", "checkout", "--force")
