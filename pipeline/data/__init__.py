"""Data: from ``data.source`` to a checked, split manifest and the batches that read it.

Resolving the source (``sources``, with ``download``, ``archives`` and ``layout``; what
goes wrong with it: ``source_errors``), walking its class folders (``scan``), checking
every image once (``images``, ``phash``), finding copies (``duplicates``) and deciding
what stays (``policy``), the manifest itself (``manifest``, ``splits``, ``summary``) and
the data set as pictures (``pictures``), the Great Expectations validation
(``validation`` and ``suites/``) and its Data Docs made to read offline (``data_docs``),
the demo data set (``sample``) and the tf.data input (``input``; ``epochs``: a run's
training input addressed by epoch; ``sharding``: each worker's share of it)."""
