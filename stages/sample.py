"""Stage sample: draw the embedded demo data set into data/sample (params: seed, sample.*)."""

from pipeline import paths, stage
from pipeline.config import Config
from pipeline.sample import generate


def main(cfg: Config) -> None:
    s = cfg.sample
    counts = generate(paths.SAMPLE, s.images_per_class, s.image_size, cfg.seed, s.jpeg_quality)
    print(
        f"sample: {sum(counts.values())} images of {len(counts)} classes "
        f"({', '.join(counts)}) at {s.image_size} px, seed {cfg.seed} -> {paths.SAMPLE}"
    )


if __name__ == "__main__":
    stage.run(main)
