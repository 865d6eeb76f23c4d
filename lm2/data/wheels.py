"""Moved to ``lm2/wheels.py`` (the wheel cache is not data of its own; ``lm2.pretrained`` uses it too).

Only for lm2/train/data.py and lm2/data/babilong.py, which still import ``cache_dir`` from here: once they import
``lm2.wheels``, delete this file.
"""

from lm2.wheels import cache_dir  # noqa: F401
