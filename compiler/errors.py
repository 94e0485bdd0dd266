"""The one exception type tflquant raises for bad input; the CLI prints it as one line."""


class TflquantError(Exception):
    """A problem the user can act on: names the file, tensor or op and says what to do."""
