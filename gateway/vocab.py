"""The chain's vocabularies, as the gateway's schemas offer them (enums in the OpenAPI document).

The gateway does not import the chaincode (DESIGN.md: gateway → auth, vault, network); these
lists mirror ``chaincode/serums/vocab.py`` and ``tests/gateway`` checks that they still do. The
chain validates again, whatever the gateway let through.
"""

PERSON_ROLES = ("patient", "gp", "specialist", "nurse", "insurer", "researcher", "auditor", "hospital_admin")
SERVICE_ROLES = ("vault", "analytics")
ROLES = PERSON_ROLES + SERVICE_ROLES
CLINICIAN_ROLES = ("gp", "specialist", "nurse")
SECTIONS = ("demographics", "contact", "admissions", "conditions", "procedures", "oncology.diagnosis",
            "oncology.treatment", "oncology.toxicity", "comorbidities", "imaging", "documents")
PURPOSES = ("treatment", "emergency", "research", "insurance", "audit")
JUSTIFICATIONS = ("direct-care", "referral", "continuing-care", "clinical-emergency", "patient-unconscious",
                  "patient-incapacitated", "safeguarding", "research-protocol", "claim-assessment", "audit-review",
                  "patient-request", "other")
BREAK_GLASS_JUSTIFICATIONS = ("clinical-emergency", "patient-unconscious", "patient-incapacitated", "safeguarding",
                              "other")
REVOKE_REASONS = ("patient-request", "consent-withdrawn", "no-longer-treating", "misuse-suspected", "administrative",
                  "relinquished", "break-glass-unjustified", "other")
SUSPEND_REASONS = ("left-organisation", "investigation", "credential-compromise", "leave", "administrative", "other")
REVIEW_OUTCOMES = ("justified", "unjustified", "referred")
GRANTEE_KINDS = ("user", "role", "hospital", "anyone")
EFFECTS = ("allow", "deny")
AUDIT_KINDS = ("decision", "grant", "break-glass", "access", "refusal", "revocation", "cohort")
WILDCARD = "*"
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{1,127}$"
MAX_PAGE_SIZE = 200
MAX_GRANT_SECONDS = 90 * 24 * 3600
MAX_BREAK_GLASS_SECONDS = 24 * 3600

# What people read: the words the web pages and notifications use for the codes above.
SECTION_LABELS = {
    "demographics": "Personal details", "contact": "Contact details", "admissions": "Hospital admissions",
    "conditions": "Diagnoses", "procedures": "Procedures", "oncology.diagnosis": "Cancer diagnosis",
    "oncology.treatment": "Cancer treatment", "oncology.toxicity": "Treatment side effects",
    "comorbidities": "Other conditions", "imaging": "Scans and images", "documents": "Documents",
}
PURPOSE_LABELS = {"treatment": "Treatment", "emergency": "Emergency", "research": "Research",
                  "insurance": "Insurance", "audit": "Audit"}
ROLE_LABELS = {"patient": "patient", "gp": "GP", "specialist": "specialist", "nurse": "nurse", "insurer": "insurer",
               "researcher": "researcher", "auditor": "auditor", "hospital_admin": "hospital administrator",
               "vault": "hospital records service"}
