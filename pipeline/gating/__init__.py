"""What the quality gate (``pipeline.gate``) reads, checked: files at a git revision
(``revisions``), a run's results from the workspace or a revision (``run_results``), and the
stages ``dvc.lock`` no longer describes (``lock``). No stage imports it, so a change here
re-runs nothing."""
