"""The package's layers: no module of wanjax imports (at the top or inside a function) a module that imports it
back, directly or through others."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "wanjax"


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """{module: the wanjax modules it imports}; `from wanjax.x import y` counts wanjax.x.y when y is a module."""
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                edges |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                edges |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                          for a in node.names}  # fmt: skip
        graph[name] = {e for e in edges if e in modules and e != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while not part or part[-1] != v:
                part.append(stack.pop())
                on.discard(part[-1])
            if len(part) > 1:
                out.append(sorted(part))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_checker_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_one_that_imports_it_back():
    graph = import_graph()
    assert "wanjax.parallel.ring" in graph["wanjax.model.attention"]  # the graph sees imports
    assert cycles(graph) == []


def test_the_model_layer_imports_no_higher_layer():
    """model/ (the networks) imports nothing from motion/ (brush files), train/, data/ or the sampler."""
    graph = import_graph()
    higher = ("wanjax.motion", "wanjax.train", "wanjax.data", "wanjax.sample")
    reach = {
        m: {e for e in edges if e.startswith(higher)} for m, edges in graph.items() if m.startswith("wanjax.model")
    }
    assert "wanjax.model.motion" in graph["wanjax.model.dit"]  # the graph sees the model's own motion embedding
    assert {m: e for m, e in reach.items() if e} == {}
