"""Every code block of README.md and docs/*.md runs here, as written.

How blocks are chosen (nothing is skipped silently):

- A page's blocks run in page order in a directory of their own (a fresh
  temporary directory, the working directory while they run), which starts
  with the files of :func:`fixtures`: the small data sets the pages call
  ``train.svm``, ``test.svm`` and ``more.svm``. A page may make its own files
  (getting-started.md writes those three itself). The ``python`` blocks of a
  page share one namespace, like a notebook's cells.
- ```` ```python ````: executed.
- ```` ```bash ````: every command line (``#`` comments dropped, ``\\``
  continuations joined) must be ``streamfm ...`` or ``python -m streamfm
  ...``; it runs in this process through :func:`streamfm.cli.main` and must
  exit with 0, or with N when its comment says ``exit N`` (the bad-input
  examples). Pipes, redirections and other shell syntax fail the test.
- ```` ```text ````: output or file contents shown to the reader; not run.
- A block right after a line ``<!-- no-test: REASON -->`` is not run (an
  install, a Ray cluster, a benchmark of minutes, data the reader has); the
  reason is required, and :func:`test_skipped_blocks_say_why` lists them.
- The results pages (:data:`RESULTS_PAGES`) are written by the benchmark tools
  named there; their blocks are the commands that measured them (minutes to
  hours on the benchmark data sets) and are not run here.
- Any other fence (no language, another language) fails the test.

Besides running the blocks, the tests below check what the reference pages
list against the code: every command-line option (command-line.md), every
estimator parameter and its default (python-api.md), every manifest field,
array and metrics key of a model directory (model-directory.md), and that its
NumPy reader computes streamfm's outputs beyond its own example (wide data,
three classes, soft assignment); that every ``--option`` a page names exists;
that the README's set-up commands are the ones ``.ci/run`` runs; that links
resolve; and that the pages keep no diary of the work.
"""
from __future__ import annotations

import dataclasses
import pathlib
import re
import shlex
import shutil
import sys
import traceback

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

#: Pages written by a benchmark tool (or recording measurements): their code blocks are the commands
#: that measured them, on the benchmark data sets given by path, and take minutes to hours.
RESULTS_PAGES = {
    "results.md": "tools/reproduce.py",
    "defaults.md": "tools/bench_defaults.py",
    "dense.md": "tools/bench_dense.py",
    "sparse.md": "tools/bench_sparse.py",
    "banana.md": "tools/bench_banana.py",
    "memory.md": "tools/bench_read_memory.py",
    "train-memory.md": "tools/bench_train_memory.py",
    "performance.md": "tools/bench_throughput.py",
    "scaling.md": "tools/bench_ray.py",
    "clicklog.md": "tools/bench_clicklog.py",
    "hashed-quality.md": "tools/bench_hashed_quality.py",
    "scaling-merge.md": "tools/bench_ray_merge.py",
    "dependencies.md": "the whole test suite, per dependency version",
}

NO_TEST = re.compile(r"<!--\s*no-test:\s*(?P<reason>.*?)\s*-->")
FENCE = re.compile(r"^(?P<indent> {0,3})```(?P<lang>[^`\s]*)\s*$")
RUN_LANGS = ("python", "bash")
SHOWN_LANGS = ("text",)
SHELL_SYNTAX = re.compile(r"[|;&<>`$]")
EXIT = re.compile(r"\bexit (\d+)\b")


@dataclasses.dataclass
class Block:
    page: str
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    skip: str | None  # the no-test reason

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def doc_pages() -> list[pathlib.Path]:
    """README.md and every page under docs/ (results pages included)."""
    return [ROOT / "README.md"] + sorted(DOCS.glob("*.md"))


def page_name(path: pathlib.Path) -> str:
    return str(path.relative_to(ROOT))


def blocks_of(path: pathlib.Path) -> list[Block]:
    """The fenced code blocks of a Markdown page, with their no-test markers."""
    lines = path.read_text().splitlines()
    out, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start, indent = i, len(m["indent"])
        body = []
        i += 1
        while i < len(lines) and not re.match(r"^ {0,3}```\s*$", lines[i]):
            body.append(lines[i][indent:] if lines[i][:indent].isspace() else lines[i])
            i += 1
        if i == len(lines):
            raise AssertionError(f"{page_name(path)}:{start + 1}: a code block is never closed")
        before = next((lines[k] for k in range(start - 1, -1, -1) if lines[k].strip()), "")
        marker = NO_TEST.search(before)
        out.append(Block(page_name(path), start + 1, m["lang"], "\n".join(body) + "\n",
                         marker["reason"] if marker else None))
        i += 1
    return out


