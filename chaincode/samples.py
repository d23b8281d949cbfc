"""A small key-value chaincode: the workload of the ledger benchmark and the node's smoke tests.

``AssetContract`` keeps JSON assets under composite keys (``asset``, owner, id) so that writers of
different owners never touch the same key, and a ``counter`` per key to exercise read-write
conflicts. It is deliberately thin, like fabric-samples' asset-transfer.
"""

from __future__ import annotations

import json

from .contract import Chaincode, Context, Contract, InvalidArgument, NotFound, evaluate, transaction


class AssetContract(Contract):
    name = "AssetContract"

    @staticmethod
    def _key(ctx: Context, owner: str, asset_id: str) -> str:
        return ctx.stub.create_composite_key("asset", [owner, asset_id])

    @transaction
    def Put(self, ctx: Context, owner: str, asset_id: str, value: dict) -> dict:
        """Create or replace an asset (a read-write transaction: it reads the old version)."""
        if not owner or not asset_id:
            raise InvalidArgument("owner and asset_id must not be empty")
        key = self._key(ctx, owner, asset_id)
        old = ctx.stub.get_state(key)
        version = (json.loads(old)["version"] + 1) if old else 1
        doc = {"owner": owner, "id": asset_id, "value": value, "version": version, "tx": ctx.stub.get_tx_id()}
        ctx.stub.put_state(key, json.dumps(doc, sort_keys=True).encode())
        ctx.stub.set_event("AssetPut", json.dumps({"owner": owner, "id": asset_id, "version": version}).encode())
        return doc

    @transaction
    def Increment(self, ctx: Context, counter: str, by: int) -> int:
        cur = ctx.stub.get_state("counter/" + counter)
        n = int(cur) + by if cur else by
        ctx.stub.put_state("counter/" + counter, str(n).encode())
        return n

    @transaction
    def Delete(self, ctx: Context, owner: str, asset_id: str) -> None:
        key = self._key(ctx, owner, asset_id)
        if ctx.stub.get_state(key) is None:
            raise NotFound(f"asset {owner}/{asset_id} does not exist")
        ctx.stub.del_state(key)

    @transaction
    def TransferAll(self, ctx: Context, owner: str, new_owner: str) -> int:
        """Move every asset of ``owner``: a range query, so concurrent inserts are phantom reads."""
        moved = 0
        for kv in ctx.stub.get_state_by_partial_composite_key("asset", [owner]):
            doc = json.loads(kv.value)
            doc["owner"] = new_owner
            ctx.stub.del_state(kv.key)
            ctx.stub.put_state(self._key(ctx, new_owner, doc["id"]), json.dumps(doc, sort_keys=True).encode())
            moved += 1
        return moved

    @evaluate
    def Get(self, ctx: Context, owner: str, asset_id: str) -> dict:
        raw = ctx.stub.get_state(self._key(ctx, owner, asset_id))
        if raw is None:
            raise NotFound(f"asset {owner}/{asset_id} does not exist")
        return json.loads(raw)

    @evaluate
    def GetCounter(self, ctx: Context, counter: str) -> int:
        cur = ctx.stub.get_state("counter/" + counter)
        return int(cur) if cur else 0

    @evaluate
    def List(self, ctx: Context, owner: str, page_size: int, bookmark: str) -> dict:
        page = ctx.stub.get_state_by_partial_composite_key_with_pagination("asset", [owner], page_size, bookmark)
        return {"assets": [json.loads(kv.value) for kv in page.records], "bookmark": page.bookmark}

    @evaluate
    def History(self, ctx: Context, owner: str, asset_id: str) -> list:
        return [
            {"tx_id": m.tx_id, "deleted": m.is_delete, "value": json.loads(m.value) if m.value else None,
             "timestamp": m.timestamp.isoformat()}
            for m in ctx.stub.get_history_for_key(self._key(ctx, owner, asset_id))
        ]

    @evaluate
    def WhoAmI(self, ctx: Context) -> dict:
        c = ctx.client_identity
        return {"msp_id": c.get_msp_id(), "id": c.get_id(), "role": c.node_role, "attrs": c.attributes,
                "transient": sorted(ctx.stub.get_transient())}


def assets_chaincode() -> Chaincode:
    return Chaincode(AssetContract())
