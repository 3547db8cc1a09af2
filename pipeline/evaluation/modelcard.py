"""The model card a person reads before using the shipped model: ``artifacts/classifier/README.md``.

It says what the numbers cannot: whether the backbone had ImageNet weights at all (random
initialisation is the first line, not a footnote: without transfer, "the scratch network
wins" is no finding), what data the model saw and what was left out, its accuracy with the
interval and its calibration, what it is for and where it fails, and the params, commit and
machine that made it. ``render`` is pure (the tests call it); ``write_model_card`` reads the
pipeline's files and writes the page next to ``card.json``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from pipeline.core import machine, paths
from pipeline.core.io import read_json, write_text
from pipeline.core.net import redacted
from pipeline.core.params import Params

ARCH_NAMES = {"resnet50": "ResNet50", "resnet101": "ResNet101", "resnet152": "ResNet152"}
# Pipeline outputs a run rewrites (committed metrics, reports, dvc.lock): their edits are the
# run itself, not uncommitted changes to what made it.
RUN_OUTPUTS = ("metrics", "reports", "plots", "dvclive", "models", "data", "dvc.lock")


def weights_in_words(weights: dict) -> str:
    """data/weights.json (the weights stage's record) as one sentence."""
    arch = ARCH_NAMES.get(weights.get("arch", ""), weights.get("arch", "backbone"))
    source = weights.get("source")
    if source == "random":
        why = ("backbone.weights: none" if weights.get("requested") == "none"
               else "no ImageNet weights were available")
        return (f"The {arch} backbone has RANDOM weights ({why}): the head and the fine-tune "
                "start from nothing; transfer learning did not happen in this run.")
    if source == "imagenet":
        return (f"The {arch} backbone has ImageNet weights (Keras' file {weights.get('file')}, "
                f"md5 {weights.get('md5')}).")
    return (f"The {arch} backbone has weights from a user file, {weights.get('file')} "
            f"(sha256 {str(weights.get('sha256'))[:16]}…).")


def git_commit(cwd: Path | None = None) -> str:
    """HEAD's commit, "+ uncommitted changes" when code or params differ from it; "unknown"
    outside git."""
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)

    head = git("rev-parse", "HEAD")
    if head.returncode != 0:
        return "unknown"
    changed = git("status", "--porcelain", "--untracked-files=no", "--", ".",
                  *[f":(exclude){p}" for p in RUN_OUTPUTS])
    dirty = " + uncommitted changes" if changed.stdout.strip() else ""
    return head.stdout.strip() + dirty


def model_params(params: Params, name: str) -> dict:
    """The params.yaml sections that made model ``name``, as in the file."""
    raw = params.model_dump(mode="json", by_alias=True)
    source = redacted(raw["data"]["source"])  # a URL without its password
    out: dict = {"seed": raw["seed"], "data": {"source": source,
                                               "split": raw["data"]["split"]}}
    if name == "head":
        out |= {"backbone": raw["backbone"], "head": raw["head"]}
    elif name in params.finetune:
        out |= {"backbone": raw["backbone"], "head": raw["head"],
                "finetune": {name: raw["finetune"][name]}}
    elif name in params.scratch:
        out |= {"scratch": {name: raw["scratch"][name]}}
    return out | {"report": raw["report"]}


def _origin(name: str, card: dict, weights: dict, params: dict) -> tuple[str, list[str]]:
    """(first line, provenance lines): the loud line when anything in the run was random."""
    words = weights_in_words(weights)
    random = weights.get("source") == "random"
    if "scratch" in params:
        recipe = params["scratch"][name]
        start = ("random initialisation, by design" if recipe.get("weights") == "none"
                 else f"weights from {recipe.get('weights')}")
        line = f"{name} was trained from scratch ({start}): no backbone, no transfer."
        if random:
            return (f"> **⚠ RANDOM WEIGHTS in this run.** {words} So {name} (from scratch) was "
                    "compared with models that had no transfer either: its win says nothing "
                    "about transfer learning.", [line, words])
        return "", [line, words]
    arch = ARCH_NAMES.get(weights.get("arch", ""), "backbone")
    line = (f"{name} is the {arch} backbone and the head, fine-tuned end to end "
            f"(finetune.{name})." if "finetune" in params else
            f"{name} is a softmax head on the frozen {arch} backbone's features, exported "
            "behind that backbone.")
    if random:
        return f"> **⚠ RANDOM WEIGHTS.** {words}", [line, words]
    return "", [line, words]


def _data(data: dict, source: str) -> list[str]:
    kind = (data.get("source") or {}).get("kind", "?")
    pin = (data.get("source") or {}).get("sha256")
    splits = data.get("splits", {})
    dropped = data.get("dropped") or {}
    lines = [
        f"Source: `{source}` ({kind}{f', sha256 {pin}' if pin else ''}).",
        f"{data.get('images', 0):,} images of {data.get('classes', 0)} classes: "
        + ", ".join(f"{c} {n}" for c, n in (data.get("per_class") or {}).items()) + ".",
        f"Split: train {splits.get('train', 0)}, val {splits.get('val', 0)}, "
        f"test {splits.get('test', 0)}.",
        f"Dropped: {dropped.get('bad', 0)} bad image(s), {dropped.get('duplicates', 0)} "
        "duplicate(s) (listed in data/dropped.csv with the reason).",
    ]
    skipped = data.get("skipped") or {}
    if skipped:
        lines.append("Skipped files: " + ", ".join(f"{n} {why}" for why, n in skipped.items())
                     + ".")
    return lines


