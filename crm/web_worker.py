"""gunicorn's threaded worker with connections spread over the workers and a kept-alive
connection's next request read by the thread that answered the last one
(``gunicorn -k crm.web_worker.KeepAliveThreadWorker``; the API's server in production and
in the benchmarks).

**Spreading connections.** Every worker waits on the one listening socket and whichever
wakes first accepts. Clients that open their connections together (a pool of keep-alive
connections, the benchmarks' 8) then often all land on one worker: measured with gthread
2x4 and 8 connections, all 8 on one worker gave 767 resolves/s (one process, one CPU
under its GIL, p99 93 ms), 6 and 2 or 3 and 5 gave 1,758-1,797/s. Here a worker whose
threads each already have a connection (``nr_conns >= threads``) stops accepting for a
moment (``ACCEPT_YIELD_SECONDS``), so a worker with a free thread takes the new
connection; what is still waiting when the moment ends (every worker is full) is accepted
then, all of it, so a burst of connections waits that moment once, not once each.

**Kept-alive connections.** gunicorn's ``gthread`` hands every request of a kept-alive
connection through its main thread: the answering thread posts the connection back (a
queued callback and a byte on a pipe), the main thread registers it with its poller, wakes
on the next request, unregisters it and submits it to the thread pool again: two thread
hand-offs and several system calls per request. Here the thread that answered waits a
moment (``LINGER_SECONDS``) for that connection's next request and answers it itself,
while no other connection's request is queued for a thread; otherwise, and when the moment
passes, the connection goes back to the main thread as in ``gthread``. So a connection
never holds a thread that another connection's request waits for longer than that moment.
"""

from __future__ import annotations

import select
import threading

from gunicorn.workers.gthread import ThreadWorker

# How long a thread waits for the next request of the connection it just answered. A
# client that sends its next request as soon as it has read the answer (a service calling
# the API in a loop, a pooled keep-alive connection under load) does so well within it.
LINGER_SECONDS = 0.002
# How long a worker whose threads all have a connection leaves a new one to the others.
ACCEPT_YIELD_SECONDS = 0.025


class KeepAliveThreadWorker(ThreadWorker):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._yielding = False

    # ------------------------------------------------------------------ spreading connections

    def accept(self, listener) -> None:
        if self.nr_conns >= self.cfg.threads and not self._yielding:
            self._yielding = True
            super().set_accept_enabled(False)
            # The main thread may sleep in its poller for up to a second: a timer wakes it.
            timer = threading.Timer(
                ACCEPT_YIELD_SECONDS, self.method_queue.defer, args=(self._accept_waiting,)
            )
            timer.daemon = True
            timer.start()
            return
        super().accept(listener)

    def set_accept_enabled(self, enabled: bool) -> None:
        if enabled and self._yielding:
            return  # the run loop asks on every turn; the timer ends the pause
        super().set_accept_enabled(enabled)

    def _accept_waiting(self) -> None:
        """(Main thread, after the pause.) Accepts every connection still waiting: no
        other worker had a free thread for it."""
        self._yielding = False
        if not self.alive:
            return
        for listener in self.sockets:
            while self.nr_conns < self.worker_connections:
                before = self.nr_conns
                super().accept(listener)  # nothing waiting: returns without a connection
                if self.nr_conns == before:
                    break
        self.set_accept_enabled(self.nr_conns < self.worker_connections)

    # ---------------------------------------------------------------- kept-alive connections

    def handle(self, conn):
        keepalive = super().handle(conn)
        while keepalive is True and self.alive and self._next_request_arrives(conn):
            keepalive = super().handle(conn)
        return keepalive

    def _next_request_arrives(self, conn) -> bool:
        """Whether ``conn``'s next request is readable within the linger, this thread
        being free to wait for it (no other request is queued for the pool)."""
        if self.tpool._work_queue.qsize():  # another connection's request is waiting
            return False
        if conn.parser.unreader.buf.getvalue():  # already read ahead
            return True
        poller = select.poll()  # one system call: the wait itself
        poller.register(conn.sock, select.POLLIN)
        return bool(poller.poll(LINGER_SECONDS * 1000))
