"""Stage prepare: scan data.source into data/manifest.csv with a stratified split."""

from pipeline import manifest, paths, stage
from pipeline.config import Config
from pipeline.io import write_json


def main(cfg: Config) -> None:
    frame, skipped = manifest.build(cfg.data.source, cfg.data.split.as_dict(), cfg.seed)
    manifest.write(frame, paths.MANIFEST)
    summary = manifest.summary(frame, skipped)
    write_json(paths.METRICS / "prepare.json", summary)
    skip = ", ".join(f"{n} {why}" for why, n in summary["skipped"].items()) or "none"
    print(
        f"prepare: {summary['images']} images of {summary['classes']} classes from "
        f"{cfg.data.source} -> {paths.MANIFEST} (splits {summary['splits']}; skipped: {skip})"
    )


if __name__ == "__main__":
    stage.run(main)
