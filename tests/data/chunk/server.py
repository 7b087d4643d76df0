"""A tiny line-based echo server."""

import socket
import threading

DEFAULT_PORT = 7000
MAX_LINE = 4096


class Server:
    """Accepts connections and echoes lines back."""

    backlog: int = 16

    def __init__(self, port: int = DEFAULT_PORT) -> None:
        self.port = port
        self._stop = threading.Event()

    # Connections are served one thread each.
    @staticmethod
    def handle(conn: socket.socket) -> None:
        with conn:
            for line in conn.makefile():
                conn.sendall(line[:MAX_LINE].encode())

    def stop(self) -> None:
        self._stop.set()

    class Stats:
        served: int = 0

        def bump(self) -> None:
            self.served += 1


def serve_forever(server: Server) -> None:
    while not server._stop.is_set():
        server.handle(socket.create_server(("", server.port)).accept()[0])


if __name__ == "__main__":
    serve_forever(Server())
