"""Readers for source files: CSV, XLSX and JSON, each yielding raw rows with their location.

A reader does no type conversion — the record format does that, the same way for every file
type — but it keeps what a person needs to find a bad row: ``ndc_smr01.csv line 7``,
``sheet ndc_smr06 row 12``, ``data.json ndc_charlson[3]``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import IngestError
from .recordformat import RecordFormat

SUFFIXES = (".csv", ".xlsx", ".json", ".jsonl", ".ndjson")


@dataclass
class TableInput:
    """Rows of one source table: a header (column names as found) and (location, raw row) pairs."""

    table: str
    header: list[str]
    rows: Iterator[tuple[str, dict[str, Any]]]
    source: str
    close: Callable[[], None] | None = None  # releases the file behind the rows, if any


def close_inputs(inputs: Sequence[TableInput]) -> None:
    for ti in inputs:
        if ti.close is not None:
            ti.close()


def rows_input(table: str, rows: Sequence[Mapping[str, Any]] | Iterator[Mapping[str, Any]],
               source: str = "rows", header: Sequence[str] | None = None) -> TableInput:
    """Rows given in memory (the API path). Without ``header`` the first row's keys are used."""
    it = iter(rows)
    first: Mapping[str, Any] | None = next(it, None)
    cols = list(header) if header is not None else (list(first) if first is not None else [])

    def gen() -> Iterator[tuple[str, dict[str, Any]]]:
        if first is None:
            return
        yield f"{source} row 1", dict(first)
        for i, row in enumerate(it, start=2):
            yield f"{source} row {i}", dict(row)

    return TableInput(table, cols, gen(), source)


def _table_for(path: Path, fmt: RecordFormat, table: str | None) -> str:
    name = table or path.name.split(".")[0]
    if name not in fmt.tables:
        hint = "" if table else " (the file name does not name a table: pass --table)"
        raise IngestError(f"{path.name}: format {fmt.name!r} has no table {name!r}{hint}; "
                          f"tables: {', '.join(fmt.tables)}")
    return name


def read_source(path: str | Path, fmt: RecordFormat, table: str | None = None) -> list[TableInput]:
    """Open a source file; one TableInput per table it holds (XLSX sheets and JSON objects may hold several)."""
    path = Path(path)
    if not path.is_file():
        raise IngestError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return [_read_csv(path, _table_for(path, fmt, table))]
    if suffix == ".xlsx":
        return _read_xlsx(path, fmt, table)
    if suffix in (".json", ".jsonl", ".ndjson"):
        return _read_json(path, fmt, table)
    raise IngestError(f"{path.name}: unsupported file type {suffix or '(none)'}; use {', '.join(SUFFIXES)}")


def _read_csv(path: Path, table: str) -> TableInput:
    # Opened here and closed when the rows are exhausted (or the generator is collected).
    try:
        fh = path.open(newline="", encoding="utf-8-sig")
        reader = csv.reader(fh)
        header = next(reader, None)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise IngestError(f"{path.name}: cannot read as UTF-8 CSV: {exc}") from exc
    if not header:
        fh.close()
        raise IngestError(f"{path.name}: empty file (no header row)")
    header = [h.strip() for h in header]

    def gen() -> Iterator[tuple[str, dict[str, Any]]]:
        with fh:
            try:
                for record in reader:
                    where = f"{path.name} line {reader.line_num}"
                    if not record or (len(record) == 1 and not record[0].strip()):
                        continue
                    if len(record) != len(header):
                        yield where, {"__error__": f"has {len(record)} fields; the header has {len(header)}"}
                        continue
                    yield where, dict(zip(header, record, strict=True))
            except (csv.Error, UnicodeDecodeError) as exc:
                raise IngestError(f"{path.name} line {reader.line_num}: unreadable CSV: {exc}") from exc

    return TableInput(table, header, gen(), path.name, close=fh.close)


def _read_xlsx(path: Path, fmt: RecordFormat, table: str | None) -> list[TableInput]:
    import openpyxl  # heavy import: only when a spreadsheet is ingested
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, OSError, KeyError, ValueError) as exc:
        raise IngestError(f"{path.name}: not a readable .xlsx workbook: {exc}") from exc
    if table is not None:
        if table not in fmt.tables:
            raise IngestError(f"format {fmt.name!r} has no table {table!r}; tables: {', '.join(fmt.tables)}")
        sheets = [(wb[table] if table in wb.sheetnames else wb.worksheets[0], table)]
    else:
        unknown = [s for s in wb.sheetnames if s not in fmt.tables]
        if unknown:
            raise IngestError(f"{path.name}: sheet(s) {', '.join(unknown)} do not name tables of format "
                              f"{fmt.name!r} ({', '.join(fmt.tables)}); pass --table for a one-sheet file")
        sheets = [(wb[s], s) for s in wb.sheetnames]
    out = []
    for ws, tname in sheets:
        rows = ws.iter_rows(values_only=True)
        header_row = next(rows, None)
        if not header_row:
            raise IngestError(f"{path.name}: sheet {ws.title} is empty (no header row)")
        header = [str(h).strip() if h is not None else "" for h in header_row]
        while header and header[-1] == "":
            header.pop()

        def gen(rows=rows, header=header, title=ws.title) -> Iterator[tuple[str, dict[str, Any]]]:
            for n, values in enumerate(rows, start=2):
                if values is None or all(v is None or (isinstance(v, str) and not v.strip()) for v in values):
                    continue
                extra = [v for v in values[len(header):] if v is not None]
                if extra:
                    yield f"sheet {title} row {n}", {"__error__": "has values beyond the header's columns"}
                    continue
                yield f"sheet {title} row {n}", dict(zip(header, values, strict=False))

        out.append(TableInput(tname, header, gen(), f"{path.name}:{ws.title}", close=wb.close))
    return out


def _read_json(path: Path, fmt: RecordFormat, table: str | None) -> list[TableInput]:
    try:
        text = path.read_text(encoding="utf-8-sig")
        if path.suffix.lower() in (".jsonl", ".ndjson"):
            data: Any = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            data = json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise IngestError(f"{path.name}: not valid JSON: {exc}") from exc
    if isinstance(data, dict) and table is None and all(isinstance(v, list) for v in data.values()):
        groups = [(_table_for(path, fmt, str(k)), v) for k, v in data.items()]
    elif isinstance(data, list):
        groups = [(_table_for(path, fmt, table), data)]
    else:
        raise IngestError(f"{path.name}: expected a list of row objects or an object of table name -> rows")
    out = []
    for tname, items in groups:
        header: list[str] = []
        for item in items:
            if isinstance(item, dict):
                header.extend(k for k in item if k not in header)

        def gen(items=items, tname=tname) -> Iterator[tuple[str, dict[str, Any]]]:
            for i, item in enumerate(items, start=1):
                where = f"{path.name} {tname}[{i}]"
                if not isinstance(item, dict):
                    yield where, {"__error__": "is not an object of column -> value"}
                    continue
                yield where, item

        out.append(TableInput(tname, header, gen(), path.name))
    return out
