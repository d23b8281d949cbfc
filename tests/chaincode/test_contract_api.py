"""The contract API's dispatch, argument conversion and errors, on a stub kept in memory."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import pytest

from chaincode import (
    KV,
    Chaincode,
    ChaincodeStub,
    ClientIdentity,
    Contract,
    Forbidden,
    QueryPage,
    StubError,
    create_composite_key,
    evaluate,
    split_composite_key,
    transaction,
)


class MemoryStub(ChaincodeStub):
    def __init__(self, args):
        self.args = [a if isinstance(a, bytes) else a.encode() for a in args]
        self.state: dict[str, bytes] = {}

    def get_args(self):
        return self.args

    def get_tx_id(self):
        return "tx1"

    def get_channel_id(self):
        return "ch"

    def get_tx_timestamp(self):
        return dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

    def get_creator(self) -> ClientIdentity:
        raise NotImplementedError

    def get_transient(self):
        return {}

    def set_event(self, name, payload):
        self.event = (name, payload)

    def get_state(self, key):
        return self.state.get(key)

    def put_state(self, key, value):
        self.state[key] = value

    def del_state(self, key):
        self.state.pop(key, None)

    def get_state_by_range(self, start_key, end_key):
        return iter([KV(k, v) for k, v in sorted(self.state.items()) if k >= start_key and (not end_key or k < end_key)])

    def get_state_by_range_with_pagination(self, start_key, end_key, page_size, bookmark=""):
        rows = list(self.get_state_by_range(bookmark or start_key, end_key))
        return QueryPage(rows[:page_size], min(page_size, len(rows)), rows[page_size].key if len(rows) > page_size else "")

    def get_history_for_key(self, key):
        return iter([])


@dataclass
class Rule:
    section: str
    allow: bool


class Prefs(Contract):
    @transaction
    def Add(self, ctx, patient: str, rule: Rule, weight: float, tags: list[str]) -> dict:
        key = ctx.stub.create_composite_key("rule", [patient, rule.section])
        ctx.stub.put_state(key, json.dumps({"allow": rule.allow, "w": weight, "tags": tags}).encode())
        return {"key": key, "weight": weight}

    @evaluate
    def Count(self, ctx, patient: str) -> int:
        return len(list(ctx.stub.get_state_by_partial_composite_key("rule", [patient])))

    @transaction
    def Deny(self, ctx) -> None:
        raise Forbidden("only the patient may do that")

    @transaction
    def Boom(self, ctx) -> None:
        raise RuntimeError("secret internals")

    @evaluate
    def Echo(self, ctx, flag: bool, n: int | None) -> str:
        return f"{flag}:{n}"


CC = Chaincode(Prefs())


def run(*args):
    return CC.invoke(MemoryStub(args))


def test_typed_arguments_and_json_results():
    r = run("Prefs:Add", "p1", '{"section":"oncology.treatment","allow":false}', "2", '["a","b"]')
    assert r.status == 200
    assert json.loads(r.payload)["weight"] == 2.0
    assert run("Echo", "true", "").payload == b"True:None"
    assert run("Echo", "false", "7").payload == b"False:7"


@pytest.mark.parametrize(
    "args, status, fragment",
    [
        (("Prefs:Add", "p1"), 400, "takes 4 argument(s)"),
        (("Prefs:Add", "p1", '{"section":"x","allow":1,"extra":2}', "1", "[]"), 400, "unknown field(s) extra"),
        (("Prefs:Add", "p1", "[]", "1", "[]"), 400, "argument 'rule': expected an object"),
        (("Prefs:Add", "p1", '{"section":"x","allow":true}', '"heavy"', "[]"), 400, "argument 'weight'"),
        (("Echo", "yes", "1"), 400, "argument 'flag'"),
        (("Echo", "true", "1.5"), 400, "argument 'n': expected integer"),
        (("Echo", "true", "true"), 400, "argument 'n': expected integer"),
        (("Nope",), 404, "not defined"),
        (("Other:Count", "p"), 404, "contract 'Other'"),
        (("Deny",), 403, "only the patient"),
        (("Boom",), 500, "internal chaincode error"),
        ((), 400, "no function name"),
    ],
)
def test_errors_reach_the_client_with_status_and_no_trace(args, status, fragment):
    r = run(*args)
    assert r.status == status and fragment in r.message
    assert "secret internals" not in r.message


def test_metadata_lists_contracts_transactions_and_schemas():
    meta = json.loads(run("org.hyperledger.fabric:GetMetadata").payload)
    add = next(t for t in meta["contracts"]["Prefs"]["transactions"] if t["name"] == "Add")
    assert [p["schema"] for p in add["parameters"]] == [
        {"type": "string"}, {"$ref": "#/components/schemas/Rule"}, {"type": "number"},
        {"type": "array", "items": {"type": "string"}}]
    assert meta["components"]["schemas"]["Rule"]["properties"]["allow"] == {"type": "boolean"}


def test_composite_keys_round_trip_and_reject_reserved_characters():
    key = create_composite_key("grant", ["patient-1", "g-9"])
    assert split_composite_key(key) == ("grant", ["patient-1", "g-9"])
    with pytest.raises(StubError):
        create_composite_key("grant", ["bad\x00part"])
    with pytest.raises(StubError):
        create_composite_key("", ["x"])
