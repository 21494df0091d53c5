#!/usr/bin/env python3
"""Run the original mandala's tutorial notebooks verbatim against this library.

Each notebook runs in its own Python process (fresh interpreter, fresh namespace, a fresh
temporary directory as the working directory) inside an IPython ``InteractiveShell``, so
cells behave as in IPython: ``__main__`` is the notebook's namespace, the value of the last
expression is displayed, ``display(...)`` works. Shell and magic lines (``!pip install ...``,
``%...``) are replaced by ``pass`` and listed; a cell starting with a ``%%`` cell magic is
skipped whole. Our outputs are then compared with the outputs saved in the notebook:

* tables: markdown tables in printed text (``print(df.to_markdown())``) and pandas HTML
  tables (``display(df)``) are compared as tables: column names and order, number of rows,
  and the rows as a multiset (row order is set semantics in mandala), values normalised
  (ids, hashes, addresses and times masked, numbers compared as numbers,
  ``ValueCollection([...])`` compared as a set). A cell that sorts (``sort_values``) must
  also give its sort column in the same order. The index is not compared.
* text: printed text and the text of displayed/returned values (tables taken out),
  normalised (ids masked, box drawing and whitespace runs ignored) -> "text differs".
* pictures (``cf.draw``): the number of displayed images -> "display differs".
* log records (mandala's logger; rich log lines in the saved outputs) are compared as notes.

Statuses per cell: passed, failed (exception), table (mismatch), text, display, skipped.
Exit code 1 if any cell fails or a table mismatches.

Usage::

    PYTHONPATH=/work/main python3 tools/upstream_notebooks.py \
        --repo /work/.mirror/amakelov+mandala/repo [--rev HEAD] [--only 02_ml] \
        [--json out.json] [--timeout 900] [-v]

``--repo`` is a git directory of the original (bare or not; files read with ``git show``)
or a ``docs_source`` folder (or a folder that holds one). Nothing of the original is copied
into this repository: the notebooks are read at run time.

Requirements (besides our package): ipython, pandas, tabulate (for ``to_markdown``),
scikit-learn < 1.8 (the notebooks train models; 04_versions uses ``LogisticRegression(
solver='liblinear')`` on 10 classes, which scikit-learn 1.8+ refuses), graphviz's ``dot`` for
pictures. Install with ``pip install ipython pandas tabulate "scikit-learn<1.8"``.
"""

from __future__ import annotations

import argparse
import difflib
import html.parser
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NOTEBOOKS = [
    "tutorials/01_hello.ipynb",
    "blog/01_cf.ipynb",
    "tutorials/02_ml.ipynb",
    "tutorials/gotchas.ipynb",
    "topics/01_*.ipynb",
    "topics/02_*.ipynb",
    "topics/03_*.ipynb",
    "topics/04_*.ipynb",
    "topics/05_*.ipynb",
    "topics/06_*.ipynb",
]

STATUSES = ["passed", "failed", "table", "text", "display", "skipped"]

# --------------------------------------------------------------------------------------
# Reading the notebooks


