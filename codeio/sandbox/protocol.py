"""Length-prefixed JSON frames over pipes: the only wire format between the
executor, its fork servers and their children (never pickle: the far end may
be hostile)."""

from __future__ import annotations

import json
import os
import select
import struct
import time
from typing import Any

HEADER = struct.Struct(">I")
MAX_FRAME_BYTES = 256 << 20  # default cap: a larger frame is a protocol violation


class ChannelClosed(Exception):
    """The other end closed the pipe (it exited or was killed)."""


class ChannelTimeout(Exception):
    """No complete frame before the deadline."""


class ProtocolError(Exception):
    """The peer sent bytes that are not a valid frame."""


def encode_frame(obj: Any) -> bytes:
    payload = json.dumps(obj, allow_nan=False, separators=(",", ":")).encode("utf-8")
    return HEADER.pack(len(payload)) + payload


def write_frame(fd: int, obj: Any) -> None:
    data = memoryview(encode_frame(obj))
    while data:
        written = os.write(fd, data)
        data = data[written:]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name}")


def _finite_float(text: str) -> float:
    value = float(text)
    if value - value != 0.0:  # inf (overflow): NaN cannot come from a literal
        raise ValueError("float overflow")
    return value


def loads_strict(payload: bytes | str, allow_nan: bool = False) -> Any:
    """json.loads for bytes from a peer that may be hostile: UTF-8, finite numbers
    only (unless ``allow_nan``), and nesting deep enough to exhaust the parser is
    a ProtocolError rather than a RecursionError in the reader."""
    try:
        if allow_nan:
            return json.loads(payload)
        return json.loads(payload, parse_constant=_reject_constant, parse_float=_finite_float)
    except (ValueError, RecursionError, MemoryError) as exc:  # UnicodeDecodeError is a ValueError
        raise ProtocolError(f"bad frame: {type(exc).__name__}: {str(exc)[:100]}") from None


class FrameReader:
    """Incremental frame reader on a (possibly non-blocking) fd with deadlines."""

    def __init__(self, fd: int, max_frame: int = MAX_FRAME_BYTES) -> None:
        self.fd = fd
        self.max_frame = max_frame
        self._buf = bytearray()
        self.eof = False

    def _pop(self) -> Any | None:
        if len(self._buf) < HEADER.size:
            return None
        (length,) = HEADER.unpack_from(self._buf, 0)
        if length > self.max_frame:
            raise ProtocolError(f"frame of {length} bytes")
        end = HEADER.size + length
        if len(self._buf) < end:
            return None
        payload = bytes(self._buf[HEADER.size:end])
        del self._buf[:end]
        return loads_strict(payload)

    def feed_available(self) -> None:
        """Read whatever is readable now without blocking (fd must be non-blocking)."""
        while True:
            try:
                chunk = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                return
            if not chunk:
                self.eof = True
                return
            self._buf += chunk

    def pending(self) -> Any | None:
        return self._pop()

    def read(self, deadline: float | None, extra_fds: tuple[int, ...] = ()) -> Any:
        """Return the next frame; raise ChannelTimeout at ``deadline`` (monotonic),
        ChannelClosed on EOF. If one of ``extra_fds`` becomes readable first,
        raise ChannelClosed too (used with a pidfd: the peer process ended)."""
        while True:
            frame = self._pop()
            if frame is not None:
                return frame
            if self.eof:
                raise ChannelClosed()
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            if timeout == 0.0 and deadline is not None:
                ready, _, _ = select.select([self.fd, *extra_fds], [], [], 0)
                if not ready:
                    raise ChannelTimeout()
            else:
                ready, _, _ = select.select([self.fd, *extra_fds], [], [], timeout)
                if not ready:
                    raise ChannelTimeout()
            if self.fd in ready:
                try:
                    chunk = os.read(self.fd, 1 << 16)
                except BlockingIOError:
                    chunk = None
                if chunk == b"":
                    self.eof = True
                elif chunk:
                    self._buf += chunk
                    if len(self._buf) > self.max_frame + HEADER.size:
                        self._pop()  # raises ProtocolError for an oversized frame
            elif extra_fds:
                # The peer ended: collect what it wrote before it went.
                self.feed_available_nonblocking()
                frame = self._pop()
                if frame is not None:
                    return frame
                raise ChannelClosed()

    def feed_available_nonblocking(self) -> None:
        os.set_blocking(self.fd, False)
        self.feed_available()
