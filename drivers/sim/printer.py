"""A simulated network receipt/label printer on loopback TCP (the raw 9100 port).

It records every byte it is sent (minus status requests), answers ESC/POS ``DLE EOT n`` and Zebra
``~HS`` status requests, and can run out of paper or go off the network.

Control API:
    address                "tcp://127.0.0.1:<port>" for PrinterConfig.address
    received               bytes printed so far (status requests stripped)
    paper_out = True/False         ESC/POS paper out; for a Zebra: media out
    ribbon_out / head_open         Zebra conditions; in any of the three ~HS goes unanswered (as Zebra
                                   documents) and ~HQES reports the error flags
    go_offline() / come_online()    stop listening and drop connections / listen again on the same port
    status_requests        how many status requests it answered
"""

from __future__ import annotations

import trio

from drivers import escpos, zpl

DLE_EOT = b"\x10\x04"


class PrinterSimulator:
    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.received = bytearray()
        self.paper_out = False
        self.ribbon_out = False
        self.head_open = False
        self.status_requests = 0
        self.connections = 0
        self._online = trio.Event()
        self._online.set()
        self._scope: trio.CancelScope | None = None

    @property
    def address(self) -> str:
        return f"tcp://{self.host}:{self.port}"

    @property
    def online(self) -> bool:
        return self._online.is_set()

    def go_offline(self) -> None:
        self._online = trio.Event()
        if self._scope is not None:
            self._scope.cancel()

    def come_online(self) -> None:
        self._online.set()

    async def run(self, *, task_status: trio.TaskStatus[PrinterSimulator] = trio.TASK_STATUS_IGNORED) -> None:
        started = False
        while True:
            await self._online.wait()
            listeners = await trio.open_tcp_listeners(self.port, host=self.host)
            self.port = listeners[0].socket.getsockname()[1]  # keep the same port across restarts
            with trio.CancelScope() as scope:
                self._scope = scope
                async with trio.open_nursery() as nursery:
                    await nursery.start(trio.serve_listeners, self._serve, listeners)
                    if not started:
                        started = True
                        task_status.started(self)
            self._scope = None
            for listener in listeners:
                await listener.aclose()

    async def _serve(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        buf = bytearray()
        async with stream:
            while True:
                try:
                    data = await stream.receive_some(65536)
                except trio.BrokenResourceError:
                    return
                if not data:
                    return
                buf += data
                answers = self._consume(buf)
                if answers:
                    try:
                        await stream.send_all(answers)
                    except trio.BrokenResourceError:
                        return

    def _consume(self, buf: bytearray) -> bytes:
        """Record print data, answer status requests (taken out of the stream, as a printer does)."""
        answers = bytearray()
        while buf:
            i = buf.find(DLE_EOT)
            j = buf.find(zpl.HOST_STATUS_REQUEST)
            q = buf.find(zpl.HOST_ERROR_QUERY)
            cut = min(x for x in (i, j, q, len(buf)) if x >= 0)
            if cut == len(buf):
                # hold back a request split across two reads
                for k in (4, 3, 2, 1):
                    if buf[-k:] in (DLE_EOT[:k], zpl.HOST_STATUS_REQUEST[:k], zpl.HOST_ERROR_QUERY[:k]):
                        cut -= k
                        break
                if cut == 0:
                    break
            self.received += buf[:cut]
            del buf[:cut]
            if not buf:
                break
            if buf.startswith(DLE_EOT):
                if len(buf) < 3:
                    break  # wait for n
                n = buf[2]
                del buf[:3]
                self.status_requests += 1
                if n == 4:
                    answers.append(escpos.paper_status_byte(paper_out=self.paper_out))
                elif n == 1:
                    answers.append(0x16)  # online, drawer pin low
                else:
                    answers.append(0x12 | (0x20 if self.paper_out else 0))
            elif buf.startswith(zpl.HOST_STATUS_REQUEST):
                del buf[: len(zpl.HOST_STATUS_REQUEST)]
                self.status_requests += 1
                if not (self.paper_out or self.ribbon_out or self.head_open):
                    answers += zpl.host_status_answer()
                # else: silent, as the ZPL Programming Guide says of ~HS in these conditions
            elif buf.startswith(zpl.HOST_ERROR_QUERY):
                del buf[: len(zpl.HOST_ERROR_QUERY)]
                self.status_requests += 1
                answers += zpl.error_status_answer(
                    media_out=self.paper_out, ribbon_out=self.ribbon_out, head_open=self.head_open
                )
            else:
                break
        return bytes(answers)
