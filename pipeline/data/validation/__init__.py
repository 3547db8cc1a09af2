"""Validate the image manifest with the Great Expectations suites in pipeline/data/suites/.

The suites live in the repo as YAML data so that a reviewer reads the rules, not
code; the numbers in them come from the ``validate`` section of params.yaml
through ``${name}`` placeholders, so ``dvc exp run -S validate.min_side=32``
still drives them. Some rules are not about single rows (leakage between
splits, classes missing from a split, class imbalance), so small tables are
derived from the manifest and each is validated with its own suite: every rule
stays a plain, row-level expectation whose failures map back to files.

Each expectation carries ``meta.severity``: ``critical`` fails the stage,
``warning`` (say, the same image stored twice within a split) is only reported.

One job per module:

- :mod:`.suite`: read the suite YAML, fill its placeholders from params, build it;
- :mod:`.tables`: the tables the suites check, derived from the manifest;
- :mod:`.run`: run Great Expectations 1.x on them (and write its Data Docs);
- :mod:`.offenders`: name the files (or classes) behind each failed expectation;
- :mod:`.validation_report`: the report the stage prints and writes.
"""
