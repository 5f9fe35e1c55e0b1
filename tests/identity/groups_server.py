"""An in-process Cloud Identity Groups API over real HTTP: the OAuth token endpoint a service
account's credentials refresh against (JWT bearer grant, signature checked), and
GET /v1/groups/-/memberships:searchTransitiveGroups answering from `memberships`, in pages.

`service_account_info()` is a service-account key file whose token_uri points here, so the
control plane's own google.auth.default() + AuthorizedSession path runs unchanged."""

import json
import re
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.background_server import serve_in_background

SEARCH_PATH = "/v1/groups/-/memberships:searchTransitiveGroups"
QUERY = re.compile(r"^member_key_id == '([^']+)' && '([^']+)' in labels$")
GROUP_LABEL = "cloudidentity.googleapis.com/groups.discussion_forum"
# google-auth signs its grant for Google's token endpoint whatever the key file's token_uri says.
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
CLIENT_EMAIL = "controlplane@test-project.iam.gserviceaccount.com"


class GroupsServer:
    def __init__(self):
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.memberships: dict[str, list[str]] = {}  # member e-mail -> group e-mails (transitive)
        self.page_size = 1000  # the most the server returns per page, whatever is asked
        self.fail_with: tuple[int, dict] | None = None  # (status, body) for every search
        self.delay_seconds = 0.0  # before answering a search
        self.searches: list[dict] = []  # query parameters of each search received
        self.token_requests: list[dict] = []  # claims of each token grant
        self._tokens: set[str] = set()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status: int, body: dict):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting
                    pass

            def do_POST(self):
                form = parse_qs(self.rfile.read(int(self.headers.get("Content-Length", 0))).decode())
                self._send(*server.grant(form))

            def do_GET(self):
                url = urlparse(self.path)
                if url.path != SEARCH_PATH:
                    self._send(404, {"error": {"code": 404, "message": f"no such method {url.path}"}})
                    return
                self._send(*server.search(self.headers.get("Authorization", ""), parse_qs(url.query)))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        serve_in_background(self.server)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def service_account_info(self) -> dict:
        pem = self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return {
            "type": "service_account",
            "project_id": "test-project",
            "private_key_id": "test-key",
            "private_key": pem.decode(),
            "client_email": CLIENT_EMAIL,
            "client_id": "1",
            "token_uri": f"{self.url}/token",
        }

    def grant(self, form: dict) -> tuple[int, dict]:
        if form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"]:
            return 400, {"error": "unsupported_grant_type"}
        try:
            claims = jwt.decode(
                form["assertion"][0], self.key.public_key(), algorithms=["RS256"], audience=GOOGLE_TOKEN_AUDIENCE
            )
        except (KeyError, jwt.PyJWTError) as exc:
            return 400, {"error": "invalid_grant", "error_description": str(exc)}
        self.token_requests.append(claims)
        token = f"ya29.test-{len(self.token_requests)}"
        self._tokens.add(token)
        return 200, {"access_token": token, "expires_in": 3600, "token_type": "Bearer"}

    def search(self, authorization: str, params: dict) -> tuple[int, dict]:
        self.searches.append({name: values[0] for name, values in params.items()})
        if self.delay_seconds:
            time.sleep(self.delay_seconds)
        if authorization.removeprefix("Bearer ") not in self._tokens:
            return 401, {"error": {"code": 401, "message": "Request had invalid authentication credentials."}}
        if self.fail_with:
            return self.fail_with
        match = QUERY.match(params.get("query", [""])[0])
        if not match or match.group(2) != GROUP_LABEL:
            return 400, {"error": {"code": 400, "message": "query must name the member and a label"}}
        groups = sorted(self.memberships.get(match.group(1), []))
        size = min(self.page_size, int(params.get("pageSize", ["200"])[0]))
        start = int(params.get("pageToken", ["0"])[0])
        page = groups[start : start + size]
        body = {
            "memberships": [
                {
                    "group": f"groups/id-{group.partition('@')[0]}",
                    "groupKey": {"id": group},
                    "displayName": group.partition("@")[0],
                    "relationType": "DIRECT",
                }
                for group in page
            ]
        }
        if start + size < len(groups):
            body["nextPageToken"] = str(start + size)
        return 200, body
