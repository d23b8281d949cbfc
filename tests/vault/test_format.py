"""The Smart Patient Record Format: the shipped Edinburgh mapping and validation errors."""

from __future__ import annotations

import copy

import pytest
import yaml

from vault import FormatError, load_format, parse_format, shipped_formats
from vault.recordformat import RowError, parse_format_text

from .conftest import ALL_SECTIONS, FIXTURES, TABLES

EXPECTED_COLUMNS = {
    "patients": "patient_id given_name family_name date_of_birth sex postcode hospital",
    "ndc_smr01": "patient_id episode_id admission_date discharge_date length_of_stay admission_type specialty "
                 "significant_facility main_condition other_condition_1 other_condition_2 main_operation "
                 "operation_date discharge_type location_code age_at_admission sex",
    "ndc_smr06": "patient_id tumour_id date_of_diagnosis icd10_site morphology laterality tnm_t tnm_n tnm_m",
    "ndc_charlson": "patient_id assessment_date myocardial_infarction congestive_heart_failure "
                    "peripheral_vascular_disease cerebrovascular_disease dementia chronic_pulmonary_disease "
                    "rheumatic_disease peptic_ulcer_disease mild_liver_disease diabetes_uncomplicated "
                    "diabetes_complicated hemiplegia_paraplegia renal_disease any_malignancy "
                    "moderate_severe_liver_disease metastatic_solid_tumour aids_hiv charlson_index",
    "chemocare_treatment": "patient_id treatment_id regimen intent cycle_number cycle_start_date drug_name dose "
                           "dose_unit route planned_dose dose_reduced cycle_delayed height_cm weight_kg "
                           "body_surface_area performance_status consultant_code location_code",
    "chemocare_toxicity": "patient_id toxicity_id treatment_id cycle_number assessment_date nausea_grade "
                          "vomiting_grade diarrhoea_grade fatigue_grade neutropenia_grade mucositis_grade "
                          "neuropathy_grade alopecia_grade hand_foot_grade febrile_neutropenia hospitalised "
                          "dose_modified",
}


def _raw() -> dict:
    from importlib import resources

    return yaml.safe_load((resources.files("vault.formats") / "edinburgh.yaml").read_text())


def test_shipped_edinburgh_format_maps_exactly_the_agreed_columns():
    assert "edinburgh" in shipped_formats()
    fmt = load_format("edinburgh")
    assert set(fmt.tables) == set(TABLES)
    for table, cols in EXPECTED_COLUMNS.items():
        assert list(fmt.tables[table].columns) == cols.split(), table
        header = (FIXTURES / f"{table}.csv").read_text().splitlines()[0].split(",")
        assert header == cols.split(), f"fixture {table}.csv"
    assert set(fmt.sections) == ALL_SECTIONS
    # every satellite and link is in a declared section; satellites hang on patient-scoped hubs
    for t in fmt.tables.values():
        for s in t.satellites.values():
            assert s.section in fmt.sections
            assert s.hub == "person" or t.hubs[s.hub].kind == "event"
        for link in t.links.values():
            assert link.section in fmt.sections
    assert fmt.locations["S314H"].latitude == pytest.approx(55.9621)


