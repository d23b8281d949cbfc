"""Content-addressed stores for encrypted blobs (scans, documents).

The vault encrypts a blob under its patient's data key *before* it reaches a store, so a store
— a directory, or an IPFS node whose content may be replicated anywhere — only ever holds
ciphertext. Addresses are derived from that ciphertext: the SHA-256 hex for the filesystem
store, the CID for IPFS. The vault keeps the SHA-256 of the stored bytes as well and checks it
on every read, whatever the store says.

IPFS is reached through the kubo RPC API over HTTP (``/api/v0/add``, ``/cat``, ``/pin/add``,
``/pin/rm``, ``/version``; kubo requires POST for every call). ``ipfshttpclient`` is not used:
it refuses every kubo daemon ≥ 0.8.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from pathlib import Path
from typing import Protocol, runtime_checkable

import httpx

from network import write_private_file

from .errors import BlobNotFound, BlobStoreError

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


@runtime_checkable
class BlobStore(Protocol):
    name: str

    def put(self, data: bytes) -> str:
        """Store bytes; return their content address. Storing the same bytes twice is harmless."""
        ...

    def get(self, address: str) -> bytes:
        ...

    def exists(self, address: str) -> bool:
        ...

    def remove(self, address: str) -> None:
        """Forget the bytes (unpin on IPFS). Idempotent."""
        ...


class FilesystemBlobStore:
    """Blobs as files named by their SHA-256 under a directory (two levels of fan-out)."""

    name = "fs"

    def __init__(self, root: Path):
        self.root = Path(root)

    def _path(self, address: str) -> Path:
        if not _SHA256_RE.match(address):
            raise BlobNotFound(f"{address!r} is not a filesystem blob address")
        return self.root / address[:2] / address[2:4] / address

    def put(self, data: bytes) -> str:
        address = hashlib.sha256(data).hexdigest()
        path = self._path(address)
        if path.exists():
            return address
        try:
            write_private_file(path, data)
        except OSError as exc:
            raise BlobStoreError(f"cannot write blob under {self.root}: {exc.strerror or exc}") from exc
        return address

    def get(self, address: str) -> bytes:
        try:
            return self._path(address).read_bytes()
        except FileNotFoundError:
            raise BlobNotFound(f"blob {address} is not in {self.root}") from None
        except OSError as exc:
            raise BlobStoreError(f"cannot read blob {address}: {exc.strerror or exc}") from exc

    def exists(self, address: str) -> bool:
        return self._path(address).exists()

    def remove(self, address: str) -> None:
        self._path(address).unlink(missing_ok=True)


class IpfsBlobStore:
    """Blobs on an IPFS node through the kubo RPC API (CIDv1, pinned, SHA-256)."""

    name = "ipfs"

    def __init__(self, api: str, *, timeout: float = 30.0, client: httpx.Client | None = None):
        self.api = api.rstrip("/")
        if not self.api.endswith("/api/v0"):
            self.api += "/api/v0"
        self._client = client or httpx.Client(timeout=timeout)

    def _call(self, endpoint: str, params: dict[str, str] | None = None, files=None) -> httpx.Response:
        try:
            resp = self._client.post(f"{self.api}/{endpoint}", params=params, files=files)
        except httpx.HTTPError as exc:
            raise BlobStoreError(f"IPFS API {self.api} unreachable: {exc}") from exc
        if resp.status_code != 200:
            message = resp.text.strip()
            with contextlib.suppress(ValueError):
                message = resp.json().get("Message", message)
            if resp.status_code == 500 and ("not found" in message or "no link named" in message):
                raise BlobNotFound(f"IPFS: {message}")
            raise BlobStoreError(f"IPFS {endpoint} failed ({resp.status_code}): {message[:200]}")
        return resp

    def version(self) -> str:
        return str(self._call("version").json().get("Version", ""))

    def put(self, data: bytes) -> str:
        resp = self._call("add", {"pin": "true", "cid-version": "1", "cid-base": "base32", "hash": "sha2-256",
                                  "quieter": "true"},
                          files={"file": ("blob", data, "application/octet-stream")})
        try:
            return str(resp.json()["Hash"])
        except (ValueError, KeyError) as exc:
            raise BlobStoreError(f"IPFS add returned no CID: {resp.text[:200]}") from exc

    def get(self, address: str) -> bytes:
        return self._call("cat", {"arg": address}).content

    def exists(self, address: str) -> bool:
        try:
            self._call("pin/ls", {"arg": address, "type": "recursive"})
        except (BlobNotFound, BlobStoreError):
            return False
        return True

    def remove(self, address: str) -> None:
        try:
            self._call("pin/rm", {"arg": address})
        except BlobStoreError as exc:
            if "not pinned" not in str(exc):
                raise

    def close(self) -> None:
        self._client.close()
