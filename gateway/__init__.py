"""The Flask gateway: HTTP API and pages for patients, doctors, hospital admins, auditors, analysts."""

from .app import create_app, map_error
from .problems import PROBLEM_JSON, Problem, ProblemType, problem_response, problem_type

__all__ = ["PROBLEM_JSON", "Problem", "ProblemType", "create_app", "map_error", "problem_response", "problem_type"]
