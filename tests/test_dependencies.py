"""The dependency rules: generating loads no verify code, the training loader loads no export or upload code, and no
module of builder/ imports (directly or through others) itself. Checked in fresh interpreters, as a user imports
them."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _loaded_after(statement: str) -> set[str]:
    code = (f"import json, sys\n{statement}\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('builder'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_generation_loads_no_verify_code():
    loaded = _loaded_after("import builder.run.launch, builder.run.phases, builder.run.tasks, builder.run.workers, "
                           "fgbg_depth")
    assert "builder.run.pipeline" in loaded
    assert not {m for m in loaded if m.startswith("builder.verify")}


def test_training_loader_loads_no_publishing_code():
    loaded = _loaded_after("import builder.train.loader")
    assert "builder.train.loader" in loaded
    assert not {m for m in loaded if m.startswith("builder.publish")}


def test_torch_dataset_is_public_and_lazy():
    code = ("import sys, fgbg_depth\nassert 'torch_dataset' in fgbg_depth.__all__\n"
            "assert 'torch_dataset' in dir(fgbg_depth)\nassert 'torch' not in sys.modules\n"
            "assert callable(fgbg_depth.torch_dataset)")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def _imports(path: Path) -> set[str]:
    """builder modules a file imports at any level (function-local imports count: they run too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("builder"):
            found |= {f"{node.module}.{a.name}" for a in node.names} | {node.module}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("builder")}
    return found


def test_builder_has_no_import_cycle():
    modules = {".".join(p.relative_to(ROOT).with_suffix("").parts): p for p in (ROOT / "builder").rglob("*.py")}
    modules = {name.removesuffix(".__init__"): path for name, path in modules.items()}
    graph = {name: {i for i in _imports(path) if i in modules and i != name} for name, path in modules.items()}
    state: dict[str, int] = {}

    def visit(name: str, trail: list[str]) -> None:
        state[name] = 1
        for target in sorted(graph[name]):
            if state.get(target) == 1:
                raise AssertionError("import cycle: " + " -> ".join(trail[trail.index(target):] + [target]))
            if target not in state:
                visit(target, trail + [target])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


# each imports only those before it
WINGS = ("contract", "rows", "store", "run", "verify", "publish", "train", "testing", "bench")


def test_each_wing_imports_only_the_wings_below_it():
    upward = []
    for path in sorted((ROOT / "builder").rglob("*.py")):
        wing = path.relative_to(ROOT / "builder").parts[0]
        if wing not in WINGS:
            continue
        for target in _imports(path):
            parts = target.split(".")
            if len(parts) > 1 and parts[1] in WINGS and WINGS.index(parts[1]) > WINGS.index(wing):
                upward.append(f"{path.relative_to(ROOT)} imports {target}")
    assert not upward, "\n".join(sorted(set(upward)))


def test_every_module_sits_in_a_wing():
    assert sorted(p.name for p in (ROOT / "builder").glob("*.py")) == ["__init__.py"]
    assert sorted(p.name for p in (ROOT / "builder").iterdir() if p.is_dir() and p.name != "__pycache__") == \
        sorted(WINGS)


# What only builder/store does to a dataset folder: locks, renames, fsync, removing trees, opening shard files, and
# listing folders (markers, shards). Checked in the wings and scripts that read or write datasets.
FOLDER_CALLS = {"os.replace", "os.rename", "os.fsync", "shutil.rmtree", "shutil.copyfile", "fcntl.flock",
                "pa.memory_map", "pa.OSFile", "pa.ipc.open_stream", "pa.ipc.new_stream", "pq.ParquetFile",
                "pq.read_schema", "pq.read_table"}
FOLDER_METHODS = {"glob", "rglob", "iterdir", "unlink", "rename", "mkdir", "touch"}  # of pathlib.Path
DATASET_USERS = [*(ROOT / "builder").glob("run/*.py"), *(ROOT / "builder").glob("verify/*.py"),
                 *(ROOT / "builder").glob("publish/*.py"), ROOT / "builder/train/loader.py", ROOT / "fgbg_depth.py",
                 *(ROOT / "scripts" / name for name in ("generate.py", "verify.py", "push_to_hub.py",
                                                         "export_coco.py"))]


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else "?"


def test_only_the_store_touches_the_dataset_folder():
    """The run, verify, publish and the training loader (and their scripts) reach a dataset folder only through
    builder/store: none of them takes a lock, renames, fsyncs, lists a folder or opens a shard file itself."""
    found = []
    for path in DATASET_USERS:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import | ast.ImportFrom) and "fcntl" in {a.name for a in node.names}:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} imports fcntl")
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            name = _dotted(node.func)
            shared_memory = name.startswith("os.") or name.endswith("memory.unlink")  # run/workers.py's rings
            if name in FOLDER_CALLS or (node.func.attr in FOLDER_METHODS and not shared_memory):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} calls {name}")
    assert not found, "\n".join(found)


def _docstring_line(text: str, label: str) -> str:
    """The text after `label` up to the next blank line or label, as one line."""
    after = text.split(label, 1)[1] if label in text else ""
    return " ".join(after.split("\n\n")[0].split("Must not")[0].split())


def wing_docstring_problems(wing: str, doc: str, modules: set[str]) -> list[str]:
    """What the wing's docstring gets wrong: a module it does not name or names but lacks, and its import rule
    not matching the wings' order (it may import the wings below it; they must not import it)."""
    words = lambda line: {w.strip(".,;:()`/") for w in line.split()}  # noqa: E731
    named = words(_docstring_line(doc, "Modules:"))
    below = set(WINGS[:WINGS.index(wing)])
    problems = [f"{wing}: module {m} not named under 'Modules:'" for m in sorted(modules - named)]
    problems += [f"{wing}: 'Modules:' names {m}, which it lacks" for m in sorted(named - modules - {""})]
    if (words(_docstring_line(doc, "May import:")) & set(WINGS)) != below:
        problems.append(f"{wing}: 'May import:' must name exactly {sorted(below) or 'no wing'}")
    if (words(_docstring_line(doc, "Must not be imported by:")) & set(WINGS)) != below:
        problems.append(f"{wing}: 'Must not be imported by:' must name exactly {sorted(below) or 'no wing'}")
    return problems


def test_each_wing_says_what_it_holds_and_its_import_rule():
    problems = []
    for wing in WINGS:
        folder = ROOT / "builder" / wing
        doc = ast.get_docstring(ast.parse((folder / "__init__.py").read_text())) or ""
        modules = {p.stem for p in folder.glob("*.py") if p.name != "__init__.py"}
        modules |= {p.name for p in folder.iterdir() if (p / "__init__.py").exists()}
        problems += wing_docstring_problems(wing, doc, modules)
    assert not problems, "\n".join(problems)


def test_the_wing_docstring_check_sees_a_missing_module_and_a_wrong_rule():
    doc = "Stuff.\n\nModules: a, b.\n\nMay import: contract.\nMust not be imported by: contract."
    assert wing_docstring_problems("rows", doc, {"a", "b"}) == []
    assert wing_docstring_problems("rows", doc, {"a", "b", "c"}) == ["rows: module c not named under 'Modules:'"]
    assert wing_docstring_problems("store", doc, {"a", "b"}) == [
        "store: 'May import:' must name exactly ['contract', 'rows']",
        "store: 'Must not be imported by:' must name exactly ['contract', 'rows']"]
