"""Free TCP ports on the loopback interface, so test servers never collide with each other."""

import socket


def free_port() -> int:
    """Return a port on 127.0.0.1 that was free when asked (the OS picked it for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
