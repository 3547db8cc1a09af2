"""dvc.yaml's plots with the project's templates (.dvc/plots): DVC fills them without
error, every model of params.yaml has its charts without a line of dvc.yaml naming it,
what the charts colour by is what the data holds (the model, the split, the measure), and
`dvc plots diff` gives each revision colours of its own."""

from __future__ import annotations

import json
import operator
import re
import shutil

import pytest
import yaml
from helpers import ROOT, sh
from PIL import Image

from pipeline.evaluation.curves import curve_tables, write_curve_tables

EXTRA = "wrn_b"  # a scratch entry that params.yaml gains in the copy, and dvc.yaml never names


def _png(path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4)).save(path)


def _curves(live, model: str, scheduled: bool) -> None:
    folder = live / model / "plots" / "metrics"
    for split in ("train", "eval"):
        (folder / split).mkdir(parents=True, exist_ok=True)
        for measure in ("loss", "accuracy"):
            (folder / split / f"{measure}.tsv").write_text(f"step\t{measure}\n0\t0.5\n1\t0.25\n")
    if scheduled:
        (folder / "train" / "learning_rate.tsv").write_text(
            "step\tlearning_rate\n0\t0.001\n1\t0.0005\n")


@pytest.fixture(scope="module")
def shown(tmp_path_factory):
    """`dvc plots show --json` of a copy of the project whose params.yaml has one more
    scratch entry, with a few made-up rows in every file its plots read."""
    tmp = tmp_path_factory.mktemp("plots")
    sh(tmp, "git", "init", "-q")
    sh(tmp, "dvc", "init", "-q")
    for name in ("dvc.yaml", ".dvc/config", ".dvc/plots", "reports/templates"):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        copy(ROOT / name, tmp / name)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["scratch"][EXTRA] = params["scratch"]["wrn"]
    (tmp / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    trained = [*params["finetune"], *params["scratch"]]
    models = ["head", *trained]
    for model in models:
        plots = tmp / "plots" / model
        plots.mkdir(parents=True)
        (plots / "per_class.csv").write_text(
            "bar,value,class,measure\na · precision,0.5,a,precision\n"
            "a · recall,0.25,a,recall\nb · precision,1.0,b,precision\n")
        (plots / "confusion.csv").write_text("actual,predicted\na,a\nb,a\n")
        (plots / "reliability.csv").write_text(
            "confidence,accuracy_before,accuracy_after,perfect\n0.3,0.2,0.25,0.3\n0.7,0.6,0.7,0.7\n")
        for picture in ("mistakes", "confused_pairs", "reliability"):
            _png(plots / f"{picture}.png")
        if model != "head":
            _png(plots / "augmented.png")
        _curves(tmp / "dvclive", model, scheduled=model != "head")
    write_curve_tables(models, tmp / "reports/figures", live=tmp / "dvclive")
    for picture in ("plots/data/samples.png", "plots/data/left_out.png",
                    "reports/figures/accuracy_vs_compute.png"):
        _png(tmp / picture)
    out = json.loads(sh(tmp, "dvc", "plots", "show", "--json").stdout)
    assert not out.get("errors"), out.get("errors")
    sh(tmp, "dvc", "plots", "show", "-o", "page")
    return tmp, models, out


def _vega(shown) -> dict[str, dict]:
    """Each chart by the title it shows (a stage's plot is keyed by its file in the JSON)."""
    specs = [p[0]["content"] for p in shown["data"].values() if p[0].get("type") == "vega"]
    # DVC's own templates give the title as {"text": ...}, the project's as a string.
    return {s["title"]["text"] if isinstance(s["title"], dict) else s["title"]: s
            for s in specs}


def test_a_new_params_entry_has_every_chart_and_picture(shown):
    tmp, models, out = shown
    titles = set(_vega(out))
    for model in models:
        assert f"{model} confusion (normalised per true class)" in titles
        assert f"{model} precision and recall per class" in titles
        assert (f"{model} reliability (accuracy per confidence bin, before and after "
                "temperature scaling)") in titles
        for picture in ("mistakes", "confused_pairs"):
            assert f"plots/{model}/{picture}.png" in out["data"], (model, picture)
    assert f"plots/{EXTRA}/augmented.png" in out["data"]
    assert EXTRA not in (ROOT / "dvc.yaml").read_text()
    html = (tmp / "page" / "index.html").read_text()
    assert "cdn.jsdelivr" not in html and "vega-embed" in html  # inlined: renders offline
    assert f"{EXTRA} confusion" in html


def test_curves_colour_by_model_and_panel_by_model(shown):
    _, models, out = shown
    specs = _vega(out)
    every = specs["Validation accuracy of every model (per epoch)"]
    # One revision (plots show): the colour is the model's name, as the legend shows it.
    assert {c for c, _ in _colours(every)} == set(models)
    rows = every["data"]["values"]
    assert {d["model"] for d in rows} == set(models)
    assert "datum.split === 'validation'" in json.dumps(every["transform"])

    rate = specs["Learning rate of the scheduled models (per epoch)"]
    assert {d["model"] for d in rate["data"]["values"]} == set(models) - {"head"}

    for title in ("Loss, train vs validation (one panel per model)",
                  "Accuracy, train vs validation (one panel per model)"):
        panels = specs[title]
        assert panels["facet"]["field"] == "model"
        assert {c for c, _ in _colours(panels)} == {"train", "validation"}
        assert {(d["model"], d["split"]) for d in panels["data"]["values"]} == {
            (m, s) for m in models for s in ("train", "validation")}


def test_bars_and_reliability_colour_by_measure(shown):
    specs = _vega(shown[2])
    bars = specs["head precision and recall per class"]
    assert bars["encoding"]["color"]["field"] == "series"
    assert {d["measure"] for d in bars["data"]["values"]} == {"precision", "recall"}
    reliability = next(s for t, s in specs.items() if t.startswith("wrn reliability"))
    fold = reliability["transform"][0]
    assert fold["fold"] == ["accuracy_before", "accuracy_after", "perfect"]
    assert {c for c, _ in _colours(reliability)} == set(fold["fold"])


@pytest.fixture(scope="module")
def diffed(shown):
    """`dvc plots diff HEAD --json` after the curves, the reliability tables and the bars
    changed in the workspace of the repository above."""
    tmp, models, _ = shown
    sh(tmp, "git", "add", "-A")
    sh(tmp, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")
    for tsv in (tmp / "dvclive").rglob("*.tsv"):
        tsv.write_text(tsv.read_text().replace("0.25", "0.375"))
    write_curve_tables(models, tmp / "reports/figures", live=tmp / "dvclive")
    for model in models:
        for name in ("reliability.csv", "per_class.csv"):
            path = tmp / "plots" / model / name
            path.write_text(path.read_text().replace("0.25", "0.125"))
    out = json.loads(sh(tmp, "dvc", "plots", "diff", "HEAD", "--json").stdout)
    assert not out.get("errors"), out.get("errors")
    return out


_TOKEN = re.compile(r"\s*(?:(datum\.\w+)|'((?:[^'\\]|\\.)*)'|(===|!==|==|!=|\|\||&&|[?:+()]))")


_BINARY = {"||": lambda a, b: a or b, "&&": lambda a, b: a and b, "+": lambda a, b: f"{a}{b}",
           "==": operator.eq, "===": operator.eq, "!=": operator.ne, "!==": operator.ne}


def _evaluate(expression: str, datum: dict):
    """A Vega expression of the templates' kind (``datum.f``, 'strings', ===, !==, ||, &&,
    +, ?:, parentheses) on one row: what the chart computes for it."""
    tokens, at = [], 0
    while at < len(expression.rstrip()):
        found = _TOKEN.match(expression, at)
        assert found, f"cannot read {expression[at:]!r} in {expression!r}"
        field, text, op = found.groups()
        tokens.append(("value", datum.get(field[6:])) if field else
                      ("value", text.replace("\\'", "'")) if text is not None else ("op", op))
        at = found.end()

    def parse(level: int = 0):
        binary = [("||",), ("&&",), ("===", "!==", "==", "!="), ("+",)]
        if level == len(binary):
            kind, value = tokens.pop(0)
            if value == "(":
                inner = parse()
                assert tokens.pop(0) == ("op", ")")
                return inner
            assert kind == "value", (kind, value)
            return value
        left = parse(level + 1)
        while tokens and tokens[0][0] == "op" and tokens[0][1] in binary[level]:
            op = tokens.pop(0)[1]
            right = parse(level + 1)
            left = _BINARY[op](left, right)
        if level == 0 and tokens and tokens[0] == ("op", "?"):
            tokens.pop(0)
            yes = parse()
            assert tokens.pop(0) == ("op", ":")
            no = parse()
            return yes if left else no
        return left

    value = parse()
    assert not tokens, tokens
    return value


def _colours(spec: dict) -> list[tuple[str, str]]:
    """(colour, revision) of each row of a chart, through its fold and calculate steps."""
    inner = spec.get("spec", spec)
    rows = spec["data"]["values"]
    for step in [*spec.get("transform", []), *inner.get("transform", [])]:
        if "fold" in step:
            key, value = step.get("as", ["key", "value"])
            rows = [r | {key: f, value: r.get(f)} for r in rows for f in step["fold"]]
        elif "calculate" in step:
            rows = [r | {step["as"]: _evaluate(step["calculate"], r)} for r in rows]
    field = inner["encoding"]["color"]["field"]
    return [(str(r[field]), r["rev"]) for r in rows]


def test_a_diff_gives_each_revision_colours_of_its_own(diffed):
    """Two lines that differ only by revision never share a colour, and the legend names
    the revision ('head @ HEAD'); a confusion matrix has a panel per revision. The
    reliability diagram's diagonal is the same line in every revision."""
    for title, spec in _vega(diffed).items():
        revisions = {r["rev"] for r in spec["data"]["values"]}
        assert revisions == {"workspace", "HEAD"}, title
        if "confusion" in title:  # DVC's own template: one matrix per revision, side by side
            assert spec["facet"]["column"]["field"] == "rev"
            continue
        owners: dict[str, set[str]] = {}
        for colour, rev in _colours(spec):
            owners.setdefault(colour, set()).add(rev)
        shared = {c for c, revs in owners.items() if len(revs) > 1}
        assert shared <= {"perfect"}, f"{title}: {shared} drawn alike in {revisions}"
        assert any(c.endswith(" @ HEAD") for c in owners), (title, set(owners))


def test_a_diff_shows_each_revisions_picture_whole(shown, diffed):
    """DVC writes a picture's revisions in one row that never wraps, each at full size:
    the page's style gives each an equal share of the width instead."""
    tmp = shown[0]
    sh(tmp, "dvc", "plots", "diff", "HEAD", "-o", "diff")
    html = (tmp / "diff" / "index.html").read_text()
    assert 'white-space: nowrap' in html  # DVC's row, which the page's style overrides
    style = re.search(r"<style>(.*?)</style>", html, re.S)[1]
    assert re.search(r'div\[style\*="nowrap"\]\s*\{[^}]*display:\s*flex', style)
    assert re.search(r'div\[style\*="nowrap"\]\s*>\s*div\s*\{[^}]*flex:\s*1 1 0', style)


def test_generated_pages_are_ignored_by_git():
    """`dvc plots diff main -o diff` (the README's) and `dvc plots show` (dvc_plots/)."""
    import subprocess

    for page in ("diff/index.html", "dvc_plots/index.html"):
        ignored = subprocess.run(["git", "check-ignore", "-q", "--no-index", page], cwd=ROOT,
                                 check=False)
        assert ignored.returncode == 0, f"{page} is not ignored by .gitignore"


def test_curve_tables_name_a_model_without_curves(tmp_path):
    from pipeline.core.errors import PipelineError

    _curves(tmp_path, "head", scheduled=False)
    with pytest.raises(PipelineError,
                       match=r"model 'wrn' has no training curves \(\S*wrn/plots/metrics"):
        curve_tables(["head", "wrn"], live=tmp_path)
