"""Stage weights: resolve backbone.weights into metrics/weights.json (always re-checked)."""

from pipeline import paths, stage
from pipeline.config import Config
from pipeline.io import write_json
from pipeline.weights import resolve


def main(cfg: Config) -> None:
    record = resolve(cfg.backbone.arch, cfg.backbone.weights, cfg.seed)
    write_json(paths.WEIGHTS_RECORD, record)
    print(f"weights: {cfg.backbone.arch} <- {record['source']} ({record})")


if __name__ == "__main__":
    stage.run(main)
