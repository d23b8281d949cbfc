"""Block headers hash as Fabric hashes them: SHA-256 of the ASN.1 DER of (number, previous hash,
data hash) — checked against a general DER encoder over the whole range of block numbers."""

from __future__ import annotations

import hashlib

import pytest
from asn1crypto import core as asn1
from fabric_protos.common import common_pb2

from network.protocol import block_header_bytes, block_header_hash


class _Header(asn1.Sequence):
    _fields = [("number", asn1.Integer), ("previous_hash", asn1.OctetString), ("data_hash", asn1.OctetString)]


@pytest.mark.parametrize("number", [0, 1, 127, 128, 255, 256, 32767, 32768, 65535, 65536, 2**31, 2**63 - 1, 2**63,
                                    2**64 - 1])
@pytest.mark.parametrize("hashes", [(b"", b""), (b"p" * 32, b"d" * 32), (b"p" * 127, b"d" * 128),
                                    (b"p" * 300, b"d" * 70000)])
def test_header_bytes_are_the_der_of_number_and_hashes(number, hashes):
    prev, data = hashes
    header = common_pb2.BlockHeader(number=number, previous_hash=prev, data_hash=data)
    expected = _Header({"number": number, "previous_hash": prev, "data_hash": data}).dump()
    assert block_header_bytes(header) == expected
    assert block_header_hash(header) == hashlib.sha256(expected).digest()