def runnable_pages() -> list[pathlib.Path]:
    return [p for p in doc_pages() if p.name not in RESULTS_PAGES or p.parent != DOCS]


# --------------------------------------------------------------------------- the data the pages use


def _write_svm(path: pathlib.Path, X: np.ndarray, y: np.ndarray) -> None:
    with open(path, "w") as fh:
        for xi, yi in zip(X, y):
            fh.write(f"{yi} " + " ".join(f"{j + 1}:{v:.6f}" for j, v in enumerate(xi)) + "\n")


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory) -> pathlib.Path:
    """The files every page's directory starts with: ``train.svm`` (2,000 rows), ``test.svm`` (500)
    and ``more.svm`` (1,000): 10 features, labels 0/1 from a nonlinear rule, 1-based libsvm."""
    root = tmp_path_factory.mktemp("doc-data")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3500, 10))
    y = ((X[:, 0] * X[:, 1] > 0) ^ (X[:, 2] > 1.0)).astype(int)
    _write_svm(root / "train.svm", X[:2000], y[:2000])
    _write_svm(root / "test.svm", X[2000:2500], y[2000:2500])
    _write_svm(root / "more.svm", X[2500:], y[2500:])
    return root


# --------------------------------------------------------------------------- running a block


def bash_commands(block: Block) -> list[tuple[list[str], int, str]]:
    """(argv for streamfm.cli.main, expected exit code, the line) of every command of a bash block."""
    joined = block.code.replace("\\\n", " ")
    commands = []
    for line in joined.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        code, _, comment = line.partition(" #")
        expected = EXIT.search(comment)
        if SHELL_SYNTAX.search(code):
            raise AssertionError(f"{block.where}: `{line.strip()}` uses shell syntax; write one streamfm command "
                                 "a line, or mark the block <!-- no-test: REASON -->")
        argv = shlex.split(code)
        if argv[:1] == ["streamfm"]:
            argv = argv[1:]
        elif argv[:3] == ["python", "-m", "streamfm"]:
            argv = argv[3:]
        else:
            raise AssertionError(f"{block.where}: `{line.strip()}` is not a streamfm command; mark the block "
                                 "<!-- no-test: REASON --> if it must not run here")
        commands.append((argv, int(expected.group(1)) if expected else 0, line.strip()))
    return commands


def run_bash(block: Block, capsys) -> None:
    from streamfm.cli import main

    for argv, expected, line in bash_commands(block):
        code = main(argv)
        out, err = capsys.readouterr()
        assert code == expected, f"{block.where}: `{line}` exited with {code}, not {expected}\n{out}\n{err}"
        assert "Traceback" not in err, f"{block.where}: `{line}`\n{err}"


def run_python(block: Block, namespace: dict) -> None:
    try:
        exec(compile(block.code, block.where, "exec"), namespace)
    except Exception:
        pytest.fail(f"{block.where}: the python block raised\n{traceback.format_exc()}", pytrace=False)


