"""Every figure in one place: the science modules return numbers, these draw them.

``common``: atomic PNG files and image panels; ``analysis``, ``sampling``, ``geometry``: the
figures of each stage."""
