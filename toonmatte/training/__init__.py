"""Fine-tuning BiRefNet on an im/gt/an dataset with Hugging Face ``accelerate`` (``python -m toonmatte finetune``).

``data`` reads and augments the triples (``augment``), ``loss`` is ToonOut's loss mix,
``records`` writes the run folder's metrics, plot and card, ``checkpoints`` saves and finds
resumable states, and ``loop`` runs it all on one or many processes.
"""
