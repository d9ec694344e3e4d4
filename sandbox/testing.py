"""Helpers for tests (and ``storehub demo``) that run the sandbox in-process over real loopback HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import trio

from sandbox.server import SandboxConfig, SandboxHandle, serve


@asynccontextmanager
async def running_sandbox(
    data_dir: Path, *, seed: str | None = "demo", casing: str = "pascal"
) -> AsyncIterator[SandboxHandle]:
    async with trio.open_nursery() as nursery:
        handle: SandboxHandle = await nursery.start(
            serve, SandboxConfig(data_dir=data_dir, seed=seed, casing=casing)
        )
        try:
            yield handle
        finally:
            nursery.cancel_scope.cancel()


class SandboxAdmin:
    """The ``/_sandbox`` admin endpoints as calls."""

    def __init__(self, url: str) -> None:
        self._http = httpx.AsyncClient(base_url=url, timeout=10.0)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> SandboxAdmin:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        response = await self._http.request(method, path, json=body)
        response.raise_for_status()
        return response.json()

    async def set_faults(self, **settings: Any) -> dict[str, Any]:
        return await self._call("PUT", "/_sandbox/faults", settings)

    async def clear_faults(self) -> dict[str, Any]:
        return await self._call("DELETE", "/_sandbox/faults")

    async def faults(self) -> dict[str, Any]:
        return await self._call("GET", "/_sandbox/faults")

    async def state(self) -> dict[str, Any]:
        return await self._call("GET", "/_sandbox/state")

    async def reset(self, seed: str | None = "demo") -> dict[str, Any]:
        return await self._call("POST", "/_sandbox/reset", {"seed": seed})

    async def upsert_packages(self, packages: list[dict[str, Any]]) -> dict[str, Any]:
        return await self._call("POST", "/_sandbox/packages", packages)

    async def upsert_patients(self, patients: list[dict[str, Any]]) -> dict[str, Any]:
        return await self._call("POST", "/_sandbox/patients", patients)

    async def add_transfer(self, transfer: dict[str, Any]) -> dict[str, Any]:
        return await self._call("POST", "/_sandbox/transfers", transfer)

    async def receive_delivery(self, delivery_id: int, packages: list[dict[str, Any]]) -> dict[str, Any]:
        return await self._call("POST", f"/_sandbox/deliveries/{delivery_id}/receive", {"packages": packages})

    async def set_casing(self, casing: str) -> dict[str, Any]:
        return await self._call("PUT", "/_sandbox/casing", {"casing": casing})

    async def expire_biotrack_sessions(self) -> dict[str, Any]:
        return await self._call("POST", "/_sandbox/biotrack/expire-sessions")
