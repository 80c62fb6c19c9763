"""The asyncio event loop a server's ``async def`` methods run on.

A server started with ``start()`` or ``start_in_thread()`` owns one
:class:`LoopThread`, started when its first ``async def`` method is called and
stopped when the server stops. A server run with ``await server.serve()`` uses
the caller's loop instead.
"""

import asyncio
import threading


class LoopThread:
    """An asyncio event loop running forever in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(
            target=self._run, args=(ready,), name="pyrpc-asyncio", daemon=True
        )
        self.thread.start()
        ready.wait()

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(ready.set)
        try:
            self.loop.run_forever()
        finally:
            # Methods still running when the server stopped are cancelled
            # (their `finally` blocks run), then the loop closes.
            tasks = asyncio.all_tasks(self.loop)
            for task in tasks:
                task.cancel()
            if tasks:
                self.loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            self.loop.close()

    def stop(self) -> None:
        """Stops the loop (from any thread); running methods are cancelled."""
        try:
            self.loop.call_soon_threadsafe(self.loop.stop)
        except RuntimeError:
            pass  # already closed