@pytest.mark.parametrize("path", runnable_pages(), ids=page_name)
def test_page_runs_as_written(path, fixtures, tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    shutil.copytree(fixtures, work)
    monkeypatch.chdir(work)
    monkeypatch.setattr(sys, "argv", ["streamfm"])
    namespace = {"__name__": "__docs__"}
    for block in blocks_of(path):
        if block.skip is not None:
            continue
        if block.lang == "python":
            run_python(block, namespace)
            capsys.readouterr()
        elif block.lang == "bash":
            run_bash(block, capsys)
        elif block.lang not in SHOWN_LANGS:
            raise AssertionError(f"{block.where}: a ```{block.lang or '(no language)'} block: use python, bash "
                                 "or text, or mark it <!-- no-test: REASON -->")


def test_skipped_blocks_say_why():
    """Every block not run has a reason; the runnable pages run more blocks than they skip."""
    skipped = [b for p in runnable_pages() for b in blocks_of(p) if b.skip is not None]
    for b in skipped:
        assert b.skip.strip(), f"{b.where}: <!-- no-test: --> needs a reason"
    ran = [b for p in runnable_pages() for b in blocks_of(p) if b.skip is None and b.lang in RUN_LANGS]
    assert len(ran) > 2 * len(skipped), (len(ran), [b.where for b in skipped])


def test_results_pages_are_written_by_their_tools():
    for name, tool in RESULTS_PAGES.items():
        assert (DOCS / name).is_file(), name
        if tool.startswith("tools/"):
            assert (ROOT / tool).is_file(), tool
            assert pathlib.Path(tool).name in (DOCS / name).read_text(), f"{name} does not name {tool}"


# --------------------------------------------------------------------------- the README's set-up


def test_readme_setup_commands_are_the_ci_ones():
    """The two set-up commands stay exactly as .ci/run and the project's brief have them."""
    readme = (ROOT / "README.md").read_text()
    assert "pip install . && streamfm train --model banana-model" in readme
    assert 'pip install ".[test,ray]" && python -m pytest' in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'pip install --quiet ".[test,ray]"' in ci
    assert re.search(r"^python3 -m pytest$", ci, re.M)


# --------------------------------------------------------------------------- reference pages against the code


def _section(text: str, heading: str) -> str:
    """The text under a ``## heading`` up to the next ``## ``."""
    m = re.search(rf"^## {re.escape(heading)}\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert m, f"no section '## {heading}'"
    return m.group(1)


def _table_options(text: str) -> dict[str, str]:
    """``{--option: its row}`` of the table rows whose first cell names options."""
    found = {}
    for row in re.findall(r"^\|(.*)\|\s*$", text, re.M):
        cells = [c.strip() for c in row.split("|")]
        for opt in re.findall(r"`(--?[a-z][a-z0-9-]*)", cells[0]):
            found[opt] = row
    return found


def _parser_options(command: str) -> set[str]:
    from streamfm.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    return {s for a in sub._actions for s in a.option_strings if s not in ("-h", "--help")}


def _data_options() -> set[str]:
    import argparse

    from streamfm.cli.data import add_data_options

    p = argparse.ArgumentParser()
    add_data_options(p)
    return {s for a in p._actions for s in a.option_strings if s not in ("-h", "--help")}


COMMANDS = ("train", "predict", "evaluate", "convert", "info", "export", "plot")


def test_command_line_reference_lists_every_option():
    """command-line.md: each command's section lists exactly its own options, the data section exactly
    the data options every data command shares; the model options show Config's defaults."""
    from streamfm.cli.train import _MODEL_OPTIONS
    from streamfm.models.config import Config

    text = (DOCS / "command-line.md").read_text()
    data = _data_options() | {"-q", "--quiet", "--progress", "--no-progress"}
    documented_data = set(_table_options(_section(text, "Reading the data")))
    assert documented_data == data, (documented_data ^ data)
    for command in COMMANDS:
        own = _parser_options(command) - data
        documented = set(_table_options(_section(text, f"`streamfm {command}`")))
        assert documented == own, (command, documented ^ own)
    rows = _table_options(_section(text, "`streamfm train`"))
    for flag, field, _, _ in _MODEL_OPTIONS:
        default = getattr(Config(), field)
        if default is not None:
            assert f"`{default}`" in rows[flag].split("|")[-1], (flag, default, rows[flag])


def test_python_api_lists_every_estimator_parameter():
    """python-api.md's parameter table: every parameter of the four estimators, with its default."""
    from streamfm import FMClassifier, FMRegressor, LLFMClassifier, LLFMRegressor

    text = _section((DOCS / "python-api.md").read_text(), "The estimators")
    rows = {}
    for row in re.findall(r"^\|(.*)\|\s*$", text, re.M):
        cells = [c.strip() for c in row.split("|")]
        m = re.fullmatch(r"`(\w+)`", cells[0])
        if m:
            rows[m.group(1)] = cells[1]
    params = {}
    for cls in (FMClassifier, FMRegressor, LLFMClassifier, LLFMRegressor):
        params.update(cls().get_params())
    assert set(rows) == set(params), set(rows) ^ set(params)
    for name, default in params.items():
        shown = f'"{default}"' if isinstance(default, str) else str(default)
        assert rows[name] == f"`{shown}`", (name, rows[name], shown)


def test_python_api_lists_every_train_option():
    """python-api.md's TrainOptions table: every field with its default."""
    from streamfm import TrainOptions

    text = _section((DOCS / "python-api.md").read_text(), "Train options")
    rows = dict(re.findall(r"^\| `(\w+)` \| `([^`]*)` \|", text, re.M))
    fields = {f.name: f.default for f in dataclasses.fields(TrainOptions)}
    assert set(rows) == set(fields), set(rows) ^ set(fields)
    for name, default in fields.items():
        assert rows[name] == repr(default), (name, rows[name], default)


def test_model_directory_page_names_every_field(tmp_path):
    """model-directory.md names every manifest field, array and metrics.jsonl key a model has."""
    from streamfm import TrainOptions, train
    from streamfm.engines.ray.options import RayOptions
    from streamfm.io.options import ReadOptions
    from streamfm.models.config import Config
    from streamfm.store.modeldir import ModelDir
    from streamfm.training.early_stopping import EarlyStopping
    from streamfm.training.options import RunState

    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 3))
    _write_svm(tmp_path / "d.svm", X, (X[:, 0] > 0).astype(int))
    model = tmp_path / "m"
    train(str(tmp_path / "d.svm"), model, valid=str(tmp_path / "d.svm"),
          options=TrainOptions(epochs=2, quiet=True), config=Config(anchors=4, n_candidates=4))
    store = ModelDir(model)
    manifest = store.read_manifest()
    names = set(manifest) | set(manifest["model"]) | set(manifest["model"]["counters"])
    names |= set(manifest["model"]["standardizer"]) | set(manifest["arrays"])
    names |= {f.name for cls in (RunState, TrainOptions, ReadOptions, Config, RayOptions, EarlyStopping)
              for f in dataclasses.fields(cls)}
    names |= {"ivf_centroids", "kept", "holdout.parquet", "metrics.jsonl", "manifest.json", ".lock"}
    for record in store.read_metrics():
        names |= set(record) | set(record.get("valid", {}))
    text = (DOCS / "model-directory.md").read_text()
    missing = sorted(n for n in names if f"`{n}`" not in text)
    assert not missing, f"model-directory.md does not name {missing}"


