"""ToonOut's dataset on disk, with one owner: the layout (``layout``), the store that writes triples
atomically (``store``), its SQLite index (``index``) and crash recovery (``journal``).

Readers (``evaluate``, ``report``, training) list items with ``list_items``; writers (the studio,
``split``, the Hub sync) go through ``DatasetStore``.
"""
from toonmatte.dataset.files import hash_file
from toonmatte.dataset.index import STATUSES, ItemRecord
from toonmatte.dataset.layout import (
    HISTORY_DIR,
    KINDS,
    MAX_STEM_LENGTH,
    META_DIR,
    SPLITS,
    SUFFIX,
    Item,
    describe_missing,
    incomplete_items,
    list_items,
    sanitize_stem,
    triple_paths,
)
from toonmatte.dataset.store import DatasetStore, uniform_alpha_warning
from toonmatte.dataset.triple import EncodedTriple, encode_triple

__all__ = ["DatasetStore", "EncodedTriple", "HISTORY_DIR", "Item", "ItemRecord", "KINDS", "MAX_STEM_LENGTH",
           "META_DIR", "SPLITS", "STATUSES", "SUFFIX", "describe_missing", "encode_triple", "hash_file",
           "incomplete_items", "list_items", "sanitize_stem", "triple_paths", "uniform_alpha_warning"]
