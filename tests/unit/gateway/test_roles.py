"""IdP groups → platform role (services/gateway/roles.py)."""
import pytest

from services.gateway.roles import groups_from_claim, role_for

ROLE_MAP = {"avatar-admins": "admin", "ml-team": "researcher", "readers": "viewer"}


@pytest.mark.parametrize("groups, expected", [
    (["ml-team"], "researcher"),
    (["avatar-admins"], "admin"),
    (["readers"], "viewer"),
    (["readers", "ml-team"], "researcher"),
    (["ml-team", "avatar-admins", "readers"], "admin"),
    (["avatar-admins", "ml-team"], "admin"),
    (["unrelated", "ml-team"], "researcher"),
])
def test_the_highest_mapped_role_wins(groups, expected):
    assert role_for(groups, ROLE_MAP, default="viewer") == expected


def test_a_mapped_role_below_the_default_is_still_the_mapped_one():
    # the default is for users with no mapped group, not a floor: a mapped "readers" stays a viewer
    assert role_for(["readers"], ROLE_MAP, default="researcher") == "viewer"


@pytest.mark.parametrize("groups", [[], ["unrelated"], ["Avatar-Admins"], ["avatar-admins "]])
def test_unmapped_users_get_the_default_role(groups):
    assert role_for(groups, ROLE_MAP, default="viewer") == "viewer"
    assert role_for(groups, ROLE_MAP, default="researcher") == "researcher"


@pytest.mark.parametrize("groups", [[], ["unrelated"]])
def test_unmapped_users_are_refused_without_a_default_role(groups):
    assert role_for(groups, ROLE_MAP, default=None) is None


def test_an_empty_map_gives_everyone_the_default():
    assert role_for(["avatar-admins"], {}, default="viewer") == "viewer"
    assert role_for(["avatar-admins"], {}, default=None) is None


@pytest.mark.parametrize("claim, expected", [
    (["a", "b"], ["a", "b"]),
    ("a", ["a"]),
    ("", []),
    (None, []),
    (["a", 3, None, "", {"x": 1}, "b"], ["a", "b"]),
    ({"a": True}, []),
    (42, []),
])
def test_groups_from_claim_takes_only_group_names(claim, expected):
    assert groups_from_claim(claim) == expected
