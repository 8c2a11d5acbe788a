"""The Anthropic Messages API upstream (also `gatehouse sim`), over one pooled aiohttp session.

Foreign exceptions are mapped here, at the boundary, onto Gatehouse's own:
a refused or failed connection is `UpstreamUnreachable` (502), waiting too long
for response headers is `UpstreamTimeout` (504).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from gatehouse.errors import UpstreamTimeout, UpstreamUnreachable

# Never forwarded in either direction (RFC 9110 §7.6.1), plus those the
# transport recomputes.  Content-Encoding is dropped because the client session
# decompresses what it reads.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "content-encoding",
    }
)


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    base_url: str
    api_key: str = ""
    connect_timeout: float = 10.0
    header_timeout: float = 600.0
    idle_timeout: float = 600.0
    max_connections: int = 1000


class UpstreamResponse:
    """A response whose body is read as it arrives."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.headers = response.raw_headers

    def header(self, name: str) -> str:
        return self._response.headers.get(name, "")

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives; a lost or silent upstream raises a `GatewayError`."""
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except TimeoutError as exc:
            raise UpstreamTimeout("upstream stream went silent for too long") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamUnreachable(f"upstream connection lost: {type(exc).__name__}") from exc

    async def read(self) -> bytes:
        try:
            return await self._response.read()
        except TimeoutError as exc:
            raise UpstreamTimeout("upstream response body timed out") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamUnreachable(f"upstream connection lost: {type(exc).__name__}") from exc

    def close(self) -> None:
        self._response.close()


class AnthropicUpstream:
    def __init__(self, config: UpstreamConfig) -> None:
        self.config = config
        self._base = config.base_url.rstrip("/")
        # What error messages name: the URL without any credentials in it.
        self.display_url = str(URL(self._base).with_user(None))
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=self.config.max_connections, ttl_dns_cache=300, enable_cleanup_closed=True
        )
        timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=self.config.connect_timeout,
            sock_read=self.config.idle_timeout,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            auto_decompress=True,
            skip_auto_headers=("User-Agent",),
            # One session serves every developer: a cookie the upstream sets for one
            # request must not ride along on anyone else's.
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def send(
        self,
        method: str,
        path_and_query: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
    ) -> UpstreamResponse:
        """Send a request; returns once the upstream's status and headers arrived."""
        assert self._session is not None, "AnthropicUpstream.start() was not awaited"
        outgoing: CIMultiDict[str] = CIMultiDict(headers)
        if self.config.api_key:
            outgoing["x-api-key"] = self.config.api_key
        url = self._base + path_and_query
        try:
            async with asyncio.timeout(self.config.header_timeout):
                response = await self._session.request(
                    method, url, headers=outgoing, data=body or None, allow_redirects=False
                )
        except TimeoutError as exc:
            raise UpstreamTimeout(
                f"upstream did not answer within {self.config.header_timeout:g}s "
                f"({self.display_url})"
            ) from exc
        except aiohttp.ClientError as exc:
            raise UpstreamUnreachable(
                f"upstream unreachable: {self.display_url} ({type(exc).__name__})"
            ) from exc
        return UpstreamResponse(response)


def forwardable(
    headers: Sequence[tuple[bytes, bytes]], *, drop: frozenset[str]
) -> list[tuple[str, str]]:
    """Request headers to send upstream: all but hop-by-hop ones and ``drop``."""
    out = []
    for raw_name, raw_value in headers:
        name = raw_name.decode("latin-1").lower()
        if name in HOP_BY_HOP or name in drop or name.startswith("x-gatehouse-"):
            continue
        out.append((name, raw_value.decode("latin-1")))
    return out
