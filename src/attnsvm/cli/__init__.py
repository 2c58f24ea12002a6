"""The ``attnsvm`` command line: a thin layer over the library."""