def _performance(chosen: dict, evaluation: dict, test_images: int,
                 val_images: int | None = None) -> list[str]:
    from pipeline.evaluation.calibration import unhelpful  # scipy and scikit-learn: when used

    pct = lambda x: f"{100 * float(x):.1f}"  # noqa: E731
    lines = [f"Accuracy {pct(chosen['accuracy'])} % (95 % Wilson interval "
             f"{pct(chosen['accuracy_low'])}–{pct(chosen['accuracy_high'])} %) on "
             f"{test_images} test images; one image is {100 / max(test_images, 1):.1f} points."]
    if "macro_f1" in evaluation:
        lines.append(f"Macro-F1 {evaluation['macro_f1']:.3f}.")
    if "ece" in evaluation:
        after = (f", {evaluation['ece_calibrated']:.3f} after temperature scaling "
                 f"(T = {evaluation.get('temperature', float('nan')):.3g})"
                 if "ece_calibrated" in evaluation else
                 "; no temperature fitted (evaluate.calibration: none): the raw probabilities "
                 "ship" if "temperature" not in evaluation else "")
        lines.append(f"Calibration: expected calibration error {evaluation['ece']:.3f}{after}.")
        if (said := unhelpful(evaluation, val_images)) is not None:
            lines.append(f"**⚠ Calibration did not help:** {said[0].upper()}{said[1:]}.")
    else:
        lines.append("Calibration: not measured in this run; treat the confidences as scores, "
                     "not probabilities.")
    return lines


def render(card: dict, weights: dict, data: dict, chosen: dict, evaluation: dict,
           params: dict, commit: str, scored: dict | None = None) -> str:
    """The card as Markdown. ``card``: artifacts/classifier/card.json; ``weights``:
    data/weights.json; ``data``: reports/data/prepare.json; ``chosen``: metrics/report.json;
    ``evaluation``: metrics/evaluate/<model>.json (calibration when present); ``params``:
    ``model_params``; ``scored``: the evaluation's run facts (reports/runs/evaluate/
    <model>.json: the machine that scored it)."""
    name = card.get("model", card.get("name", "model"))
    loud, origin = _origin(name, card, weights, params)
    test_images = int((data.get("splits") or {}).get("test", 0))
    classes = card.get("classes", [])
    trained_on = card.get("machine")
    scored_on = (scored or {}).get("machine")
    limits = [
        f"It only knows {len(classes)} classes: every image gets one of them, even an image "
        "of none (there is no reject class); the confidence is the only hint.",
        f"The test split is small ({test_images} images): the interval above is the honest "
        "accuracy, not the point value.",
        "Accuracy can move between CPUs: oneDNN picks kernels by instruction set (AVX-512, "
        "AVX512_BF16, AMX), and a retrain on another machine can land elsewhere (see the "
        "machine lines above).",
    ]
    if weights.get("source") == "random":
        limits.insert(0, "No ImageNet features: with random backbone weights, the models on "
                      "the backbone learnt from this data set alone.")
    parts = [
        *([loud, ""] if loud else []),
        f"# Model card: {name}",
        "",
        "## Where it came from",
        "",
        *[f"- {line}" for line in origin],
        f"- Trained on: {machine.line(trained_on) if trained_on else 'not recorded'}.",
        f"- Scored on: {machine.line(scored_on) if scored_on else 'not recorded'}.",
        f"- Git commit: {commit}.",
        "",
        "## Data",
        "",
        *[f"- {line}" for line in _data(data, params.get("data", {}).get("source", "?"))],
        "",
        "## Performance",
        "",
        *[f"- {line}" for line in _performance(chosen, evaluation, test_images,
                                               (data.get("splits") or {}).get("val"))],
        "",
        "## Intended use",
        "",
        f"- Classify an image into one of: {', '.join(classes)}.",
        f"- Input: {card.get('preprocessing', '?')}; {card.get('image_size', '?')} px; "
        + ("a JPEG's EXIF Orientation applied first (turned upright, as in training)"
           if card.get("exif_orientation", True) else
           "a JPEG's EXIF Orientation ignored (the stored pixels, as in training)")
        + " (card.json `exif_orientation`).",
        *([f"- Images over {card['max_pixels']:,} pixels (width x height) are refused as "
           "decompression bombs, by `pipeline.predict` and `pipeline.serve` as by prepare "
           "(card.json `max_pixels`: the `data.images.max_pixels` its data passed)."]
          if "max_pixels" in card else []),
        "- Load `model.keras` with Keras, or run `python -m pipeline.predict`; `card.json` "
        "lists the classes in output order.",
        "",
        "## Known limits",
        "",
        *[f"- {line}" for line in limits],
        "",
        "## Params",
        "",
        "```yaml",
        yaml.safe_dump(params, sort_keys=False).rstrip(),
        "```",
        "",
    ]
    return "\n".join(parts)


def write_model_card(target: Path, card: dict, params: Params, chosen: dict) -> Path:
    """``target``/README.md for the exported ``card``, from the run's files; ``chosen`` is
    the recommendation as metrics/report.json records it (``Report.to_metrics()``)."""
    name = card.get("model", card.get("name"))
    evaluation_file = paths.evaluation(name)
    scored_file = paths.run_record(f"evaluate/{name}")
    text = render(card, read_json(paths.WEIGHTS_RECORD),
                  read_json(paths.DATA_REPORTS / "prepare.json"),
                  chosen,
                  read_json(evaluation_file) if evaluation_file.is_file() else {},
                  model_params(params, name), git_commit(),
                  read_json(scored_file) if scored_file.is_file() else None)
    write_text(target / "README.md", text)
    return target / "README.md"
