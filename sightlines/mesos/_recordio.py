"""RecordIO framing of the Mesos v1 event stream.

Each record is its length in bytes as ASCII decimal digits, a line feed, then
exactly that many bytes of payload (here: one JSON-encoded event)::

    21\\n{"type":"HEARTBEAT"}

HTTP chunk boundaries carry no meaning: a record may be split over many chunks
and a chunk may hold many records, so the decoder is incremental.

Examples
--------
>>> frame = encode(b'{"type":"HEARTBEAT"}')
>>> frame
b'20\\n{"type":"HEARTBEAT"}'
>>> decoder = RecordIODecoder()
>>> decoder.feed(frame[:5])
[]
>>> decoder.feed(frame[5:] + encode(b"{}"))
[b'{"type":"HEARTBEAT"}', b'{}']
"""

from __future__ import annotations

from .errors import MesosProtocolError

__all__ = ["encode", "RecordIODecoder"]

#: a length prefix longer than this is not a number a sane master would send
_MAX_PREFIX_DIGITS = 20
#: refuse records larger than this (a bug or a stream that is not RecordIO)
DEFAULT_MAX_RECORD_BYTES = 256 * 1024 * 1024


def encode(record: bytes) -> bytes:
    """Frame one record: ``b"<length>\\n<record>"``.

    Parameters
    ----------
    record : bytes
        The payload, e.g. a JSON-encoded event.

    Returns
    -------
    bytes
        The framed record.
    """
    return str(len(record)).encode("ascii") + b"\n" + record


class RecordIODecoder:
    """Incremental decoder: feed it bytes as they arrive, get whole records back.

    Parameters
    ----------
    max_record_bytes : int, default=256 MiB
        Records announcing a larger size raise :class:`MesosProtocolError`.
    """

    def __init__(self, *, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES):
        self.max_record_bytes = max_record_bytes
        self._buffer = bytearray()
        self._expected: int | None = None  # payload size of the record being read

    @property
    def pending_bytes(self) -> int:
        """Bytes received that do not yet form a whole record."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return every record they complete, in order.

        Parameters
        ----------
        data : bytes
            Any slice of the stream.

        Returns
        -------
        list of bytes
            The completed records (possibly empty).

        Raises
        ------
        MesosProtocolError
            If the stream is not valid RecordIO.
        """
        self._buffer += data
        records: list[bytes] = []
        while True:
            if self._expected is None:
                newline = self._buffer.find(b"\n")
                if newline < 0:
                    if len(self._buffer) > _MAX_PREFIX_DIGITS:
                        raise MesosProtocolError(
                            "The master's event stream is not RecordIO: no length prefix in the first "
                            f"{_MAX_PREFIX_DIGITS} bytes ({bytes(self._buffer[:40])!r}). "
                            "Check that the master URL points at a Mesos master."
                        )
                    return records
                prefix = bytes(self._buffer[:newline]).strip()
                del self._buffer[: newline + 1]
                if not prefix:
                    continue  # tolerate blank lines between records
                if not prefix.isdigit() or len(prefix) > _MAX_PREFIX_DIGITS:
                    raise MesosProtocolError(
                        f"The master's event stream is not RecordIO: bad length prefix {prefix[:40]!r}. "
                        "Check that the master URL points at a Mesos master."
                    )
                size = int(prefix)
                if size > self.max_record_bytes:
                    raise MesosProtocolError(
                        f"A record of {size} bytes is larger than the limit of {self.max_record_bytes} bytes."
                    )
                self._expected = size
            if len(self._buffer) < self._expected:
                return records
            records.append(bytes(self._buffer[: self._expected]))
            del self._buffer[: self._expected]
            self._expected = None
