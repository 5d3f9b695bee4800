"""Attack (on a buyer, by anyone signed in): list or revoke another account's package keys through
/one/keys (or replace one, which would hand over a working key), or use one leaked package key to revoke its owner's other keys.

Defence: only the owner's Sign-In with Ethereum session lists and revokes, and only its own keys; another
account's key id is answered as a missing one (404) and keeps working. A revoked key gets 401 on /v1."""

from __future__ import annotations

from backend.access import auth


def _bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def test_a_stranger_revokes_someone_elses_package_key(money):
    buyer, stranger = money.wallets[0], money.wallets[1]
    owner_session = money.sign_in(buyer)
    bought = money.buy(owner_session, money.pay(buyer, money.packages.get("pro").price))
    assert bought.status_code == 200, bought.json()
    package_key = bought.json()["api_key"]
    key_id = auth.hash_key(package_key)

    listed = money.http.get("/one/keys", headers=_bearer(owner_session))
    assert listed.status_code == 200 and [k["id"] for k in listed.json()["data"]] == [key_id]
    assert listed.json()["balance"] == money.packages.get("pro").balance

    thief = money.sign_in(stranger)
    assert money.http.get("/one/keys", headers=_bearer(thief)).json()["data"] == []  # sees none of the buyer's keys
    for action in ("revoke", "replace"):  # replacing would also hand the thief a working key to the buyer's package
        stolen = money.http.post(f"/one/keys/{key_id}/{action}", headers=_bearer(thief))
        assert stolen.status_code == 404 and stolen.json()["error"]["code"] == "key_not_found"
    assert auth.principal_for(package_key).package == "pro"  # still works

    # a package key (leaked, say) may neither list nor revoke: only the wallet's sign-in session manages keys
    for reply in (money.http.get("/one/keys", headers=_bearer(package_key)),
                  money.http.post(f"/one/keys/{key_id}/revoke", headers=_bearer(package_key)),
                  money.http.post(f"/one/keys/{key_id}/replace", headers=_bearer(package_key))):  # fmt: skip
        assert reply.status_code == 403 and reply.json()["error"]["code"] == "session_required"
    assert money.http.get("/one/keys").status_code == 401
    assert money.http.post(f"/one/keys/{'x' * 64}/revoke", headers=_bearer(owner_session)).status_code == 400  # ids are hex hashes

    # The owner swaps the leaked key: the old one stops, the new one runs on the same package until the same end.
    old = auth.principal_for(package_key)
    swapped = money.http.post(f"/one/keys/{key_id}/replace", headers=_bearer(owner_session))
    assert swapped.status_code == 200, swapped.json()
    assert auth.principal_for(package_key) is None
    fresh = auth.principal_for(swapped.json()["api_key"])
    assert (fresh.account, fresh.package, fresh.expires_at) == (old.account, old.package, old.expires_at)
    package_key, key_id = swapped.json()["api_key"], swapped.json()["new_id"]
    assert [k["id"] for k in money.http.get("/one/keys", headers=_bearer(owner_session)).json()["data"]] == [key_id]

    revoked = money.http.post(f"/one/keys/{key_id}/revoke", headers=_bearer(owner_session))
    assert revoked.status_code == 200 and revoked.json() == {"id": key_id, "revoked": True}
    assert auth.principal_for(package_key) is None
    assert money.http.get("/one/auth/me", headers=_bearer(package_key)).status_code == 401
    assert money.http.get("/one/keys", headers=_bearer(owner_session)).json()["data"] == []
    assert money.http.post(f"/one/keys/{key_id}/revoke", headers=_bearer(owner_session)).status_code == 404
