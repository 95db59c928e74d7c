"""Recording formats, one module per format; every reader returns an ``Acquisition``."""