def _page_block(page: str, needle: str) -> Block:
    return next(b for b in blocks_of(DOCS / page) if b.lang == "python" and needle in b.code)


@pytest.mark.parametrize("method, p, classes", [("llfm-jo", 1200, 2), ("llfm-do", 6, 3), ("llfm-apl", 6, 2)])
def test_model_directory_reader_computes_streamfm_outputs(tmp_path, method, p, classes):
    """model-directory.md's NumPy reader on cases its own example does not reach: the count sketch of
    data wider than 1,000 features, a softmax over three classes, soft assignment with learned anchors."""
    from streamfm import TrainOptions, load, train
    from streamfm.models.config import Config

    namespace: dict = {}
    exec(compile(_page_block("model-directory.md", "def read_model").code, "model-directory.md", "exec"), namespace)
    rng = np.random.default_rng(2)
    n = 400
    if p > 1000:  # sparse rows: 8 of the p features each
        X = np.zeros((n, p))
        for i in range(n):
            X[i, rng.choice(p, 8, replace=False)] = rng.normal(size=8)
    else:
        X = rng.normal(size=(n, p))
    y = np.digitize(X[:, 0] + X.sum(1) * 0.1, np.quantile(X[:, 0], np.linspace(0, 1, classes + 1)[1:-1]))
    _write_svm(tmp_path / "d.svm", X, y)
    model = tmp_path / "m"
    # as many candidates as anchors: the index returns every anchor, so the reader's exact search agrees
    train(str(tmp_path / "d.svm"), model, options=TrainOptions(epochs=1, quiet=True),
          config=Config(method=method, anchors=6, n_candidates=6, n_neighbors=3))
    manifest, arrays = namespace["read_model"](model)
    f = namespace["outputs"](manifest, arrays, X)
    trained = load(model)
    assert trained.model.q == (64 if p > 1000 else p)
    decision = trained.decision_function(X)
    np.testing.assert_allclose(f if classes > 2 else f[:, 0], decision, atol=1e-9)
    np.testing.assert_allclose(namespace["probabilities"](manifest, f), trained.predict_proba(X), atol=1e-9)


def test_pages_name_only_options_that_exist():
    """Every ``--option`` the README and the docs pages name is an option of the command line."""
    from streamfm.cli import build_parser

    parser = build_parser()
    known = {"--help", "--version"}
    for sub in next(a for a in parser._actions if a.dest == "command").choices.values():
        known |= {s for a in sub._actions for s in a.option_strings}
    for path in runnable_pages():
        named = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", path.read_text()))
        assert named <= known, f"{page_name(path)} names options that do not exist: {sorted(named - known)}"


# --------------------------------------------------------------------------- links and wording


def test_links_resolve_inside_the_repository():
    for path in doc_pages():
        text = path.read_text()
        assert "../shared" not in text, f"{page_name(path)} points outside the repository"
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            file = target.split("#")[0]
            assert (path.parent / file).exists(), f"{page_name(path)}: link to {target} is broken"


def test_pages_keep_no_diary():
    diary = re.compile(r"session [0-9]|tried and not kept|sessions? ago", re.I)
    for path in doc_pages():
        hits = [line for line in path.read_text().splitlines() if diary.search(line)]
        assert not hits, f"{page_name(path)}: {hits}"
