"""The fabrication studio's pages (``/studio``, for researchers and hospital admins): a person's
data projects, each as a table of columns with their rules; the rule editor (form view and textual
view kept in sync by a round trip through fabrication's own parser and printer — htmx on every
change, a submit button without JavaScript); a sample of one rule; profiling an uploaded table;
fabrication runs with their progress, report, plots and downloads. The work is done by
:mod:`gateway.studio`; refusals are shown inline."""

from __future__ import annotations

from flask import Blueprint, Response, redirect, render_template, request, url_for

from .. import problems as P
from .. import studio as S
from ..security import services
from .common import attempt, status_of
from .session import actor

bp = Blueprint("web_studio", __name__, url_prefix="/studio")


def studio() -> S.Studio:
    return S.Studio.for_user(services().settings.data_dir, actor().user_id)


def _htmx() -> bool:
    return bool(request.headers.get("HX-Request"))


@bp.app_context_processor
def _studio_roles():
    return {"studio_roles": S.STUDIO_ROLES}


# ----------------------------------------------------------------------------- projects


def _home(problem=None, form=None, status: int = 200):
    projects, p = attempt(lambda: studio().projects())
    from fabrication import packaged_projects

    return render_template("web_studio/home.html", projects=projects or [], packaged=packaged_projects(),
                           problem=problem or p, form=form or {}), status


@bp.get("/")
def home():
    return _home()


@bp.post("/projects")
def create():
    form = request.form
    name = form.get("name", "")

    def run():
        s = studio()
        how = form.get("from", "")
        if how == "packaged":
            return s.create_packaged(name, form.get("packaged", ""))
        upload = request.files.get("file")
        if upload is None or not upload.filename:
            raise P.Problem(S.INVALID_UPLOAD, "choose a file to upload")
        data = upload.read()
        if how == "yaml":
            return s.create_from_yaml(name, data)
        if how == "table":
            share = form.get("holdout", "30").strip() or "0"
            if not share.replace(".", "", 1).isdigit():
                raise P.Problem(P.VALIDATION, "hold back: a percentage between 0 and 50")
            return s.create_from_table(name, upload.filename, data, float(share) / 100)
        raise P.Problem(P.VALIDATION, "choose how to start the project")

    created, problem = attempt(run)
    if problem is not None:
        return _home(problem, form, status_of(problem))
    return redirect(url_for(".project", name=created), 303)


def _project(name: str, problem=None, done=None, status: int = 200):
    overview, p = attempt(lambda: studio().overview(name))
    if overview is None:
        problem = problem or p
        return render_template("web_studio/home.html", projects=studio().projects(), packaged=[], problem=problem,
                               form={}), status_of(problem)
    return render_template("web_studio/project.html", p=overview, problem=problem or p, done=done,
                           max_rows=S.MAX_RUN_ROWS), status


@bp.get("/projects/<name>")
def project(name: str):
    return _project(name)


@bp.get("/projects/<name>/project.yaml")
def project_yaml(name: str):
    text, problem = attempt(lambda: studio().yaml_text(name))
    if problem is not None:
        return _project(name, problem, status=status_of(problem))
    return Response(text, mimetype="application/yaml",
                    headers={"Content-Disposition": f'attachment; filename="{name}.yaml"'})


@bp.post("/projects/<name>/delete")
def delete(name: str):
    _, problem = attempt(lambda: studio().delete(name))
    if problem is not None:
        return _project(name, problem, status=status_of(problem))
    return redirect(url_for(".home"), 303)


# ----------------------------------------------------------------------------- the rule editor


def _editor_page(ed: S.Editor, sample=None, status: int = 200):
    template = "web_studio/_editor.html" if _htmx() else "web_studio/rule.html"
    if _htmx():
        status = 200  # htmx swaps only 2xx answers: the problem is shown inline in the editor
    return render_template(template, ed=ed, ops=S.OPERATORS, kinds=S.KINDS, sample=sample), status


@bp.get("/projects/<name>/tables/<table>/rules/new")
def new_rule(name: str, table: str):
    ed, problem = attempt(lambda: studio().editor(name, table, None, request.args.get("column")))
    if problem is not None:
        return _project(name, problem, status=status_of(problem))
    return _editor_page(ed)


@bp.get("/projects/<name>/tables/<table>/rules/<int:index>")
def rule(name: str, table: str, index: int):
    ed, problem = attempt(lambda: studio().editor(name, table, index))
    if problem is not None:
        return _project(name, problem, status=status_of(problem))
    return _editor_page(ed)


