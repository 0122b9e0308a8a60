"""One root error type.  Rejected input is a value (``streams.events.Rejected``), not an exception:
an exception raised from here on is either a configuration mistake or a bug."""


class StreamsError(Exception):
    """Root of every error socialstream raises on purpose."""


class ConfigError(StreamsError):
    """A setting is missing, malformed or inconsistent."""


class InputFileError(StreamsError):
    """A file given on the command line cannot be used (missing, not JSON lines)."""
