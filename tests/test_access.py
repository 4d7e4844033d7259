"""Who may do what: sign-in modes, the annotator allow-list, reviewers, and the people behind events."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from annotate.access import LOCAL, Access, Person, parse_names, person_of, read_auth_file
from toonmatte.errors import ToonmatteError


def test_without_sign_in_the_one_local_person_saves_under_the_annotator_flag():
    access = Access.from_settings(auth_file=False, annotators=None, reviewers=None, local_annotator="mika", environ={})
    nobody = person_of(SimpleNamespace(username=None), None)
    assert not access.sign_in and access.may_save(nobody) and access.desk_name(nobody) == LOCAL
    assert access.annotator_name(nobody) == "mika" and access.describe(nobody) == ""


def test_with_an_auth_file_the_list_decides_and_the_signed_in_name_is_recorded():
    access = Access.from_settings(auth_file=True, annotators="alice, bob", reviewers="bob", local_annotator="ignored",
                                  environ={})
    alice = person_of(SimpleNamespace(username="alice"), None)
    carol = person_of(SimpleNamespace(username="carol"), None)
    assert access.may_save(alice) and not access.may_save(carol) and not access.may_save(Person(None))
    assert access.annotator_name(alice) == "alice" and access.desk_name(alice) == "alice"
    access.check_save(alice)
    with pytest.raises(ToonmatteError, match="carol is not on this studio's list of annotators"):
        access.check_save(carol)
    with pytest.raises(ToonmatteError, match="sign in"):
        access.check_save(Person(None))
    assert access.may_review(Person("bob")) and not access.may_review(alice)
    with pytest.raises(ToonmatteError, match="reviewers"):
        access.check_review(alice)
    assert "read-only" in access.describe(carol) and "annotator" in access.describe(alice)


def test_without_a_list_every_signed_in_person_saves_locally():
    access = Access.from_settings(auth_file=True, annotators=None, reviewers=None, local_annotator=None, environ={})
    assert access.may_save(Person("anyone")) and not access.may_save(Person(None))


def test_on_a_space_oauth_is_on_orgs_count_and_without_a_list_only_the_owner_saves():
    space = {"SPACE_ID": "studio-team/toonmatte", "SPACE_AUTHOR_NAME": "studio-team", "OAUTH_CLIENT_ID": "id"}
    without_oauth = Access.from_settings(auth_file=False, annotators=None, reviewers=None, local_annotator=None,
                                         environ={"SPACE_ID": "studio-team/toonmatte"})
    assert without_oauth.sign_in and not without_oauth.oauth  # hf_oauth is off: nobody signs in, all read-only
    open_space = Access.from_settings(auth_file=False, annotators=None, reviewers=None, local_annotator=None,
                                      environ=space)
    assert open_space.sign_in and open_space.oauth
    assert open_space.may_save(Person("studio-team")) and not open_space.may_save(Person("passer-by"))
    assert "Try it" in open_space.describe(Person(None))
    team = Access.from_settings(auth_file=False, annotators="ink-club", reviewers=None, local_annotator=None,
                                environ=space)
    profile = {"preferred_username": "yuki", "name": "Yuki", "profile": "", "picture": "",
               "orgs": [{"preferred_username": "ink-club", "name": "Ink Club"}]}
    yuki = person_of(None, profile)
    assert yuki == Person("yuki", frozenset({"ink-club"})) and team.may_save(yuki)
    assert not team.may_save(person_of(None, {**profile, "orgs": []}))


def test_parse_names_and_auth_files(tmp_path):
    assert parse_names(" a, b,,c ") == {"a", "b", "c"} and parse_names(None) == frozenset()
    good = tmp_path / "users.txt"
    good.write_text("# the team\nalice:wonder land\n\nbob:pw:with:colons\n")
    assert read_auth_file(good) == [("alice", "wonder land"), ("bob", "pw:with:colons")]
    bad = tmp_path / "bad.txt"
    bad.write_text("alice\n")
    with pytest.raises(ToonmatteError, match="Line 1 .* not user:password"):
        read_auth_file(bad)
    empty = tmp_path / "empty.txt"
    empty.write_text("# nobody\n")
    with pytest.raises(ToonmatteError, match="names nobody"):
        read_auth_file(empty)
    with pytest.raises(ToonmatteError, match="could not be read"):
        read_auth_file(tmp_path / "missing.txt")
