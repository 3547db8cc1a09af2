"""The pipeline's own failures: what a user can fix, said in one line."""


class PipelineError(Exception):
    """A bad input (params, data, weights, a suite) whose message names the file, key or
    value at fault. Stage scripts print it as one ``error:`` line and exit 2, without a
    traceback: the message is the whole story."""
