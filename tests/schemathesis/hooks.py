"""Schemathesis hooks: every generated request is signed in as the role under test.

The session is fetched again every few seconds, so an operation that ends it (signing
out, changing the password's sessions) does not leave the rest of the run anonymous.
"""
import os

import requests
import schemathesis

BASE = os.environ["GATEWARDEN_URL"]
USER = os.environ["ST_USER"]
PASSWORD = os.environ["ST_PASSWORD"]


@schemathesis.auth(refresh_interval=2)
class SignedIn:
    def get(self, case, ctx):
        # From an address of its own (the console trusts this loopback proxy): the
        # generated sign-ins with wrong passwords throttle the address they come from,
        # which must not be the one that signs the test in.
        r = requests.post(
            f"{BASE}/api/v1/session",
            json={"username": USER, "password": PASSWORD},
            headers={"X-Forwarded-For": "192.0.2.19"},
            timeout=10,
        )
        if r.status_code != 200:
            raise RuntimeError(f"signing in as {USER} answered {r.status_code}: {r.text[:300]}")
        return {"cookie": r.cookies.get("gatewarden_session"), "csrf": r.json()["csrf_token"]}

    def set(self, case, data, ctx):
        case.headers = case.headers or {}
        case.headers["Cookie"] = f"gatewarden_session={data['cookie']}"
        case.headers["X-CSRF-Token"] = data["csrf"]


# The accounts the run signs in as keep their passwords and roles: an admin may reset,
# demote or disable any account (and the run, knowing the names from GET /users, does so
# to others), but not the ones the rest of the run needs.
PROTECTED = {"admin", "st-responder", "st-viewer"}


@schemathesis.hook
def filter_path_parameters(ctx, path_parameters):
    return path_parameters is None or path_parameters.get("username") not in PROTECTED
