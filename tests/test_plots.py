"""dvc.yaml's plots with the project's templates (.dvc/plots): DVC fills them without
error, and what they colour by is what the data holds (the model in each curve's path,
the measure of each bar)."""

from __future__ import annotations

import json
import shutil

import yaml
from helpers import MODELS, ROOT, sh
from PIL import Image


def test_templates_colour_curves_by_model_and_bars_by_measure(tmp_path):
    sh(tmp_path, "git", "init", "-q")
    sh(tmp_path, "dvc", "init", "-q")
    for name in ("dvc.yaml", "params.yaml", ".dvc/config", ".dvc/plots", "reports/templates"):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        copy(ROOT / name, tmp_path / name)
    # Every declared plot file, with a few rows of made-up values.
    for entry in yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"]:
        if isinstance(entry, str):
            (tmp_path / entry).parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (4, 4)).save(tmp_path / entry)
            continue
        (spec,) = entry.values()
        for path, field in spec["y"].items():
            (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
            if path.endswith("per_class.csv"):
                text = "bar,value,class,measure\na · precision,0.5,a,precision\n" \
                       "a · recall,0.25,a,recall\nb · precision,1.0,b,precision\n"
            elif path.endswith("confusion.csv"):
                text = "actual,predicted\na,a\nb,a\n"
            elif path.endswith("reliability.csv"):
                text = ("confidence,accuracy_before,accuracy_after,perfect\n"
                        "0.3,0.2,0.25,0.3\n0.7,0.6,0.7,0.7\n")
            else:
                text = f"step\t{field}\n0\t0.5\n1\t0.25\n"
            (tmp_path / path).write_text(text)

    shown = json.loads(sh(tmp_path, "dvc", "plots", "show", "--json").stdout)
    assert not shown.get("errors"), shown.get("errors")
    specs = {title: plots[0]["content"] for title, plots in shown["data"].items()
             if plots[0].get("type") == "vega"}

    every = specs["Validation accuracy of every model (per epoch)"]
    assert every["encoding"]["color"]["field"] == "series"
    (derive,) = every["transform"]
    assert derive["as"] == "series" and "/plots/" in derive["calculate"]
    # The template takes the model from the path before /plots/: DVC must pass it so.
    paths = {d["filename"] for d in every["data"]["values"]}
    assert {p.split("/plots/")[0] for p in paths} == set(MODELS), paths

    one = specs["head loss (train vs validation)"]
    assert {d["filename"] for d in one["data"]["values"]} == {"train/loss.tsv", "eval/loss.tsv"}

    bars = specs["head precision and recall per class"]
    assert bars["encoding"]["color"]["field"] == "series"
    assert {d["measure"] for d in bars["data"]["values"]} == {"precision", "recall"}
