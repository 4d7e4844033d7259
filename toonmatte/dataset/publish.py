"""Publishing a dataset on the Hugging Face Hub: its triples as plain files in ToonOut's layout, and a
dataset card that says what is in it and how it was made.

One commit replaces what an earlier publication put in the repo: the layout's PNGs of items that
moved or went away are deleted, the README is the new card. Files outside the layout (such as the
studio's Hub sync, ``versions/`` and ``manifest/``) are left alone.
"""
from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toonmatte.dataset.index import ItemRecord
from toonmatte.dataset.layout import KINDS, META_DIR, SUFFIX, Item, list_items
from toonmatte.dataset.store import DatasetStore
from toonmatte.errors import ToonmatteError

logger = logging.getLogger(__name__)

REPO_TYPE = "dataset"
# A file of ToonOut's layout in the repo: [<split>/]<generation>/<kind>/<stem>.png
_LAYOUT_FILE = re.compile(rf"^(?:[^/]+/)?[^/]+/(?:{'|'.join(KINDS)})/[^/]+\{SUFFIX}$")
_SIZES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"))


@dataclass(frozen=True)
class Published:
    repo_id: str
    items: int
    files: int
    deleted: int
    skipped: int  # items missing one of their three files
    card: str


def dataset_card(items: Iterable[Item], records: Mapping[str, ItemRecord], licence: str, repo_id: str) -> str:
    """The README.md of a published dataset: YAML metadata (licence, task, size) and, in words, the
    counts per split and generation, the annotators and how the items were made."""
    from huggingface_hub import DatasetCard, DatasetCardData

    items = list(items)
    known = [records[item.stem] for item in items if item.stem in records]
    size = next((label for limit, label in _SIZES if len(items) < limit), "n>1M")
    creators = (["machine-generated"] if any(r.model for r in known) else []) + \
               (["expert-generated"] if any(r.annotator or r.status in ("corrected", "reviewed") for r in known)
                else [])
    data = DatasetCardData(license=licence, pretty_name=repo_id.split("/")[1], task_categories=["image-segmentation"],
                           size_categories=[size], annotations_creators=creators or None,
                           tags=["anime", "background-removal", "image-matting", "toonout"])

    places = Counter((item.split or "(not split)", item.generation) for item in items)
    splits = Counter(item.split or "(not split)" for item in items)
    lines = [f"# {repo_id.split('/')[1]}", "",
             "Anime character cut-outs in ToonOut's layout. Each item is three PNGs "
             "sharing a stem under `<split>/<generation>/`: `im/` the RGB image, `gt/` the 8-bit alpha matte "
             "(255 = subject) and `an/` the RGBA cut-out with decontaminated edge colours.", "",
             "## Contents", "", f"{_count(len(items), 'item')}: "
             + ", ".join(f"{split} {count}" for split, count in sorted(splits.items())) + ".", "",
             "| split | generation | items |", "| --- | --- | --- |"]
    lines += [f"| {split} | {generation} | {count} |" for (split, generation), count in sorted(places.items())]
    lines += ["", "## How the items were made", ""]
    lines += _making(items, known)
    annotators = Counter(record.annotator for record in known if record.annotator)
    lines += ["", "## Annotators", ""]
    if annotators:
        lines += ["| annotator | items |", "| --- | --- |"]
        lines += [f"| {name} | {count} |" for name, count in sorted(annotators.items(),
                                                                    key=lambda pair: (-pair[1], pair[0]))]
        unnamed = len(items) - sum(annotators.values())
        if unnamed:
            lines += ["", f"{_count(unnamed, 'item')} {'names' if unnamed == 1 else 'name'} no annotator."]
    else:
        lines.append("No item names its annotator.")
    lines += ["", "## Licence", "",
              f"Published under the `{licence}` licence." if licence not in ("unknown", "other") else
              "The publisher chose no licence here; ask them before using the data."]
    return str(DatasetCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines) + "\n"))


def _making(items: list[Item], known: list[ItemRecord]) -> list[str]:
    lines = []
    if not known:
        return ["The items carry no record of how they were made (they were not saved by the toonmatte studio)."]
    models = Counter(" ".join(part for part in (record.model, record.model_version and f"({record.model_version})")
                              if part) or "no model" for record in known)
    lines.append("A model cut out each image, and a person corrected the matte with the brushes of the toonmatte "
                 "studio where it was wrong. Models: " + ", ".join(f"{name} for {count}" for name, count in
                                                  sorted(models.items(), key=lambda pair: (-pair[1], pair[0]))) + ".")
    statuses = Counter(record.status for record in known)
    lines.append("")
    lines.append("Status: " + ", ".join(f"{status} {count}" for status, count in sorted(statuses.items())) + ".")
    measured = [record.changed_fraction for record in known if record.changed_fraction is not None]
    if measured:
        changed = [fraction for fraction in measured if fraction > 0]
        mean = sum(measured) / len(measured)
        lines += ["", f"Corrections: {len(changed)} of the {_count(len(measured), 'item')} saved with the model's "
                      f"prediction were changed by hand; on average {mean:.1%} of their "
                      "pixels differ from the model's."]
    versions = sum(record.versions for record in known)
    if versions > len(known):
        lines += ["", f"Saved {_count(versions, 'time')} in all: some items were corrected "
                      "again after their first save."]
    unknown = len(items) - len(known)
    if unknown:
        lines += ["", f"{_count(unknown, 'item')} came from elsewhere and carry no record of how they were made."]
    return lines


