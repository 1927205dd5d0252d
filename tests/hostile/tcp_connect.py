import socket

def main_solution(port):
    sock = socket.create_connection(("127.0.0.1", port), timeout=2)
    sock.sendall(b"escaped")
    sock.close()
    return "connected"
