"""``python -m vq_tokenizers.cli`` (what ``torchrun -m vq_tokenizers.cli train ...`` runs): the ``vq-tok`` group."""

from vq_tokenizers.cli.commands import main

main()
