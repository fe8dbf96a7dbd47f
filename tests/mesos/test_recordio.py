"""RecordIO framing: encode, and decode incrementally whatever the chunk boundaries."""

from __future__ import annotations

import json

import pytest

from sightlines.mesos import MesosProtocolError
from sightlines.mesos._recordio import RecordIODecoder, encode


def test_encode_prefixes_the_byte_length():
    assert encode(b'{"type":"HEARTBEAT"}') == b'20\n{"type":"HEARTBEAT"}'
    assert encode("é".encode()) == b"2\n\xc3\xa9"  # bytes, not characters


def test_decode_records_split_at_every_possible_boundary():
    records = [json.dumps({"type": "UPDATE", "n": i, "pad": "x" * i}).encode() for i in range(5)]
    stream = b"".join(encode(r) for r in records)
    for cut in range(1, len(stream)):
        decoder = RecordIODecoder()
        got = decoder.feed(stream[:cut]) + decoder.feed(stream[cut:])
        assert got == records, cut
        assert decoder.pending_bytes == 0


def test_decode_byte_by_byte_and_many_records_per_chunk():
    records = [b"{}", b'{"a":1}', b"[" + b"1," * 1000 + b"1]"]
    stream = b"".join(encode(r) for r in records)
    decoder = RecordIODecoder()
    got = [record for byte in stream for record in decoder.feed(bytes([byte]))]
    assert got == records
    assert RecordIODecoder().feed(stream) == records


def test_blank_lines_between_records_are_tolerated():
    assert RecordIODecoder().feed(b"\n2\n{}\n\n2\n[]") == [b"{}", b"[]"]


def test_partial_record_waits_for_more_bytes():
    decoder = RecordIODecoder()
    assert decoder.feed(b"10\n12345") == []
    assert decoder.pending_bytes == 5
    assert decoder.feed(b"67890") == [b"1234567890"]


@pytest.mark.parametrize("garbage", [b"HTTP/1.1 200 OK\n", b"12a\n{}", b"-5\nabc"])
def test_not_recordio_is_a_protocol_error(garbage):
    with pytest.raises(MesosProtocolError, match="not RecordIO"):
        RecordIODecoder().feed(garbage)


def test_missing_length_prefix_is_detected_without_a_newline():
    with pytest.raises(MesosProtocolError, match="no length prefix"):
        RecordIODecoder().feed(b"<html><body>not a mesos master</body></html>")


def test_oversized_record_is_refused():
    with pytest.raises(MesosProtocolError, match="larger than the limit"):
        RecordIODecoder(max_record_bytes=10).feed(b"11\n")
