"""Runs: the machinery around a training recipe's fit, below ``pipeline.training``. Where
and in which precision it runs (``placement``), its time budget (``budget``), the backup a
killed run resumes from (``backup``) with what Keras' checkpoint leaves out (``memory``)
and the curves kept beside it (``dvclive_curves``), the backup as ``fit`` is handed it
(``resume``: settled before the fit, callbacks during it), what a run writes (``save``),
and the one shell every training stage runs its recipe in (``shell``). Nothing here fits
or imports ``pipeline.training``: the shell hands the recipe the backup, the recipe hands
it to ``fit``."""
