"""The marshmallow schemas of every request (and the main responses): validation and the OpenAPI
document come from the same definitions. Unknown fields are refused (422 with each field)."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import ValidationError, fields, validate, validates_schema

from . import vocab as V

# --------------------------------------------------------------------------- field types


class Text(fields.String):
    """A string that can travel anywhere: valid Unicode (no lone surrogates) and no NUL."""

    default_error_messages = {"unicode": "Not valid Unicode text.", "nul": "Must not contain NUL characters."}

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise self.make_error("unicode") from None
        if "\x00" in text:
            raise self.make_error("nul")
        return text


class Bookmark(Text):
    """The opaque ``bookmark`` of a previous page (base64url); empty for the first page."""

    default_error_messages = {"bookmark": "Not a bookmark returned by this API."}

    def _deserialize(self, value, attr, data, **kwargs):
        from .ledger import decode_bookmark

        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return decode_bookmark(text)
        except ValueError:
            raise self.make_error("bookmark") from None


def Id(**kw) -> Text:  # noqa: N802 - a field factory reads like a type
    kw.setdefault("metadata", {}).setdefault("description", "pseudonymous id (2-128 letters, digits, . _ : -)")
    return Text(validate=[validate.Length(2, 128), validate.Regexp(V.ID_PATTERN)], **kw)


def Choice(values, **kw) -> Text:  # noqa: N802
    return Text(validate=validate.OneOf(values), **kw)


def Sections(**kw) -> fields.List:  # noqa: N802
    return fields.List(Choice((*V.SECTIONS, V.WILDCARD)), validate=validate.Length(1, len(V.SECTIONS)), **kw)


def Page(default: int = 50) -> dict:  # noqa: N802
    return {
        "page_size": fields.Integer(load_default=default, validate=validate.Range(1, V.MAX_PAGE_SIZE)),
        "bookmark": Bookmark(load_default="", validate=validate.Length(max=1024)),
    }


TEXT_KEY = {"validate": validate.Length(1, 256)}


class Schema(ma.Schema):
    class Meta:
        ordered = True


# --------------------------------------------------------------------------- shared outputs


class ProblemSchema(Schema):
    type = fields.String(metadata={"description": "stable problem type, documented at that URL"})
    title = fields.String()
    status = fields.Integer()
    detail = fields.String()
    instance = fields.String()


class PageOut(Schema):
    records = fields.List(fields.Dict())
    count = fields.Integer()
    bookmark = fields.String(metadata={"description": "pass back to get the next page; empty when done"})


class PolicyOut(Schema):
    hospital = fields.String()
    version = fields.Integer()
    rules = fields.Dict(metadata={"description": "rule id -> rule"})
    settings = fields.Dict()
    updated_at = fields.String(allow_none=True)
    updated_by = fields.String(allow_none=True)


class PreferencesOut(Schema):
    patient = fields.String()
    version = fields.Integer()
    updated_at = fields.String(allow_none=True)
    rules = fields.Dict(metadata={"description": "preference id -> preference"})


class RecordsOut(Schema):
    records = fields.List(fields.Dict())


class TxOut(Schema):
    transaction_id = fields.String()
    block = fields.Integer()
    result = fields.Raw()


class EmptySchema(Schema):
    pass


# --------------------------------------------------------------------------- auth


class ImageOut(Schema):
    id = fields.String()
    label = fields.String()
    theme = fields.String()
    url = fields.String()


class ImagesOut(Schema):
    images = fields.List(fields.Nested(ImageOut))
    min_images = fields.Integer()
    max_images = fields.Integer()


class KeyStrengthIn(Schema):
    text_key = Text(required=True, **TEXT_KEY)
    username = Text(load_default="", validate=validate.Length(max=64))
    hospital = Text(load_default="", validate=validate.Length(max=64))
    role = Choice(V.PERSON_ROLES, load_default="")
    images = fields.List(Text(validate=validate.Length(1, 64)), load_default=list, validate=validate.Length(max=8))


class StrengthOut(Schema):
    accepted = fields.Boolean()
    guesses_log10 = fields.Float()
    score = fields.Integer()
    reasons = fields.List(fields.String())
    warning = fields.String()
    suggestions = fields.List(fields.String())
    explanation = fields.String()


class RegisterIn(Schema):
    invitation_code = Text(required=True, validate=validate.Length(8, 64))
    text_key = Text(required=True, **TEXT_KEY)
    images = fields.List(Text(validate=validate.Length(1, 64)), required=True, validate=validate.Length(1, 8))
    custody = Choice(("wallet", "exported"), load_default="wallet")
    public_key_pem = Text(validate=validate.Length(1, 4000))


class RegistrationOut(Schema):
    user_id = fields.String()
    username = fields.String()
    role = fields.String()
    hospital = fields.String()
    certificate_pem = fields.String()
    totp_secret = fields.String()
    totp_uri = fields.String()
    totp_qr_png = fields.String(metadata={"description": "base64 PNG of the otpauth:// QR code"})
    recovery_codes = fields.List(fields.String())
    exported_key_pem = fields.String(allow_none=True)


class GridQuery(Schema):
    username = Text(required=True, validate=validate.Length(1, 64))


class GridOut(Schema):
    images = fields.List(fields.Nested(ImageOut))
    attempt_id = fields.String()


class LoginIn(Schema):
    username = Text(required=True, validate=validate.Length(1, 64))
    method = Choice(("text", "graphical"), required=True)
    text_key = Text(**TEXT_KEY)
    selection = fields.List(Text(validate=validate.Length(1, 64)), validate=validate.Length(1, 36))
    attempt_id = Text(validate=validate.Length(1, 64))

    @validates_schema
    def _key_for_method(self, data, **_):
        if data["method"] == "text" and "text_key" not in data:
            raise ValidationError("a text login needs text_key", "text_key")
        if data["method"] == "graphical" and "selection" not in data:
            raise ValidationError("a graphical login needs selection (the picture ids)", "selection")


class ChallengeOut(Schema):
    challenge = fields.String()
    method = fields.String()
    factors = fields.List(fields.String())
    expires_at = fields.String(metadata={"description": "ISO 8601, UTC"})


class LoginCompleteIn(Schema):
    challenge = Text(required=True, validate=validate.Length(1, 128))
    totp_code = Text(validate=validate.Length(1, 16))
    recovery_code = Text(validate=validate.Length(1, 32))
    approval_id = Text(validate=validate.Length(1, 32))

    @validates_schema
    def _one_factor(self, data, **_):
        given = [k for k in ("totp_code", "recovery_code", "approval_id") if k in data]
        if len(given) > 1:
            raise ValidationError("give exactly one second factor", "_schema")


class TokensOut(Schema):
    access_token = fields.String()
    refresh_token = fields.String()
    token_type = fields.String()
    access_expires_at = fields.String(metadata={"description": "ISO 8601, UTC"})
    refresh_expires_at = fields.String(metadata={"description": "ISO 8601, UTC"})
    session_id = fields.String()
    user_id = fields.String()
    role = fields.String()
    hospital = fields.String()


class PushIn(Schema):
    challenge = Text(required=True, validate=validate.Length(1, 128))


class PushOut(Schema):
    approval_id = fields.String()
    match_code = fields.String()
    expires_at = fields.String(metadata={"description": "ISO 8601, UTC"})


class ApprovalOut(Schema):
    approval_id = fields.String()
    created_at = fields.String(metadata={"description": "ISO 8601, UTC"})
    expires_at = fields.String(metadata={"description": "ISO 8601, UTC"})
    client_addr = fields.String(allow_none=True)
    method = fields.String()


class ApprovalsOut(Schema):
    approvals = fields.List(fields.Nested(ApprovalOut))


class ApprovalDecisionIn(Schema):
    approve = fields.Boolean(required=True)
    match_code = Text(validate=validate.Regexp(r"^\d{1,2}$"))


class MeOut(Schema):
    user_id = fields.String()
    username = fields.String()
    role = fields.String()
    hospital = fields.String()
    msp = fields.String()
    status = fields.String()
    key_custody = fields.String()
    session_id = fields.String()
    second_factor = fields.String()
    login_method = fields.String()
    chain = fields.Dict(allow_none=True)


# --------------------------------------------------------------------------- patients


class RecordQuery(Schema):
    format = Choice(("json", "fhir"), load_default="json")
    sections = Sections(load_default=lambda: [V.WILDCARD])
    grant_id = Id(metadata={"description": "a patient who holds their own key: the grant of the own-record request "
                                           "they signed (POST /patients/me/record/prepare …); released, not requested"})


class FhirBundleOut(Schema):
    """A FHIR R5 Bundle (``resourceType``, ``type``, ``entry``: the resources)."""

    resourceType = fields.String()  # noqa: N815 - FHIR's field name
    type = fields.String()
    entry = fields.List(fields.Dict())


class PrepareRecordIn(Schema):
    sections = Sections(load_default=lambda: [V.WILDCARD])


class ReleaseOut(Schema):
    grant_id = fields.String()
    request_id = fields.String()
    patient_id = fields.String()
    hospital = fields.String()
    sections = fields.List(fields.String(), metadata={"description": "the sections released"})
    withheld = fields.List(fields.String(), metadata={"description": "sections present in the record but not released"})
    digest = fields.String(metadata={"description": "SHA-256 of the body, as logged on chain"})
    format = fields.String()
    record = fields.Dict(metadata={"description": "the record (format json) or FHIR R5 Bundle (format fhir)"})
    evidence = fields.Dict()


class GranteeSchema(Schema):
    kind = Choice(V.GRANTEE_KINDS, required=True)
    id = Text(validate=validate.Length(1, 128),
              metadata={"description": "user id, role or hospital (name or MSP id); absent for anyone"})

    @validates_schema
    def _id_for_kind(self, data, **_):
        if data["kind"] != "anyone" and not data.get("id"):
            raise ValidationError(f"grantee of kind {data['kind']} needs an id", "id")
        if data["kind"] == "anyone" and data.get("id"):
            raise ValidationError("grantee of kind anyone takes no id", "id")
        if data["kind"] == "role" and data.get("id") not in V.ROLES:
            raise ValidationError(f"role must be one of {', '.join(V.ROLES)}", "id")


GRANTEE_SHAPE = ('expected "anyone" or an object {"kind": "user"|"role"|"hospital", "id": "…"} '
                 '(or {"kind": "anyone"})')


class Grantee(fields.Nested):
    """Whom a preference is about: ``"anyone"`` (short for ``{"kind": "anyone"}``) or an object of
    :class:`GranteeSchema`; any other shape is refused saying which shapes are expected."""

    def __init__(self, **kwargs):
        kwargs.setdefault("metadata", {"description": GRANTEE_SHAPE})
        super().__init__(GranteeSchema, **kwargs)

    def _deserialize(self, value, attr, data, partial=None, **kwargs):
        if value == "anyone":
            value = {"kind": "anyone"}
        elif not isinstance(value, dict):
            raise ValidationError(GRANTEE_SHAPE)
        return super()._deserialize(value, attr, data, partial=partial, **kwargs)


class PreferenceIn(Schema):
    pref_id = Id(metadata={"description": "replace this preference (new id when absent)"})
    effect = Choice(V.EFFECTS, required=True)
    grantee = Grantee(required=True)
    sections = Sections(required=True)
    purposes = fields.List(Choice((*V.PURPOSES, V.WILDCARD)), required=True, validate=validate.Length(1, 6))
    valid_from = fields.AwareDateTime()
    valid_until = fields.AwareDateTime()


class PreviewRequesterSchema(Schema):
    user = Id(metadata={"description": "a registered user (their role, hospital and treating relationship)"})
    role = Choice(V.ROLES)
    hospital = Text(validate=validate.Length(1, 128), metadata={"description": "hospital name or MSP id"})
    treating = fields.Boolean(truthy={True}, falsy={False}, metadata={"description": "for a role at a hospital: assume a treating "
                                                                    "relationship (default false)"})

    @validates_schema
    def _one_shape(self, data, **_):
        if "user" in data:
            extra = sorted(set(data) - {"user"})
            if extra:
                raise ValidationError("give either user, or role and hospital", extra[0])
            return
        for f in ("role", "hospital"):
            if f not in data:
                raise ValidationError("required (or give user)", f)


class PreviewIn(Schema):
    requester = fields.Nested(PreviewRequesterSchema, required=True)
    sections = Sections(required=True, metadata={"description": 'sections to ask for; ["*"]: all of them'})
    purpose = Choice(V.PURPOSES, required=True)


class PreviewSection(Schema):
    section = fields.String()
    allowed = fields.Boolean()
    reason = fields.String()
    basis = fields.List(fields.String(), metadata={"description": "ids of the rules and preferences it rests on"})
    max_seconds = fields.Integer(allow_none=True)


class PreviewOut(Schema):
    patient = fields.String()
    version = fields.Integer(metadata={"description": "the preferences' version the preview used"})
    purpose = fields.String()
    requester = fields.Dict(metadata={"description": "user_id (null for a role), role, hospital, treating"})
    decision = fields.List(fields.Nested(PreviewSection))
    granted = fields.List(fields.String())
    denied = fields.List(fields.String())
    grant_seconds = fields.Integer(metadata={"description": "how long a grant would last (0: nothing granted)"})


class PreparePreferenceIn(Schema):
    action = Choice(("add", "withdraw"), required=True)
    preference = fields.Nested(PreferenceIn)
    pref_id = Id()

    @validates_schema
    def _what(self, data, **_):
        if data["action"] == "add" and "preference" not in data:
            raise ValidationError("action add needs the preference", "preference")
        if data["action"] == "withdraw" and "pref_id" not in data:
            raise ValidationError("action withdraw needs pref_id", "pref_id")


class PreparedOut(Schema):
    transaction_id = fields.String()
    proposal = fields.String(metadata={"description": "base64 of the proposal message: send it back to /endorse"})
    digest = fields.String(metadata={"description": "base64 SHA-256 digest for the device to sign (ECDSA P-256, "
                                                    "DER, low-S)"})


class EndorseIn(Schema):
    proposal = Text(required=True, validate=validate.Length(1, 65536))
    signature = Text(required=True, validate=validate.Length(1, 200))


class EndorsedOut(Schema):
    transaction_id = fields.String()
    transaction = fields.String(metadata={"description": "base64 of the endorsed transaction: send it to /submit"})
    digest = fields.String(metadata={"description": "base64 SHA-256 digest for the device to sign"})
    result = fields.Raw(metadata={"description": "what the transaction will do once committed"})


class SubmitIn(Schema):
    transaction = Text(required=True, validate=validate.Length(1, 262144))
    signature = Text(required=True, validate=validate.Length(1, 200))


class ShareCodeIn(Schema):
    ttl_seconds = fields.Integer(load_default=900, validate=validate.Range(60, 86400))


class ShareCodeOut(Schema):
    code = fields.String()
    expires_at = fields.String(metadata={"description": "ISO 8601, UTC"})


class TrailQuery(Schema):
    kind = Choice(V.AUDIT_KINDS, load_default="access")
    start = fields.AwareDateTime()
    end = fields.AwareDateTime()
    page_size = Page()["page_size"]
    bookmark = Page()["bookmark"]


class RevokeIn(Schema):
    reason = Choice(V.REVOKE_REASONS, load_default="patient-request")


# --------------------------------------------------------------------------- doctors


class _PatientRef(Schema):
    patient_id = Id()
    share_code = Text(validate=validate.Length(4, 32), metadata={"description": "a share code from the patient"})

    @validates_schema
    def _one_patient(self, data, **_):
        if ("patient_id" in data) == ("share_code" in data):
            raise ValidationError("give exactly one of patient_id and share_code", "_schema")


class AccessRequestIn(_PatientRef):
    sections = Sections(load_default=lambda: [V.WILDCARD])
    purpose = Choice(V.PURPOSES, load_default="treatment")
    justification = Choice(V.JUSTIFICATIONS, load_default="")
    justification_text = Text(validate=validate.Length(1, 2000),
                              metadata={"description": "free text: only its SHA-256 reaches the ledger"})


class BreakGlassIn(_PatientRef):
    sections = Sections(load_default=lambda: [V.WILDCARD])
    justification = Choice(V.BREAK_GLASS_JUSTIFICATIONS, required=True)
    justification_text = Text(validate=validate.Length(1, 2000))

    @validates_schema
    def _other_needs_text(self, data, **_):
        if data.get("justification") == "other" and not data.get("justification_text"):
            raise ValidationError("justification other needs justification_text", "justification_text")


class DeniedSection(Schema):
    section = fields.String()
    reason = fields.String()


class TokenOut(Schema):
    token = fields.String()
    token_hash = fields.String()
    expires_at = fields.String()
    hospital = fields.String()


class DecisionOut(Schema):
    request_id = fields.String()
    grant_id = fields.String(allow_none=True)
    patient_id = fields.String()
    outcome = fields.String(metadata={"description": "granted | partial | denied"})
    granted = fields.List(fields.String())
    denied = fields.List(fields.Nested(DeniedSection))
    reasons = fields.Dict(keys=fields.String(), values=fields.String())
    expires_at = fields.String(allow_none=True)
    break_glass = fields.Boolean()
    transaction_id = fields.String()
    block = fields.Integer()
    token = fields.Nested(TokenOut, allow_none=True)
    token_error = fields.Dict(metadata={"description": "why no token could be minted (the decision stands; "
                                                      "POST /doctors/grants/{grant_id}/tokens tries again)"})


class GrantOut(Schema):
    request_id = fields.String()
    grant_id = fields.String(allow_none=True)
    requester_id = fields.String()
    requester_role = fields.String()
    requester_hospital = fields.String()
    patient = fields.String()
    patient_hospital = fields.String()
    purpose = fields.String()
    break_glass = fields.Boolean()
    justification = fields.String(allow_none=True)
    justification_digest = fields.String(allow_none=True)
    outcome = fields.String()
    decision = fields.List(fields.Dict())
    sections = fields.List(fields.String())
    created_at = fields.String()
    expires_at = fields.String(allow_none=True)
    status = fields.String()
    live = fields.Boolean()
    not_live_reason = fields.String(allow_none=True)
    token_hashes = fields.List(fields.String())
    revoked_at = fields.String(allow_none=True)
    revoked_by = fields.String(allow_none=True)
    revoke_reason = fields.String(allow_none=True)
    review = fields.Dict(allow_none=True)
    treating = fields.Boolean()
    relies_on_treating = fields.Boolean()
    checked_at = fields.String()


class RedeemShareIn(Schema):
    code = Text(required=True, validate=validate.Length(4, 32))


class PatientRefOut(Schema):
    patient_id = fields.String()
    hospital = fields.String()


class RecordIn(Schema):
    token = Text(required=True, validate=validate.Length(1, 4096))
    format = Choice(("json", "fhir"), load_default="json")


class GrantsQuery(Schema):
    kind = Choice(("grant", "decision", "break-glass", "access", "refusal", "revocation"), load_default="grant")
    start = fields.AwareDateTime()
    end = fields.AwareDateTime()
    page_size = Page()["page_size"]
    bookmark = Page()["bookmark"]


# --------------------------------------------------------------------------- hospital admins


class EnrolIn(Schema):
    username = Text(required=True, validate=validate.Length(3, 64))
    role = Choice(V.PERSON_ROLES, required=True)
    text_key = Text(required=True, **TEXT_KEY)
    images = fields.List(Text(validate=validate.Length(1, 64)), required=True, validate=validate.Length(1, 8))
    chi = Text(validate=validate.Length(1, 32), metadata={"description": "a patient's national id (CHI): the vault "
                                                                          "finds their reference; never stored"})
    treating = fields.List(Id(), load_default=list, validate=validate.Length(max=50))
    custody = Choice(("wallet", "exported"), load_default="wallet")

    @validates_schema
    def _patient_needs_chi(self, data, **_):
        if data["role"] == "patient" and "chi" not in data:
            raise ValidationError("a patient is enrolled with their CHI", "chi")
        if data["role"] != "patient" and "chi" in data:
            raise ValidationError("only patients have a CHI", "chi")


class InviteIn(Schema):
    username = Text(required=True, validate=validate.Length(3, 64))
    role = Choice(V.PERSON_ROLES, required=True)
    chi = Text(validate=validate.Length(1, 32))
    treating = fields.List(Id(), load_default=list, validate=validate.Length(max=50))
    ttl_hours = fields.Integer(load_default=72, validate=validate.Range(1, 720))

    @validates_schema
    def _patient_needs_chi(self, data, **_):
        if data["role"] == "patient" and "chi" not in data:
            raise ValidationError("a patient is invited with their CHI", "chi")
        if data["role"] != "patient" and "chi" in data:
            raise ValidationError("only patients have a CHI", "chi")


class InvitationOut(Schema):
    code = fields.String()
    username = fields.String()
    role = fields.String()
    hospital = fields.String()
    expires_at = fields.String(metadata={"description": "ISO 8601, UTC"})


class UsersQuery(Schema):
    page_size = Page()["page_size"]
    bookmark = Page()["bookmark"]


class UserOut(Schema):
    user_id = fields.String()
    username = fields.String(allow_none=True)
    role = fields.String()
    hospital = fields.String()
    status = fields.String()
    chain = fields.Dict(allow_none=True)
    directory_status = fields.String(allow_none=True)


class UsersOut(Schema):
    records = fields.List(fields.Nested(UserOut))
    count = fields.Integer()
    bookmark = fields.String()


class SuspendIn(Schema):
    reason = Choice(V.SUSPEND_REASONS, load_default="administrative")


class RoleIn(Schema):
    role = Choice(tuple(r for r in V.PERSON_ROLES if r != "patient"), required=True,
                  metadata={"description": "the new role (a patient's role never changes, nor anyone's into a patient)"})


class TreatmentIn(Schema):
    patient_id = Id(required=True)
    clinician_id = Id(required=True)
    start = fields.AwareDateTime()
    end = fields.AwareDateTime()


class RuleIn(Schema):
    effect = Choice(V.EFFECTS, load_default="allow")
    roles = fields.List(Choice((*V.ROLES, V.WILDCARD)), required=True, validate=validate.Length(1, len(V.ROLES)))
    sections = Sections(required=True)
    purposes = fields.List(Choice((*V.PURPOSES, V.WILDCARD)), required=True, validate=validate.Length(1, 6))
    same_hospital = fields.Boolean(load_default=False)
    treating_required = fields.Boolean(load_default=False)
    consent_required = fields.Boolean(load_default=False)
    max_grant_seconds = fields.Integer(validate=validate.Range(60, V.MAX_GRANT_SECONDS))
    valid_from = fields.AwareDateTime()
    valid_until = fields.AwareDateTime()


class SettingsIn(Schema):
    max_grant_seconds = fields.Integer(validate=validate.Range(60, V.MAX_GRANT_SECONDS))
    break_glass_seconds = fields.Integer(validate=validate.Range(60, V.MAX_BREAK_GLASS_SECONDS))

    @validates_schema
    def _something(self, data, **_):
        if not data:
            raise ValidationError("give max_grant_seconds and/or break_glass_seconds", "_schema")


# --------------------------------------------------------------------------- auditors


class AuditQuery(Schema):
    patient = Id(metadata={"description": "the trail of one patient"})
    user = Id(metadata={"description": "the trail of one user (requests they made, accesses they got)"})
    kind = Choice(V.AUDIT_KINDS, load_default="decision")
    start = fields.AwareDateTime()
    end = fields.AwareDateTime()
    page_size = Page()["page_size"]
    bookmark = Page()["bookmark"]

    @validates_schema
    def _one_subject(self, data, **_):
        if "patient" in data and "user" in data:
            raise ValidationError("give patient or user, not both", "_schema")


class ExportQuery(AuditQuery):
    format = Choice(("json", "csv"), load_default="json")
    limit = fields.Integer(load_default=1000, validate=validate.Range(1, 10000))


class HistoryQuery(Schema):
    page_size = Page()["page_size"]
    bookmark = Page()["bookmark"]


class IndexedOut(Schema):
    indexed = fields.Integer(metadata={"description": "relationships added to the clinician index"})
    read = fields.Integer(metadata={"description": "relationships read (of every hospital)"})


class MyPatientsQuery(Schema):
    current = fields.Boolean(load_default=True, metadata={"description": "only relationships that have not ended"})
    page_size = Page(100)["page_size"]
    bookmark = Page()["bookmark"]


class ReviewIn(Schema):
    outcome = Choice(V.REVIEW_OUTCOMES, required=True)


class VerifyOut(Schema):
    ok = fields.Boolean()
    orderer_height = fields.Integer()
    peers = fields.Dict()
    problems = fields.List(fields.String())


class HospitalOut(Schema):
    name = fields.String()
    msp = fields.String()
    registered = fields.Dict(allow_none=True)


class HospitalsOut(Schema):
    hospitals = fields.List(fields.Nested(HospitalOut))
