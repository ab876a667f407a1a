"""musicsep: self-hostable music stem separation with streamed progress.

Nothing heavy is imported here, so `musicsep --help` and the clients stay light.
"""

__version__ = "0.1.0"
