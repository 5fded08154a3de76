"""A TCP relay: services that listen on loopback, reachable at another address of this machine."""

import socket
import threading
from contextlib import suppress

ACCEPT_POLL_SECONDS = 0.2
BUFFER = 256 * 1024


class TcpForwarder:
    """Accepts on `listen` and relays every connection, both ways, to `target`; stop() closes them all."""

    def __init__(self, listen: tuple[str, int], target: tuple[str, int]):
        self.listen, self.target = listen, target
        self._server = socket.create_server(listen, reuse_port=False)
        self._server.settimeout(ACCEPT_POLL_SECONDS)
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept, name=f"forward-{listen[0]}:{listen[1]}", daemon=True)

    def start(self) -> "TcpForwarder":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(5)
        self._server.close()
        with self._lock:
            for sock in self._open:
                with suppress(OSError):
                    sock.close()
            self._open.clear()

    def __enter__(self) -> "TcpForwarder":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            with self._lock:
                self._open.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(BUFFER):
                sink.sendall(data)
        except OSError:
            pass
        with suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
        with self._lock:
            # The second direction to finish closes both ends.
            if source in self._open and sink not in self._open:
                self._open.discard(source)
                source.close()
                sink.close()
                return
            self._open.discard(source)
