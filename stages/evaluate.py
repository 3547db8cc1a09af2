"""Stages evaluate_head, evaluate_finetune@NAME, evaluate_scratch@NAME: one model on the
held-out test split (pipeline/evaluation/evaluate.py).

The head on the cached test features; every other model on the test images through
the decoder of training. Accuracy, macro-F1 and top-k are metrics; what grows with
the classes (precision and recall per class, the confusion matrix) and what a person
looks at (the mistakes, with a Grad-CAM map on each for a convolutional model, and the
most-confused pairs) are plots. A temperature fitted on the validation split calibrates
the probabilities: ECE and NLL on the test split before and after it are metrics, and
the reliability diagram a plot.

Reads:  params evaluate.*, distribute, inference; models/MODEL.keras, models/MODEL.json
        (its card: the images decode by its exif_orientation, as the model was trained);
        the head (in NumPy, no TensorFlow): data/features/{val,test}.npz and info.json
        (the backbone the export ships before it), others: data/manifest.csv;
        data/source.json (the images)
Writes: metrics/evaluate/MODEL.json (the results: accuracy, macro_f1, top-k accuracy,
        temperature, ece, ece_calibrated, nll, nll_calibrated), reports/runs/evaluate/
        MODEL.json (its run facts: inference images/s, the runtime that ran, the machine:
        its kernels can move a score, and shipped_params, shipped_mb: the parameters and
        weights of the network the export ships, the head's backbone included),
        reports/predictions/MODEL.csv (each test image),
        plots/MODEL/{confusion,per_class,reliability}.csv,
        plots/MODEL/{mistakes,confused_pairs,reliability}.png
"""

from pipeline.core import stage
from pipeline.core.params import Params


def main(params: Params, model: str) -> None:
    from pipeline.evaluation.evaluate import evaluate

    evaluate(params, model)


if __name__ == "__main__":
    args = stage.parser(__doc__)
    args.add_argument("model", metavar="MODEL",
                      help="head, or an entry of params.yaml's finetune or scratch section")
    stage.run(main, args)