@bp.post("/projects/<name>/tables/<table>/rules/edit")
def edit_rule(name: str, table: str):
    """One round trip of the editor. Which view changed is told by the text itself: the page sends
    back the text it showed (``base``) beside the textarea, so a changed text wins and otherwise
    the form is applied — the same with htmx on every change as with a button and no JavaScript.
    Explicit buttons add, remove or zoom into an operand, fabricate a sample or save the rule."""
    form = request.form.to_dict()
    explicit = form.pop("action", "")
    s = studio()
    ed = S.Editor.from_form(name, table, form)
    text_changed = ed.text.strip() != form.get("base", ed.text).strip()
    if explicit in ("", "sample", "save"):
        pending = "text" if text_changed else "form"
    else:
        pending = explicit
    if pending != "text":
        ed.text = form.get("base", ed.text)  # the form edits the rule as it was shown
    ed, problem = attempt(lambda: s.apply(ed, pending, form))
    if ed is None:
        return _project(name, problem, status=status_of(problem))
    sample = None
    if explicit == "save":
        index, problem = attempt(lambda: s.save_rule(ed))
        if problem is None:
            target = url_for(".project", name=name, saved=f"{table}.{index}") + f"#table-{table}"
            if _htmx():
                return Response(status=204, headers={"HX-Redirect": target})
            return redirect(target, 303)
        ed.problem = problem
    elif explicit == "sample" and ed.problem is None:
        sample, ed.problem = attempt(lambda: s.sample(ed))
    return _editor_page(ed, sample, status_of(ed.problem) if ed.problem else 200)


@bp.post("/projects/<name>/tables/<table>/rules/<int:index>/delete")
def delete_rule(name: str, table: str, index: int):
    _, problem = attempt(lambda: studio().delete_rule(name, table, index))
    if problem is not None:
        return _project(name, problem, status=status_of(problem))
    return _project(name, done=f"Rule {index + 1} of {table} removed.")


# ----------------------------------------------------------------------------- runs


@bp.post("/projects/<name>/runs")
def start_run(name: str):
    rows = request.form.get("rows", "").strip()
    if rows and not rows.isdigit():
        return _project(name, P.Problem(P.VALIDATION, "rows: a whole number"), status=422)
    run, problem = attempt(lambda: studio().start_run(name, int(rows) if rows else None))
    if problem is not None:
        return _project(name, problem, status=status_of(problem))
    return redirect(url_for(".run", name=name, run=run), 303)


@bp.get("/projects/<name>/runs/<run>")
def run(name: str, run: str):
    result, problem = attempt(lambda: studio().result(name, run))
    if problem is not None:
        return _project(name, problem, status=status_of(problem))
    return render_template("web_studio/run.html", name=name, run=run, r=result, meta=studio().meta(name))


@bp.post("/projects/<name>/runs/<run>/cancel")
def cancel_run(name: str, run: str):
    _, problem = attempt(lambda: studio().cancel_run(name, run))
    if problem is not None:
        return _project(name, problem, status=status_of(problem))
    return redirect(url_for(".run", name=name, run=run), 303)


@bp.get("/projects/<name>/runs/<run>/progress")
def progress(name: str, run: str):
    st, problem = attempt(lambda: studio().status(name, run))
    if problem is not None:
        return _project(name, problem, status=status_of(problem))
    if st["state"] in ("done", "failed", "cancelled") and _htmx():
        return Response(status=204, headers={"HX-Refresh": "true"})
    return render_template("web_studio/_progress.html", name=name, run=run, st=st)


@bp.get("/projects/<name>/runs/<run>/plots/<plot>")
def plot(name: str, run: str, plot: str):
    data, problem = attempt(lambda: studio().plot(name, run, plot))
    if problem is not None:
        return Response(problem.message, status=status_of(problem), mimetype="text/plain")
    return Response(data, mimetype="image/svg+xml")


@bp.get("/projects/<name>/runs/<run>/download/<what>")
def download(name: str, run: str, what: str):
    got, problem = attempt(lambda: studio().download(name, run, what))
    if problem is not None:
        return _project(name, problem, status=status_of(problem))
    filename, data, mimetype = got
    return Response(data, mimetype=mimetype, headers={"Content-Disposition": f'attachment; filename="{filename}"'})
