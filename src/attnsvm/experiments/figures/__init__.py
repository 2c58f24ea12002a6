"""One module per figure; each defines ``FIGURE`` (an :class:`~..registry.Figure`)."""
