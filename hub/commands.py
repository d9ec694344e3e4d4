"""The request a command handler receives, and how a handler commits with its reply.

A handler is ``async def handle(req: Request, msg) -> result``. Handlers that change the store call
``await req.commit(fn)``: ``fn(txn)`` runs in the single writer's transaction and its result becomes the
reply, stored in the same transaction under the register and message id, so a retried id (after a
reconnect) is answered from the stored reply and never applied twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import lmdb
import msgspec

from hub.access import ROLE_RANK, StaffSession
from hub.errors import Forbidden
from hub.live.frames import Command, Ok, encode_bytes
from hub.live.replies import StoredReply, reply_key

if TYPE_CHECKING:
    from hub.app import Hub


@dataclass
class Request:
    hub: Hub
    msg: Command
    register_id: str
    session: StaffSession | None
    committed_frame: bytes | None = None
    fingerprint: bytes = b""

    @property
    def staff_id(self) -> str:
        return self.session.staff_id if self.session else ""

    @property
    def role(self) -> str:
        return self.session.role if self.session else ""

    def require(self, role: str, what: str) -> None:
        if ROLE_RANK.get(self.role, 0) < ROLE_RANK[role]:
            raise Forbidden(f"{what} needs a {role} or above.")

    async def commit(self, fn: Callable[[lmdb.Transaction], Any], *, label: str = "") -> Any:
        """Apply ``fn`` durably; its result is this request's reply (stored for retries)."""
        store = self.hub.store
        key = reply_key(self.register_id, self.msg.id)
        msg_id = self.msg.id
        fp = self.fingerprint

        def apply(txn: lmdb.Transaction) -> tuple[Any, bytes]:
            result = fn(txn)
            frame = encode_bytes(Ok(id=msg_id, result=result))
            txn.put(
                key,
                msgspec.msgpack.encode(StoredReply(at=datetime.now(UTC), frame=frame, fingerprint=fp)),
                db=store.db("replies"),
            )
            return result, frame

        result, frame = await self.hub.writer.write(apply, label=label or type(self.msg).__name__)
        self.committed_frame = frame
        return result

    async def commit_behind(
        self, fn: Callable[[lmdb.Transaction], Any], result: Any, *, label: str = ""
    ) -> Any:
        """Like ``commit`` for a cart being built, answered before the fsync: the register must not wait
        on the disk for every scan (bench/: an fsync is 3x a WebSocket round trip). Until the commit lands
        the reply is kept in memory, so a retried id is still answered, never applied twice; a crash before
        it lands (the writer gathers write-behind requests for up to ``StoreWriter.linger``, 20 ms) loses
        the edit and its reply together, and the register's snapshot shows it."""
        store = self.hub.store
        key = reply_key(self.register_id, self.msg.id)
        frame = encode_bytes(Ok(id=self.msg.id, result=result))
        fp = self.fingerprint
        pending = self.hub.replies.pending
        pending[key] = (frame, fp)

        def apply(txn: lmdb.Transaction) -> None:
            fn(txn)
            txn.put(
                key,
                msgspec.msgpack.encode(StoredReply(at=datetime.now(UTC), frame=frame, fingerprint=fp)),
                db=store.db("replies"),
            )

        def landed(_outcome: Any) -> None:
            pending.pop(key, None)

        await self.hub.writer.write_behind(apply, label=label or type(self.msg).__name__, on_done=landed)
        self.committed_frame = frame
        return result
