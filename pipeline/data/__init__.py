"""Data: from ``data.source`` to a checked, split manifest and the batches that read it.

Resolving the source (``sources``, with ``download``, ``archives`` and ``layout``),
walking its class folders (``scan``, ``formats``), checking every image once
(``images``, ``phash``), finding copies (``duplicates``) and deciding what stays
(``policy``), the manifest itself (``manifest``, ``splits``, ``summary``), the Great
Expectations validation (``validation`` and ``suites/``), the demo data set
(``sample``) and the tf.data input (``input``)."""