def _count(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def publish(root: str | Path, repo_id: str, *, api: Any = None, licence: str = "unknown",
            private: bool = False) -> Published:
    """Publish the complete items under ``root`` to the Hub dataset repo ``repo_id`` with their card, as
    one change of its main branch: one commit, or for more than ``FILES_PER_COMMIT`` files a pull request
    filled in commits of that size and then merged, so readers never see half a dataset and a failure
    leaves main as it was. ``api`` is an ``HfApi`` (default: one with the machine's token)."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    from toonmatte.dataset.hub import check_repo_id, hub_failure

    check_repo_id(repo_id)
    root = Path(root).expanduser()
    records: dict[str, ItemRecord] = {}
    if (root / META_DIR / "index.sqlite").is_file():
        with DatasetStore(root) as store:  # opening it finishes interrupted saves and moves first
            records = {record.stem: record for record in store.items() if record.versions}
    items = list_items(root)
    complete = [item for item in items if item.complete]
    if not complete:
        raise ToonmatteError(f"{root} holds no complete im/gt/an triple, so there is nothing to publish.")
    card = dataset_card(complete, records, licence, repo_id)
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi()
    wanted = {f"{item.folder}/{kind}/{item.stem}{SUFFIX}": item.path(kind) for item in complete for kind in KINDS}
    try:
        api.create_repo(repo_id, repo_type=REPO_TYPE, private=private, exist_ok=True)
        stale = [path for path in api.list_repo_files(repo_id, repo_type=REPO_TYPE)
                 if _LAYOUT_FILE.match(path) and path not in wanted]
        operations: list[CommitOperationAdd | CommitOperationDelete]
        operations = [CommitOperationAdd(path_in_repo=path, path_or_fileobj=str(file))
                      for path, file in wanted.items()]
        operations += [CommitOperationDelete(path_in_repo=path) for path in stale]
        operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=card.encode()))
        _commit_as_one_change(api, repo_id, operations, f"toonmatte: publish {_count(len(complete), 'item')}")
    except Exception as error:
        if isinstance(error, ToonmatteError):
            raise
        raise ToonmatteError(f"The dataset was not published to {repo_id} because "
                             f"{hub_failure(error, repo_id)}.") from None
    return Published(repo_id, len(complete), len(wanted), len(stale), len(items) - len(complete), card)


def _commit_as_one_change(api: Any, repo_id: str, operations: list[Any], message: str) -> None:
    """``operations`` onto main as one change: one commit when they fit in one, else a pull request filled
    ``FILES_PER_COMMIT`` at a time (the deletions and the card last) and merged; a pull request left
    unmerged by a failure is closed (on a best-effort basis) and main is unchanged."""
    from toonmatte.dataset.hub import FILES_PER_COMMIT

    if len(operations) <= FILES_PER_COMMIT:
        api.create_commit(repo_id=repo_id, repo_type=REPO_TYPE, operations=operations, commit_message=message)
        return
    chunks = [operations[start:start + FILES_PER_COMMIT] for start in range(0, len(operations), FILES_PER_COMMIT)]
    first = api.create_commit(repo_id=repo_id, repo_type=REPO_TYPE, operations=chunks[0], create_pr=True,
                              commit_message=f"{message} (part 1 of {len(chunks)})",
                              commit_description="Filled in parts by toonmatte, then merged as one change.")
    try:
        for number, chunk in enumerate(chunks[1:], 2):
            api.create_commit(repo_id=repo_id, repo_type=REPO_TYPE, operations=chunk, revision=first.pr_revision,
                              commit_message=f"{message} (part {number} of {len(chunks)})")
        api.merge_pull_request(repo_id, first.pr_num, repo_type=REPO_TYPE, comment=message)
    except Exception:
        try:
            api.change_discussion_status(repo_id, first.pr_num, "closed", repo_type=REPO_TYPE,
                                         comment="Not published: a part could not be sent.")
        except Exception as error:  # the publish failure below is what matters
            logger.info("Could not close the unmerged pull request #%s on %s (%s).", first.pr_num, repo_id, error)
        raise