@pytest.mark.parametrize(("mutate", "expected"), [
    (lambda d: d["tables"]["ndc_smr01"].update(colums={}), "unknown key (did you mean 'columns'?)"),
    (lambda d: d["tables"]["ndc_smr01"]["satellites"]["episode"].update(section="admission"),
     "unknown section 'admission' (did you mean 'admissions'?)"),
    (lambda d: d["tables"]["ndc_smr01"]["links"]["admitted"].update(to="admision"),
     "'admision' is not a hub of this table (did you mean 'admission'?)"),
    (lambda d: d["tables"]["ndc_smr01"]["satellites"]["episode"].update(hub="main_condition"),
     "satellites hang on the person or an event hub"),
    (lambda d: d["tables"]["ndc_smr01"]["columns"]["length_of_stay"].update(type="int"),
     "unknown type 'int'"),
    (lambda d: d["tables"]["ndc_smr01"]["satellites"]["episode"]["fhir"]["fields"].update(start="admitted"),
     "'admitted' is not one of the satellite's columns"),
    (lambda d: d["tables"]["ndc_smr01"]["hubs"]["admitted_on"].update(key=["specialty"]),
     "a time hub's key column must be a date or datetime"),
    (lambda d: d["tables"]["patients"]["columns"]["patient_id"].update(required=False),
     "must be required: every row is a patient's"),
    (lambda d: d.update(format="something-else"), "must be 'serums/smart-patient-record@1'"),
    (lambda d: d["tables"]["ndc_smr01"]["checks"].append({"not_before": ["specialty", "admission_date"]}),
     "'specialty' is not a date or datetime column"),
])
def test_invalid_formats_are_rejected_with_a_path_and_a_reason(mutate, expected):
    doc = copy.deepcopy(_raw())
    mutate(doc)
    with pytest.raises(FormatError) as err:
        parse_format(doc, "test.yaml")
    assert any(expected in p for p in err.value.problems), err.value.problems
    assert err.value.type == "record-format-invalid"
    assert "test.yaml" in str(err.value)


def test_all_problems_are_reported_at_once():
    doc = copy.deepcopy(_raw())
    doc["tables"]["ndc_smr06"]["satellites"]["tumour"]["section"] = "nope"
    doc["tables"]["ndc_charlson"]["columns"]["dementia"]["type"] = "bool"
    with pytest.raises(FormatError) as err:
        parse_format(doc)
    assert len(err.value.problems) == 2
    assert err.value.problems[0].startswith("tables.ndc_smr06.satellites.tumour.section")


def test_unknown_format_name_and_bad_yaml():
    with pytest.raises(FormatError, match="no shipped format named 'nope'"):
        load_format("nope")
    with pytest.raises(FormatError, match="not valid YAML"):
        parse_format_text("tables: [unclosed", "x.yaml")


def test_row_conversion_types_booleans_dates_and_checks():
    fmt = load_format("edinburgh")
    charlson = fmt.table("ndc_charlson").converter()
    base = {c: "" for c in fmt.table("ndc_charlson").columns}
    base.update(patient_id="0101501234", assessment_date="2020-02-03", charlson_index="2")
    for raw, expected in (("true", True), ("FALSE", False), ("1", True), ("0", False), (True, True), (0, False)):
        assert charlson.convert({**base, "dementia": raw})["dementia"] is expected
    with pytest.raises(RowError, match="dementia: 'maybe' is not a boolean"):
        charlson.convert({**base, "dementia": "maybe"})

    smr01 = fmt.table("ndc_smr01").converter()
    row = smr01.convert({"patient_id": " 0101501234 ", "episode_id": "E1", "admission_date": "2020-01-02",
                         "discharge_date": "2020-01-05", "sex": "female", "length_of_stay": "3"})
    assert row["patient_id"] == "0101501234" and row["sex"] == "F" and row["length_of_stay"] == 3
    with pytest.raises(RowError) as err:
        smr01.convert({"patient_id": "123", "episode_id": "", "admission_date": "2020-02-30",
                       "discharge_date": "2019-01-01", "length_of_stay": "-2", "operation_date": "2999-01-01"})
    message = str(err.value)
    for part in ("patient_id: '123' does not match", "episode_id: required but empty",
                 "admission_date: '2020-02-30' is not a valid calendar date", "length_of_stay: -2 is below the minimum",
                 "operation_date: 2999-01-01 is in the future"):
        assert part in message
    with pytest.raises(RowError, match=r"discharge_date \(2019-01-01\) is before admission_date \(2020-01-02\)"):
        smr01.convert({"patient_id": "0101501234", "episode_id": "E1", "admission_date": "2020-01-02",
                       "discharge_date": "2019-01-01"})


def test_header_check_names_missing_and_unexpected_columns():
    conv = load_format("edinburgh").table("ndc_smr06").converter()
    problems = conv.check_header(["patient_id", "tumour_id", "date_of_diagnosis", "icd10_site", "extra"])
    assert any("missing column(s) morphology, laterality, tnm_t, tnm_n, tnm_m" in p for p in problems)
    assert any("unexpected column(s) extra" in p for p in problems)
