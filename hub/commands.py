"""The request a command handler receives, and how a handler commits with its reply.

A handler is ``async def handle(req: Request, msg) -> result``. Handlers that change the store call
``await req.commit(fn)``: ``fn(txn)`` runs in the single writer's transaction and its result becomes the
reply, stored in the same transaction under the register and message id, so a retried id (after a
reconnect) is answered from the stored reply and never applied twice.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import lmdb

from hub.access import ROLE_RANK, StaffSession
from hub.errors import Forbidden
from hub.live.frames import Command, Ok, encode_bytes
from hub.live.replies import Replies, encode_stored_reply, reply_key

if TYPE_CHECKING:
    from actors.register import RegisterActor, RegisterParts
    from hub.app import Hub
    from hub.config import StoreConfig
    from hub.metrics import Metrics
    from hub.services import Services
    from hub.store.env import Store
    from hub.store.writer import StoreWriter


@dataclass(kw_only=True)
class Request:
    """One command, with what its handler may use: the store and its writer, the configuration, the
    hub's services and metrics, the registers (its own is ``req.register``) and the staff sessions
    table (a login adds to it, a logout drops from it). Not the hub itself."""

    msg: Command
    register_id: str
    session: StaffSession | None
    store: Store
    writer: StoreWriter
    config: StoreConfig
    services: Services
    metrics: Metrics
    registers: Mapping[str, RegisterActor]
    sessions: dict[bytes, StaffSession]
    replies: Replies
    committed_frame: bytes | None = None
    fingerprint: bytes = b""

    @classmethod
    def for_hub(
        cls,
        hub: Hub | RegisterParts,
        msg: Command,
        register_id: str,
        session: StaffSession | None,
        fingerprint: bytes = b"",
    ) -> Request:
        """The request for a command of ``register_id`` on a running hub (its store open)."""
        return cls(
            msg=msg,
            register_id=register_id,
            session=session,
            store=hub.store,
            writer=hub.writer,
            config=hub.config,
            services=hub.services,
            metrics=hub.metrics,
            registers=hub.registers,
            sessions=hub.sessions,
            replies=hub.replies,
            fingerprint=fingerprint,
        )

    @property
    def register(self) -> RegisterActor:
        """The actor of the register this command came from."""
        return self.registers[self.register_id]

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
        store = self.store
        key = reply_key(self.register_id, self.msg.id)
        msg_id = self.msg.id
        fp = self.fingerprint

        def apply(txn: lmdb.Transaction) -> tuple[Any, bytes]:
            result = fn(txn)
            frame = encode_bytes(Ok(id=msg_id, result=result))
            txn.put(key, encode_stored_reply(frame, fp), db=store.db("replies"))
            return result, frame

        result, frame = await self.writer.write(apply, label=label or type(self.msg).__name__)
        self.committed_frame = frame
        return result

    async def commit_behind(
        self,
        fn: Callable[[lmdb.Transaction], Any],
        result: Any,
        *,
        label: str = "",
        state_key: Hashable | None = None,
    ) -> Any:
        """Like ``commit`` for a cart being built, answered before the fsync: the register must not wait
        on the disk for every scan (bench/: an fsync is 3x a WebSocket round trip). Until the commit lands
        the reply is kept in memory, so a retried id is still answered, never applied twice; a crash before
        it lands (the writer gathers write-behind requests for up to ``StoreWriter.linger``, 20 ms) loses
        the edit and its reply together, and the register's snapshot shows it.

        ``state_key``: ``fn`` writes the whole of one state under that key (the register's cart), so when
        a later save of it follows in the same batch, this one's ``fn`` is skipped; its reply is stored all
        the same (see :func:`hub.store.writer.superseded`)."""
        replies = self.replies
        key = reply_key(self.register_id, self.msg.id)
        frame = encode_bytes(Ok(id=self.msg.id, result=result))
        fp = self.fingerprint
        replies.pending[key] = (frame, fp)
        # no closure around fn: the writer puts the stored reply after it (and alone when fn is skipped)
        await self.writer.write_behind(
            fn,
            label=label or type(self.msg).__name__,
            on_done=functools.partial(replies.landed, key),
            put=(self.store.db("replies"), key, encode_stored_reply(frame, fp)),
            state_key=state_key,
        )
        self.committed_frame = frame
        return result
