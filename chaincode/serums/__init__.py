"""The SERUMS chaincode: users, hospital rules, patient preferences, data transport, privacy
budget and the audit trail, as contracts of one chaincode ``serums``.

Deploy with ``ChaincodeDefinition("serums", "chaincode.serums:serums_chaincode", "1.0", "MAJORITY")``
and call ``"<Contract>:<Function>"`` through the Gateway client, e.g.
``gw.network("serums").contract("serums", "TransportContract").submit_json("RequestAccess", ...)``.
See docs/readme/chaincode.md for every function and its arguments.
"""

from chaincode import Chaincode

from .audit import AuditContract
from .budget import BudgetContract
from .decision import Decision, HospitalRule, Party, Preference, SectionDecision, decide
from .policy import PolicyContract
from .preferences import PreferenceContract
from .transport import TransportContract
from .users import UserContract
from .vocab import CLINICIAN_ROLES, JUSTIFICATIONS, PURPOSES, ROLES, SECTIONS

CHAINCODE_NAME = "serums"
FACTORY = "chaincode.serums:serums_chaincode"


def serums_chaincode() -> Chaincode:
    return Chaincode(
        UserContract(), PolicyContract(), PreferenceContract(), TransportContract(), BudgetContract(),
        AuditContract(), default="TransportContract",
        info={"title": "SERUMS chaincode", "version": "1.0"},
    )


__all__ = [
    "CHAINCODE_NAME",
    "CLINICIAN_ROLES",
    "FACTORY",
    "JUSTIFICATIONS",
    "PURPOSES",
    "ROLES",
    "SECTIONS",
    "AuditContract",
    "BudgetContract",
    "Decision",
    "HospitalRule",
    "Party",
    "PolicyContract",
    "Preference",
    "PreferenceContract",
    "SectionDecision",
    "TransportContract",
    "UserContract",
    "decide",
    "serums_chaincode",
]
