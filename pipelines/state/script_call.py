"""A Lua script call split in two: sent by one thread, answered on another.

The stream worker records a batch in feature state once the batch ahead has read its
cooldowns. So that the state lane's thread need not wake and win the GIL before the request
goes (docs/design.md, "Stream worker"), the request is packed when the batch is decoded, the
thread that gives the signal sends it (`ScriptCall.start`, one socket write), and the state
lane only reads the answer (`ScriptCall.answer`).

The call is made on a connection of its own, taken from the client's pool when the call is
sent and given back with its answer. It is not retried by the client: a failure reaches
the caller, whose retry runs the script again (a batch recorded already is then answered as
seen, as after any lost reply).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import hiredis
import redis
from redis.commands.core import Script
from redis.connection import Connection
from redis.exceptions import NoScriptError


class ScriptCall:
    """One EVALSHA of ``script`` with ``args``, packed now; sent on a connection of its own,
    held from `start` until the answer is read."""

    def __init__(self, client: redis.Redis, script: Script, args: Sequence[bytes | str | int]):
        self._script = script
        self._args = args
        self._pool = client.connection_pool
        # (hiredis types its argument as a one-element tuple)
        self._packed = hiredis.pack_command(("EVALSHA", script.sha, 0, *args))  # type: ignore[arg-type]
        self._lock = threading.Lock()
        self._connection: Connection | None = None
        self._sent = False
        self._failure: BaseException | None = None

    def start(self) -> None:
        """Send the request, from any thread; once (a second call does nothing)."""
        with self._lock:
            if self._sent:
                return
            self._sent = True
            try:
                self._connection = self._pool.get_connection()
                self._connection.send_packed_command([self._packed])  # type: ignore[no-untyped-call]
            except BaseException as error:  # raised where the answer is read
                self._failure = error

    def answer(self) -> object:
        """The script's reply, the request sent first if nobody has. A server that does not
        know the script yet (restarted, say) ran nothing: it is loaded and called again."""
        self.start()
        connection = self._connection
        try:
            if self._failure is not None:
                raise self._failure
            assert connection is not None
            try:
                return connection.read_response()
            except NoScriptError:
                return self._script(args=self._args)
            except BaseException:
                connection.disconnect()  # type: ignore[no-untyped-call]
                raise
        finally:
            if connection is not None:
                self._pool.release(connection)
