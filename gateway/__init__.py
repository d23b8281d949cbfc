"""The Flask gateway: HTTP API and pages for patients, doctors, hospital admins, auditors, analysts."""