class Source:
    """The original's docs, from a git dir or a docs_source folder."""

    def __init__(self, repo: str, rev: str = "HEAD"):
        p = Path(repo)
        self.rev = rev
        self.folder: Path | None = None
        self.git: str | None = None
        if (p / "docs_source").is_dir():
            self.folder = p / "docs_source"
        elif (p / "tutorials").is_dir() or (p / "topics").is_dir():
            self.folder = p
        else:
            r = subprocess.run(
                ["git", "-C", str(p), "rev-parse", "--verify", rev + "^{commit}"],
                capture_output=True,
                text=True,
            )
            if r.returncode != 0:
                raise SystemExit(
                    f"{repo}: neither a docs_source folder nor a git dir ({r.stderr.strip()})"
                )
            self.git = str(p)
            self.commit = r.stdout.strip()

    def describe(self) -> str:
        if self.folder is not None:
            return str(self.folder)
        return f"{self.git} @ {self.commit[:10]}"

    def list(self) -> list[str]:
        if self.folder is not None:
            names = sorted(str(q.relative_to(self.folder)) for q in self.folder.rglob("*.ipynb"))
        else:
            out = subprocess.run(
                ["git", "-C", self.git, "ls-tree", "-r", "--name-only", self.commit, "docs_source"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            names = sorted(n[len("docs_source/") :] for n in out.split() if n.endswith(".ipynb"))
        picked: list[str] = []
        import fnmatch

        for pat in NOTEBOOKS:
            for n in names:
                if fnmatch.fnmatch(n, pat) and n not in picked:
                    picked.append(n)
        return picked

    def read(self, name: str) -> dict:
        if self.folder is not None:
            text = (self.folder / name).read_text(encoding="utf-8")
        else:
            text = subprocess.run(
                ["git", "-C", self.git, "show", f"{self.commit}:docs_source/{name}"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        return json.loads(text)


def _text(v) -> str:
    return "".join(v) if isinstance(v, list) else (v or "")


def code_cells(nb: dict) -> list[dict]:
    return [c for c in nb.get("cells", []) if c.get("cell_type") == "code"]


# --------------------------------------------------------------------------------------
# The worker: runs one notebook's code cells in an InteractiveShell

_MAGIC = re.compile(r"^(\s*)([!%].*)$")


def prepare_source(src: str) -> tuple[str | None, list[str]]:
    """Replace shell/magic lines by ``pass``; None if the cell is a cell magic."""
    lines = src.split("\n")
    first = next((ln for ln in lines if ln.strip()), "")
    if first.lstrip().startswith("%%"):
        return None, [first.strip()]
    skipped = []
    out = []
    for ln in lines:
        m = _MAGIC.match(ln)
        if m:
            skipped.append(m.group(2).strip())
            out.append(m.group(1) + "pass")
        else:
            out.append(ln)
    return "\n".join(out), skipped


class _Events:
    def __init__(self):
        self.items: list[dict] = []

    def add(self, kind: str, **kw):
        if kind in ("stdout", "stderr") and self.items and self.items[-1]["kind"] == kind:
            self.items[-1]["text"] += kw["text"]
            return
        self.items.append({"kind": kind, **kw})


class _Writer:
    def __init__(self, events: _Events, kind: str):
        self.events, self.kind = events, kind

    def write(self, s):
        if s:
            self.events.add(self.kind, text=str(s))
        return len(s)

    def flush(self):
        pass

    def isatty(self):
        return False

    @property
    def encoding(self):
        return "utf-8"


def _keep_data(data: dict) -> dict:
    keep = {}
    for mime, v in data.items():
        if mime.startswith("image/") or mime == "application/pdf":
            keep[mime] = "<picture>"
        elif mime in ("text/plain", "text/html"):
            keep[mime] = v if isinstance(v, str) else str(v)
    return keep


def worker(nb_path: str, out_path: str) -> None:
    import io
    import logging
    import traceback

    os.environ.setdefault("COLUMNS", "115")  # rich's width in Jupyter
    nb = json.loads(Path(nb_path).read_text(encoding="utf-8"))
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.colors = "NoColor"
    events = _Events()

    def publish(data, metadata=None, source=None, *, transient=None, update=False, **kw):
        events.add("display", data=_keep_data(data))

    shell.display_pub.publish = publish
    shell.displayhook.write_output_prompt = lambda: None
    shell.displayhook.write_format_data = lambda fd, md=None: events.add(
        "result", data=_keep_data(fd)
    )
    shell.displayhook.finish_displayhook = lambda: None
    shell._showtraceback = lambda *a, **k: None

    class _LogHandler(logging.Handler):
        def emit(self, record):
            try:
                events.add("log", level=record.levelname, text=record.getMessage())
            except Exception:  # noqa: BLE001
                pass

    logging.getLogger("mandala").addHandler(_LogHandler(level=logging.INFO))
    logging.getLogger("mandala").setLevel(logging.INFO)

    cells_out = []
    real_out, real_err = sys.stdout, sys.stderr
    sys.stdin = io.StringIO("")
    for i, cell in enumerate(code_cells(nb), 1):
        src = _text(cell.get("source"))
        code, skipped = prepare_source(src)
        rec = {"index": i, "skipped_lines": skipped, "skipped_cell": code is None, "error": None}
        events.items = []
        t0 = time.time()
        if code is not None and code.strip():
            sys.stdout, sys.stderr = _Writer(events, "stdout"), _Writer(events, "stderr")
            try:
                res = shell.run_cell(code, store_history=True)
            finally:
                sys.stdout, sys.stderr = real_out, real_err
            err = res.error_in_exec or res.error_before_exec
            if err is not None:
                tb = "".join(traceback.format_exception(type(err), err, err.__traceback__))
                rec["error"] = {
                    "ename": type(err).__name__,
                    "evalue": str(err),
                    "traceback": tb[-4000:],
                }
        rec["seconds"] = round(time.time() - t0, 2)
        rec["events"] = events.items
        cells_out.append(rec)
    mod = sys.modules.get("mandala")
    result = {"cells": cells_out, "mandala_file": getattr(mod, "__file__", None)}
    Path(out_path).write_text(json.dumps(result), encoding="utf-8")


# --------------------------------------------------------------------------------------
# Normalisation

_BOX = re.compile(r"[\u2500-\u259f]")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_MASKS = [
    (
        re.compile(
            r"\b(hid|cid|content|semantic|content_version_id|semantic_version_id)=[0-9a-f]+(\.\.\.)?"
        ),
        r"\1=<ID>",
    ),
    (re.compile(r"0x[0-9a-fA-F]+"), "0x<ADDR>"),
    (re.compile(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{8,}\b"), "<HEX>"),
    (re.compile(r"\b\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?\b"), "<TIME>"),
    (re.compile(r"\[?\b\d{1,2}:\d{2}:\d{2}\b\]?"), "<TIME>"),
]
_VC = re.compile(r"ValueCollection\(\[(.*?)\]\)")


def _split_top(s: str) -> list[str]:
    parts, depth, cur, quote = [], 0, [], None
    for ch in s:
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = None
            continue
        if ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    if "".join(cur).strip():
        parts.append("".join(cur).strip())
    return parts


def mask(s: str, cwd: str | None = None) -> str:
    s = _ANSI.sub("", s)
    if cwd:
        s = s.replace(cwd, "<CWD>")
    for rx, rep in _MASKS:
        s = rx.sub(rep, s)
    s = _VC.sub(lambda m: "ValueCollection({" + ", ".join(sorted(_split_top(m.group(1)))) + "})", s)
    return s


def norm_lines(s: str, cwd: str | None = None) -> list[str]:
    s = _BOX.sub(" ", mask(s, cwd))
    return [" ".join(ln.split()) for ln in s.splitlines() if ln.strip()]


def norm_cell(v: str) -> str:
    v = " ".join(mask(v).split())
    try:
        f = float(v)
    except ValueError:
        return v
    if f != f:
        return "nan"
    return format(f, ".10g")


# --------------------------------------------------------------------------------------
# Tables


class _HTMLTable(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tables: list[dict] = []
        self._row = None
        self._cell = None
        self._section = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append({"head": [], "body": []})
        elif tag in ("thead", "tbody"):
            self._section = tag
        elif tag == "tr" and self.tables:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = [tag, ""]

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(tuple(self._cell))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            key = "head" if self._section == "thead" else "body"
            self.tables[-1][key].append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[1] += data


def parse_html_tables(s: str) -> list[dict]:
    if 'class="dataframe"' not in s:
        return []
    p = _HTMLTable()
    p.feed(s)
    out = []
    for t in p.tables:
        body = [r for r in t["body"] if not all(c[1].strip() in ("...", "…") for c in r)]
        n_index = 0
        if body:
            while n_index < len(body[0]) and body[0][n_index][0] == "th":
                n_index += 1
        head_rows = [r for r in t["head"] if len(r) > n_index]
        ncols = max((len(r) for r in head_rows), default=0) - n_index
        cols = []
        for j in range(ncols):
            names = [r[n_index + j][1].strip() for r in head_rows if n_index + j < len(r)]
            cols.append("/".join(n for n in names if n))
        rows = [[c[1] for c in r[n_index:]] for r in body]
        out.append({"columns": cols, "rows": rows, "kind": "html"})
    return out


_SEP = re.compile(r"^\|[\s:\-|]+\|$")


def split_markdown_tables(text: str) -> tuple[list[dict], str]:
    """Take pipe tables (``DataFrame.to_markdown()``) out of ``text``."""
    lines = text.split("\n")
    tables, rest, i = [], [], 0
    while i < len(lines):
        ln = lines[i].rstrip()
        if ln.startswith("|") and i + 1 < len(lines) and _SEP.match(lines[i + 1].rstrip()):
            header = [c.strip() for c in ln.strip("|").split("|")]
            i += 2
            rows: list[list[str]] = []
            while (
                i < len(lines)
                and lines[i].rstrip().startswith("|")
                and lines[i].rstrip().endswith("|")
            ):
                cells = [c.strip() for c in lines[i].rstrip().strip("|").split("|")]
                if rows and cells and cells[0] == "":  # continuation of a multi-line cell
                    for j, c in enumerate(cells):
                        if j < len(rows[-1]) and c:
                            rows[-1][j] += "\n" + c
                else:
                    rows.append(cells)
                i += 1
            # first column is the index
            tables.append(
                {"columns": header[1:], "rows": [r[1:] for r in rows], "kind": "markdown"}
            )
            rest.append("<TABLE>")
            continue
        rest.append(lines[i])
        i += 1
    return tables, "\n".join(rest)


_SORT = re.compile(r"sort_values\(\s*(?:by\s*=\s*)?\[?\s*['\"]([^'\"]+)['\"]")


def compare_tables(exp: dict, got: dict, sort_cols: list[str]) -> list[str]:
    problems = []
    if exp["columns"] != got["columns"]:
        missing = [c for c in exp["columns"] if c not in got["columns"]]
        extra = [c for c in got["columns"] if c not in exp["columns"]]
        msg = f"columns differ: expected {exp['columns']}, got {got['columns']}"
        if missing or extra:
            msg += f" (missing {missing}, extra {extra})"
        else:
            msg += " (order)"
        problems.append(msg)
    if len(exp["rows"]) != len(got["rows"]):
        problems.append(f"rows: expected {len(exp['rows'])}, got {len(got['rows'])}")
    common = [c for c in exp["columns"] if c in got["columns"]]
    if not common:
        return problems

    def project(t):
        idx = [t["columns"].index(c) for c in common]
        return [tuple(norm_cell(r[j]) if j < len(r) else "<none>" for j in idx) for r in t["rows"]]

    e_rows, g_rows = project(exp), project(got)
    from collections import Counter

    ce, cg = Counter(e_rows), Counter(g_rows)
    only_e = list((ce - cg).elements())
    only_g = list((cg - ce).elements())
    if only_e or only_g:
        lim = 3
        msg = f"values differ on columns {common}: {len(only_e)} expected row(s) not found, {len(only_g)} unexpected"

        def show(rows):
            return "; ".join(
                "{" + ", ".join(f"{c}={v[:60]!r}" for c, v in zip(common, r)) + "}"
                for r in rows[:lim]
            )

        if only_e:
            msg += f"\n      expected only: {show(only_e)}"
        if only_g:
            msg += f"\n      ours only:     {show(only_g)}"
        problems.append(msg)
    for sc in sort_cols:
        if sc in common:
            j = common.index(sc)
            es, gs = [r[j] for r in e_rows], [r[j] for r in g_rows]
            if es != gs:
                problems.append(f"sorted column {sc!r} order differs: expected {es}, got {gs}")
    return problems


# --------------------------------------------------------------------------------------
# Comparing a cell

_RICH_LOG = re.compile(
    r"^\s*(?:\[[^\]]*\]\s*)?(DEBUG|INFO|WARNING|ERROR|CRITICAL)\s+(.*?)(?:\s+\S+\.py:\d+)?\s*$",
    re.S,
)


def classify(data: dict) -> tuple[str, str]:
    """('image'|'table-html'|'log'|'text', payload) for a display/result bundle."""
    if any(m.startswith("image/") or m == "application/pdf" for m in data):
        return "image", ""
    h = _text(data.get("text/html", ""))
    if 'class="dataframe"' in h:
        return "table-html", h
    t = _ANSI.sub("", _text(data.get("text/plain", "")))
    m = _RICH_LOG.match(t)
    if m and "\n" not in t.strip():
        return "log", m.group(2)
    return "text", t


def saved_events(cell: dict) -> list[dict]:
    evs = []
    for o in cell.get("outputs", []):
        ot = o.get("output_type")
        if ot == "stream":
            evs.append({"kind": o.get("name", "stdout"), "text": _text(o.get("text"))})
        elif ot in ("display_data", "execute_result"):
            data = {k: _text(v) for k, v in o.get("data", {}).items()}
            evs.append({"kind": "display" if ot == "display_data" else "result", "data": data})
        elif ot == "error":
            evs.append({"kind": "error", "ename": o.get("ename"), "evalue": o.get("evalue")})
    return evs


def digest(events: list[dict], cwd: str | None) -> dict:
    text_parts, html_tables, images, logs, errors = [], [], 0, [], []
    for ev in events:
        k = ev["kind"]
        if k == "stdout":
            text_parts.append(ev["text"])
        elif k == "log":
            logs.append(" ".join(mask(ev["text"], cwd).split()))
        elif k in ("display", "result"):
            kind, payload = classify(ev["data"])
            if kind == "image":
                images += 1
            elif kind == "table-html":
                html_tables.extend(parse_html_tables(payload))
            elif kind == "log":
                logs.append(" ".join(mask(payload, cwd).split()))
            else:
                text_parts.append(payload + "\n")
        elif k == "error":
            errors.append(ev)
    md_tables, rest = split_markdown_tables("".join(text_parts))
    return {
        "tables": md_tables + html_tables,
        "text": norm_lines(rest, cwd),
        "images": images,
        "logs": logs,
        "errors": errors,
    }


def compare_cell(src: str, saved: dict, ours: dict, cwd: str | None) -> dict:
    res = {"index": ours["index"], "problems": [], "notes": []}
    if ours["skipped_lines"]:
        res["notes"].append("skipped lines: " + "; ".join(ours["skipped_lines"]))
    if ours["skipped_cell"]:
        res["status"] = "skipped"
        return res
    exp = digest(saved_events(saved), None)
    got = digest(ours["events"], cwd)
    status = "passed"
    err = ours.get("error")
    if err is not None:
        if exp["errors"] and exp["errors"][0].get("ename") == err["ename"]:
            res["notes"].append(f"fails as the original did: {err['ename']}")
        else:
            res["status"] = "failed"
            res["problems"].append(f"{err['ename']}: {err['evalue']}"[:500])
            res["traceback"] = err["traceback"]
            return res
    elif exp["errors"]:
        res["notes"].append(f"original raised {exp['errors'][0].get('ename')}, ours did not")
    sort_cols = _SORT.findall(src)
    if len(exp["tables"]) != len(got["tables"]):
        res["problems"].append(f"tables: expected {len(exp['tables'])}, got {len(got['tables'])}")
        status = "table"
    for n, (et, gt) in enumerate(zip(exp["tables"], got["tables"]), 1):
        probs = compare_tables(et, gt, sort_cols)
        if probs:
            status = "table"
            res["problems"].extend(f"table {n}: {p}" for p in probs)
    e_text, g_text = exp["text"], got["text"]
    if " ".join(e_text) != " ".join(g_text):
        diff = list(difflib.unified_diff(e_text, g_text, "saved", "ours", n=0, lineterm=""))[2:]
        diff = [d for d in diff if not d.startswith("@@")]
        res["diff"] = diff
        res["saved_text"], res["our_text"] = e_text, g_text
        short = diff[:14] + ([f"... ({len(diff) - 14} more diff lines)"] if len(diff) > 14 else [])
        res["problems"].append("text differs:\n      " + "\n      ".join(d[:200] for d in short))
        if status == "passed":
            status = "text"
    if exp["images"] != got["images"]:
        res["problems"].append(f"pictures displayed: expected {exp['images']}, got {got['images']}")
        if status == "passed":
            status = "display"
    if sorted(exp["logs"]) != sorted(got["logs"]):
        res["notes"].append(f"log differs: expected {exp['logs']}, got {got['logs']}")
    res["status"] = status
    return res


# --------------------------------------------------------------------------------------
# Driver


def run_notebook(source: Source, name: str, timeout: float) -> dict:
    nb = source.read(name)
    cells = code_cells(nb)
    with tempfile.TemporaryDirectory(prefix="mandala-nb-") as tmp:
        nb_file = Path(tmp) / "notebook.json"
        out_file = Path(tmp) / "result.json"
        cwd = Path(tmp) / "cwd"
        cwd.mkdir()
        nb_file.write_text(json.dumps(nb), encoding="utf-8")
        t0 = time.time()
        try:
            proc = subprocess.run(
                [
                    sys.executable,
                    os.path.abspath(__file__),
                    "--worker",
                    str(nb_file),
                    str(out_file),
                ],
                cwd=cwd,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
            crash = (
                None
                if out_file.exists()
                else f"worker exited {proc.returncode}: {proc.stderr[-2000:]}"
            )
        except subprocess.TimeoutExpired:
            crash = f"timed out after {timeout}s"
        seconds = round(time.time() - t0, 1)
        if crash:
            return {
                "notebook": name,
                "cells": len(cells),
                "crash": crash,
                "results": [],
                "seconds": seconds,
            }
        worker_out = json.loads(out_file.read_text(encoding="utf-8"))
        results = []
        for cell, ours in zip(cells, worker_out["cells"]):
            src = _text(cell.get("source"))
            r = compare_cell(src, cell, ours, str(cwd.resolve()))
            r["source_head"] = src.strip().split("\n")[0][:80]
            r["seconds"] = ours["seconds"]
            results.append(r)
    return {
        "notebook": name,
        "cells": len(cells),
        "results": results,
        "seconds": seconds,
        "mandala_file": worker_out.get("mandala_file"),
    }


def summarize(reports: list[dict], verbose: bool) -> str:
    lines = []
    hdr = f"{'notebook':34} {'cells':>5} {'run':>4} " + " ".join(f"{s:>7}" for s in STATUSES)
    lines.append(hdr)
    lines.append("-" * len(hdr))
    tot = {s: 0 for s in STATUSES}
    tot_cells = tot_run = 0
    for rep in reports:
        counts = {s: 0 for s in STATUSES}
        for r in rep["results"]:
            counts[r["status"]] += 1
        run = len(rep["results"]) - counts["skipped"]
        tot_cells += rep["cells"]
        tot_run += run
        for s in STATUSES:
            tot[s] += counts[s]
        tail = "  CRASH: " + rep["crash"][:200] if rep.get("crash") else ""
        lines.append(
            f"{rep['notebook']:34} {rep['cells']:>5} {run:>4} "
            + " ".join(f"{counts[s]:>7}" for s in STATUSES)
            + tail
        )
    lines.append("-" * len(hdr))
    lines.append(
        f"{'total':34} {tot_cells:>5} {tot_run:>4} " + " ".join(f"{tot[s]:>7}" for s in STATUSES)
    )
    lines.append("")
    for rep in reports:
        for r in rep["results"]:
            if r["status"] not in ("passed", "skipped") or (verbose and r["notes"]):
                lines.append(
                    f"[{r['status']}] {rep['notebook']} cell {r['index']}: {r['source_head']}"
                )
                for p in r["problems"]:
                    lines.append("    " + p)
                if verbose:
                    for n in r["notes"]:
                        lines.append("    note: " + n[:400])
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        worker(argv[1], argv[2])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--repo", required=True, help="git dir of the original, or a docs_source folder"
    )
    ap.add_argument("--rev", default="HEAD", help="revision to read from a git dir (default HEAD)")
    ap.add_argument(
        "--only", action="append", help="run notebooks whose path contains NAME (repeatable)"
    )
    ap.add_argument("--json", help="write per-cell details here")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per notebook")
    ap.add_argument(
        "-v", "--verbose", action="store_true", help="also print notes (skipped lines, logs)"
    )
    args = ap.parse_args(argv)
    source = Source(args.repo, args.rev)
    names = source.list()
    if args.only:
        names = [n for n in names if any(o in n for o in args.only)]
    if not names:
        print("no notebooks selected", file=sys.stderr)
        return 2
    reports = []
    for name in names:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        reports.append(run_notebook(source, name, args.timeout))
    mfile = next((r.get("mandala_file") for r in reports if r.get("mandala_file")), None)
    print(f"original: {source.describe()}\nmandala under test: {mfile}\n")
    print(summarize(reports, args.verbose))
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"source": source.describe(), "mandala_file": mfile, "notebooks": reports}, indent=1
            ),
            encoding="utf-8",
        )
    bad = any(
        rep.get("crash") or any(r["status"] in ("failed", "table") for r in rep["results"])
        for rep in reports
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
