"""``openseg serve --demo``: an org, credentials and a ready-to-paste curl."""

from __future__ import annotations

from collections.abc import Callable

from openseg.services import Services
from openseg.store.tenancy import issue_credentials

DEMO_ORG = "demo@AdobeOrg"


def ensure_demo(services: Services, print_to: Callable[[str], None] = print) -> dict[str, str]:
    """Create the demo org and fresh credentials; print them with a curl to try."""
    with services.db.session() as session:
        issued = issue_credentials(session, DEMO_ORG, "prod")
    settings = services.settings
    base = f"http://{settings.host}:{settings.port}"
    print_to("openseg demo ready. Credentials:")
    print_to(f"  export ACCESS_TOKEN={issued.access_token} API_KEY={issued.api_key} IMS_ORG={issued.org_id}")
    print_to("Try:")
    print_to(
        f"  curl -s {base}/data/foundation/catalog/dataSets -H \"Authorization: Bearer $ACCESS_TOKEN\" "
        f"-H \"x-api-key: $API_KEY\" -H \"x-gw-ims-org-id: $IMS_ORG\" -H 'x-sandbox-name: prod'"
    )
    return issued.to_json()
