"""The ``art2mus`` command line (:mod:`art2mus.cli`).

It sits above the three code packages and imports them only when a subcommand runs:
``installation`` (the kiosk) and ``training`` use ``engine``; ``engine`` uses neither.
"""
