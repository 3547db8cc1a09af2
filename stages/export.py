"""Stage export: the recommended model, whole, in the formats other runtimes serve.

Picks the model the report recommends (the same rule, on the same evaluations), bakes in
its temperature (metrics/evaluate/MODEL.json's ``temperature``, 1.0 when absent) and,
for the head, chains it behind its backbone, so every file takes images and gives
calibrated probabilities. Each format of params.yaml's export.formats is written and
checked on every test image against the Keras model (top-1 agreement, largest |dp|) and
timed here (single-image latency p50/p95, batch throughput); a format that cannot be
had is reported as failed, with the reason, never skipped. Each format's agreement is a
metric; the whole check is reports/export.json; sizes and timings, which are no result,
are run facts (reports/runs/export.json).

Reads:  params export.*, report.*, backbone, seed, data.images.max_pixels (the card's pixel
        rule, which the check images must pass too); for every model: models/MODEL.json
        (its exif_orientation: the decode of the checks, serving_default and card.json),
        metrics/evaluate/MODEL.json, reports/predictions/MODEL.csv; the recommended
        model's models/MODEL.keras; data/manifest.csv, data/source.json (test and train
        images); data/weights.json (the head's backbone; the card's provenance),
        reports/data/prepare.json (the card's data); reports/runs/evaluate/MODEL.json
        (the costs of the rule: the size of what ships, the speed; the card's machine)
Writes: artifacts/classifier/ (model.keras, card.json, README.md: the model card, saved_model/,
        model.tflite, model_int8.tflite, model.onnx), metrics/export.json (FORMAT_agreement
        of each format checked), reports/export.json (each format: file, status, agreement,
        max |dp|, accuracy and its change), reports/runs/export.json (each format's size,
        latency and throughput, the machine)
"""

import logging

from pipeline.core import paths, run_facts, stage
from pipeline.core.errors import PipelineError
from pipeline.core.io import atomic_dir, write_json
from pipeline.core.params import Params

log = logging.getLogger(__name__)


def main(params: Params) -> None:
    from pipeline.data.manifest import read
    from pipeline.data.sources import data_root
    from pipeline.evaluation.choice import recommendation
    from pipeline.evaluation.modelcard import write_model_card
    from pipeline.export.formats import RUN_FACT_KEYS, export_all
    from pipeline.export.keras_model import image_network
    from pipeline.export.samples import split_images

    report = recommendation(params)
    name = report.choice.model
    model = image_network(name, params.backbone, params.seed, params.data.images.max_pixels)
    network, card, temperature = model.network, model.card, model.temperature
    manifest, root, size = read(paths.MANIFEST), data_root(params.data), card["image_size"]
    exif_orientation = card["exif_orientation"]  # the decode the model was trained on
    test = split_images(manifest, root, "test", card["classes"], size,
                        exif_orientation=exif_orientation, max_pixels=card["max_pixels"])
    calibration = (split_images(manifest, root, "train", card["classes"], size,
                                params.export.int8_images, params.seed, exif_orientation,
                                card["max_pixels"])
                   if "tflite_int8" in params.export.formats else None)
    with atomic_dir(paths.BEST) as folder:
        write_json(folder / "card.json", card)
        write_model_card(folder, card, params, report.to_metrics())
        rows = export_all(network, size, folder, test, calibration, params.export)
        if rows[0]["status"] == "failed":
            raise PipelineError(f"{paths.BEST / 'model.keras'}: {rows[0]['reason']}")
    checked = {row["format"]: {k: v for k, v in row.items()
                               if k != "format" and k not in RUN_FACT_KEYS} for row in rows}
    write_json(paths.EXPORT_CHECK, {"model": name, "temperature": temperature,
                                    "test_images": len(test), "formats": checked})
    write_json(paths.METRICS / "export.json", {f"{fmt}_agreement": row["agreement"]
                                               for fmt, row in checked.items()
                                               if "agreement" in row})
    run_facts.write("export", {"formats": {row["format"]: {k: row[k] for k in RUN_FACT_KEYS
                                                           if k in row} for row in rows}})
    log.info(f"export {name} (temperature {temperature:g}) to {paths.BEST}/, "
             f"{len(test)} test images:")
    for row in rows:
        figures = (f"agreement {row['agreement']:.1%}, max |dp| {row['max_abs_diff']:.2e}, "
                   f"accuracy {100 * row['accuracy_change']:+.1f} points, "
                   f"{row['latency_ms_p50']:.1f} ms p50, "
                   f"{row['batch_images_per_second']:.0f} img/s; "
                   if "agreement" in row else "")
        log.info(f"  {row['format']} ({row['file']}): {figures}{row['status']}"
                 + (f" ({row['reason']})" if "reason" in row else ""))


if __name__ == "__main__":
    stage.run(main, stage.parser(__doc__))
