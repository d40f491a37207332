"""IAM authentication to ElastiCache for Valkey: no password exists to leak or rotate.

Each new connection signs a short-lived token (SigV4 presigned `connect` request, valid 15 minutes)
with the task role's credentials; ElastiCache checks it against the user (user id = user name) and
the role's `elasticache:Connect` permission. ElastiCache closes IAM connections after 12 hours, and
the client reconnects with a fresh token. See AWS "Authenticating with IAM" for ElastiCache.
"""

from __future__ import annotations

from urllib.parse import urlencode

import botocore.session
from botocore.model import ServiceId
from botocore.signers import RequestSigner
from redis.credentials import CredentialProvider

TOKEN_SECONDS = 900


class ElastiCacheIamCredentials(CredentialProvider):
    """redis-py credential provider: (user, signed token) for every connection it opens."""

    def __init__(self, *, user_id: str, cache_name: str, region: str, serverless: bool = True) -> None:
        self.user_id = user_id
        self.cache_name = cache_name
        self.region = region
        self.serverless = serverless
        self._session = botocore.session.get_session()

    def token(self) -> str:
        credentials = self._session.get_credentials()
        signer = RequestSigner(ServiceId("elasticache"), self.region, "elasticache", "v4", credentials,
                               self._session.get_component("event_emitter"))
        query = {"Action": "connect", "User": self.user_id}
        if self.serverless:
            query["ResourceType"] = "ServerlessCache"
        request = {"method": "GET", "url": f"https://{self.cache_name}/?{urlencode(query)}", "body": {},
                   "headers": {}, "context": {}}
        signed = signer.generate_presigned_url(request, operation_name="connect", expires_in=TOKEN_SECONDS,
                                               region_name=self.region)
        return signed.removeprefix("https://")

    def get_credentials(self) -> tuple[str, str]:
        return self.user_id, self.token()

    async def get_credentials_async(self) -> tuple[str, str]:
        return self.get_credentials()
