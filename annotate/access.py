"""Who is using the studio, and what they may do.

Three ways to run it:

- **Local, no sign-in** (the default): one person on their own machine. Everyone who reaches the
  page is that person (``LOCAL``), and may save; ``--annotator`` names them in the index.
- **Local with sign-in** (``--auth-file``, one ``user:password`` a line): Gradio asks for a name and
  password; each person gets their own queue, and saves record their name.
- **A Hugging Face Space**: "Sign in with Hugging Face" (OAuth). Visitors who are not signed in get
  the read-only *Try it* mode.

Who may save: the allow-list (``--annotators``/``$TOONMATTE_ANNOTATORS``: user names, and
organisation names that a signed-in person belongs to). Without a list, every signed-in person
may save locally, and on a Space only its owner may (a public Space must not take writes from
anyone who signs in). Everyone else may matte and download, but not write. Reviewers
(``--reviewers``/``$TOONMATTE_REVIEWERS``) may save too, and approve saved items or send them back
with a comment.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toonmatte.errors import ToonmatteError

LOCAL = "local"
"""The one person of a studio without sign-in."""


@dataclass(frozen=True)
class Person:
    """Someone using the page: ``name`` is None for a visitor who is not signed in; ``orgs`` are the
    Hugging Face organisations a signed-in Space visitor belongs to."""

    name: str | None
    orgs: frozenset[str] = frozenset()

    @property
    def signed_in(self) -> bool:
        return self.name is not None


def parse_names(text: str | None) -> frozenset[str]:
    """``"alice, bob ,org"`` as a set of names (empty for None or blank)."""
    return frozenset(name.strip() for name in (text or "").split(",") if name.strip())


def read_auth_file(path: str | Path) -> list[tuple[str, str]]:
    """(user, password) pairs from a file of ``user:password`` lines (blank lines and ``#`` comments skipped)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ToonmatteError(f"The auth file {path} could not be read ({error}); "
                             "pass a text file of user:password lines.") from None
    pairs = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, colon, password = line.partition(":")
        if not colon or not user.strip() or not password:
            raise ToonmatteError(f"Line {number} of the auth file {path} is not user:password; fix it and start again.")
        pairs.append((user.strip(), password))
    if not pairs:
        raise ToonmatteError(f"The auth file {path} names nobody; add user:password lines.")
    return pairs


def person_of(request: Any, profile: Mapping[str, Any] | None) -> Person:
    """The person behind a Gradio event: the Hugging Face profile when signed in with OAuth, else the
    name Gradio's own sign-in (``--auth-file``) put on the request, else an anonymous visitor."""
    if profile is not None:
        orgs = frozenset(str(org.get("preferred_username") or org.get("name") or "")
                         for org in profile.get("orgs") or [] if isinstance(org, Mapping)) - {""}
        return Person(str(profile["preferred_username"]), orgs)
    username = getattr(request, "username", None) if request is not None else None
    return Person(str(username) if username else None)


@dataclass(frozen=True)
class Access:
    """The studio's policy: whether sign-in is on (and through Hugging Face OAuth), who may save, who may review."""

    sign_in: bool = False
    oauth: bool = False
    annotators: frozenset[str] = frozenset()
    reviewers: frozenset[str] = frozenset()
    owner: str | None = None
    local_annotator: str | None = None

    @classmethod
    def from_settings(cls, *, auth_file: bool, annotators: str | None, reviewers: str | None,
                      local_annotator: str | None, environ: Mapping[str, str] = os.environ) -> Access:
        """The policy for this run: sign-in is on with an auth file or on a Space (``SPACE_ID``). A Space
        signs people in with Hugging Face when its metadata has ``hf_oauth: true`` (which sets
        ``OAUTH_CLIENT_ID``); without it nobody can sign in there, so everyone gets the read-only mode."""
        space = environ.get("SPACE_ID")
        owner = environ.get("SPACE_AUTHOR_NAME") or (space.split("/")[0] if space else None)
        oauth = bool(space) and not auth_file and bool(environ.get("OAUTH_CLIENT_ID"))  # set by hf_oauth: true
        return cls(sign_in=auth_file or bool(space), oauth=oauth, annotators=parse_names(annotators),
                   reviewers=parse_names(reviewers), owner=owner if space else None,
                   local_annotator=local_annotator)

    def desk_name(self, person: Person) -> str | None:
        """Whose work a person sees: their own name; ``LOCAL`` without sign-in; None (no queue at all)
        for a visitor who is not signed in while sign-in is on."""
        if not self.sign_in:
            return LOCAL
        return person.name

    def annotator_name(self, person: Person) -> str | None:
        """The name recorded with a save: the signed-in identity (``--annotator`` only without sign-in)."""
        return person.name if self.sign_in else self.local_annotator

    def may_save(self, person: Person) -> bool:
        if not self.sign_in:
            return True
        if not person.signed_in:
            return False
        allowed = self.annotators | self.reviewers  # a reviewer opens and corrects items too
        if allowed:
            return person.name in allowed or bool(person.orgs & allowed)
        return self.owner is None or person.name == self.owner

    def may_review(self, person: Person) -> bool:
        if not self.sign_in:
            return True
        return person.signed_in and (person.name in self.reviewers or bool(person.orgs & self.reviewers)
                                     or (self.owner is not None and person.name == self.owner))

    def check_save(self, person: Person) -> None:
        """Raise one sentence when ``person`` may not write to the dataset."""
        if self.may_save(person):
            return
        if not person.signed_in:
            raise ToonmatteError("Saving needs you to sign in as one of this studio's annotators; "
                                 "you can still matte images and download the cut-outs.")
        raise ToonmatteError(f"{person.name} is not on this studio's list of annotators, so nothing was saved; "
                             "ask the studio's owner to add you, or use it to matte and download cut-outs.")

    def check_review(self, person: Person) -> None:
        if not self.may_review(person):
            raise ToonmatteError("Only the studio's reviewers may approve items or send them back; "
                                 "ask its owner to add you.")

    def describe(self, person: Person) -> str:
        """One line for the page: who you are and what you may do here."""
        if not self.sign_in:
            return ""
        if not person.signed_in:
            return "**Try it**: matte images and download the cut-outs. Sign in as an annotator to correct and save."
        role = "annotator" if self.may_save(person) else "visitor (read-only: matte and download only)"
        if self.may_review(person):
            role += ", reviewer"
        return f"Signed in as **{person.name}** · {role}"

