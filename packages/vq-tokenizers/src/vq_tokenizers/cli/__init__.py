"""``vq-tok``: the click group (:mod:`~vq_tokenizers.cli.commands`) and the modules adding commands to it.

``main`` is exported lazily, so the console script ``vq_tokenizers.cli:main`` and ``from vq_tokenizers.cli
import main`` work while a command module (``cli.vqkd``) can import ``cli.options`` without importing the
group that imports it back.
"""

from vq_core.lazy import lazy_exports

__all__ = lazy_exports(__name__, {"vq_tokenizers.cli.commands": ["main"]})
