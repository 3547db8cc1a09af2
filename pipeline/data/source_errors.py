"""What goes wrong with a data source, as the pipeline's own errors."""

from pipeline.core.errors import PipelineError


class DataSourceError(PipelineError, ValueError):
    """The data folder is missing or has no usable class folders."""


class SourceError(DataSourceError):
    """``data.source`` cannot be used; the message names the path, member or URL and why."""
