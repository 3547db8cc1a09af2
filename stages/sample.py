"""Stage sample: draw the embedded demo data set (5 classes of synthetic JPEGs).

Reads:  params seed, sample.*
Writes: data/sample/<class>/*.jpg (replaced as a whole)
"""

import logging

from pipeline.core import paths, stage
from pipeline.core.params import Params
from pipeline.data.sample import generate

log = logging.getLogger(__name__)


def main(params: Params) -> None:
    s = params.sample
    counts = generate(paths.SAMPLE, s.images_per_class, s.image_size, params.seed, s.jpeg_quality)
    log.info(
        f"sample: {sum(counts.values())} images of {len(counts)} classes "
        f"({', '.join(counts)}) at {s.image_size} px, seed {params.seed} -> {paths.SAMPLE}"
    )


if __name__ == "__main__":
    stage.run(main, stage.parser(__doc__))
