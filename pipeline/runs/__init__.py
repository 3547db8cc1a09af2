"""Runs: the machinery around a training recipe's fit. Where and in which precision it runs
(``placement``), the backup a killed run resumes from (``backup``) with what Keras'
checkpoint leaves out (``memory``) and the curves kept beside it (``curves``), the fit
that resumes (``resume``), what a run writes (``save``), and the one shell every training
stage runs its recipe in (``shell``). Training code never calls the resume machinery: it
is handed a fit, and the shell wraps it."""
