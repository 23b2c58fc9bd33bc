"""The server answers SCIM over HTTP on both databases."""

import httpx

USER = "urn:ietf:params:scim:schemas:core:2.0:User"


def test_created_user_is_found_by_case_insensitive_user_name(scim: httpx.Client) -> None:
    created = scim.post("/Users", json={"schemas": [USER], "userName": "Alice"})
    assert created.status_code == 201, created.text
    found = scim.get("/Users", params={"filter": 'userName eq "ALICE"'}).json()
    assert found["totalResults"] == 1
    assert found["Resources"][0]["id"] == created.json()["id"]
