"""Settings package: ``base`` (everything, from the environment), ``production`` (refuses to
start without its secrets) and ``test``."""
