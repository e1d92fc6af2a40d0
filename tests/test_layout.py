"""The package's layers: nothing imports upwards, no cycles between parts.

Every import of every module (function-level ones too) is read with
`ast`; a part may use only the parts below it (docs/architecture.md).
"""
import ast
import pathlib

import pytest

import odl_genprior

ROOT = pathlib.Path(odl_genprior.__file__).parent

#: part -> the parts it may import (its own modules always)
ALLOWED = {
    '_compat': set(),
    'files': set(),
    'activations': set(),
    'bridge': {'files'},
    'diagnostics': {'bridge'},
    'metrics': {'bridge'},
    'training': {'files'},
    'data': set(),
    'problems': {'bridge', 'data', 'metrics'},
    'diffusion': {'bridge', 'training'},
    'nn': {'activations', 'bridge', 'metrics', 'training'},
    'bregman': {'bridge', 'training'},
    'generators': {'_compat', 'activations', 'bridge', 'metrics', 'data',
                   'training', 'diffusion'},
    'models': {'activations', 'bridge', 'metrics', 'training', 'data',
               'problems', 'generators', 'nn', 'bregman', 'diffusion'},
    'recon': {'activations', '_compat', 'files', 'bridge', 'metrics',
              'training', 'data', 'problems',
              'generators', 'nn', 'bregman', 'diffusion', 'models'},
    'interop': {'bridge', 'problems', 'recon', 'models', 'nn', 'metrics',
                'training', 'diagnostics', 'files', 'data'},
    'cli': {'activations', 'bridge', 'metrics', 'training', 'data',
            'problems', 'generators', 'nn', 'bregman', 'diffusion', 'models',
            'recon'},
    '__main__': {'cli'},
}


def _part(module):
    """``odl_genprior.recon.dip`` -> ``'recon'``; the root -> None."""
    parts = module.split('.')
    return parts[1] if len(parts) > 1 else None


def _import_targets():
    """(importing module, imported module) for every import, and, for
    ``from a.b import c``, also ``a.b.c`` (which may be a module)."""
    for path in sorted(ROOT.rglob('*.py')):
        rel = path.relative_to(ROOT.parent).with_suffix('')
        module = '.'.join(rel.parts).removesuffix('.__init__')
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.level:
                # relative: `from ..recon import base` in problems/forward
                package = module.split('.')
                if path.name != '__init__.py':
                    package = package[:-1]
                base = package[:len(package) - (node.level - 1)]
                if node.module:
                    targets = ['.'.join(base + node.module.split('.'))]
                else:
                    targets = ['.'.join(base + [a.name]) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and (
                    node.module.split('.')[0] == 'odl_genprior'):
                if node.module == 'odl_genprior':
                    targets = [f'odl_genprior.{a.name}' for a in node.names]
                else:
                    targets = [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names
                           if a.name.startswith('odl_genprior.')]
            for target in targets:
                yield module, target, False
                if isinstance(node, ast.ImportFrom):
                    for a in node.names:
                        yield module, f'{target}.{a.name}', True


def _imports():
    """(importing module, its part, imported part) for every import."""
    for module, target, maybe in _import_targets():
        if not maybe:
            yield module, _part(module), _part(target)


def test_every_part_is_placed():
    found = {_part(m) for m, _, _ in _imports()} - {None}
    assert found <= set(ALLOWED), found - set(ALLOWED)


def test_nothing_imports_upwards():
    wrong = sorted({(module, target) for module, part, target in
                    _imports()
                    if part is not None and target is not None
                    and target != part and target not in ALLOWED[part]})
    assert not wrong, f'imports against the layers: {wrong}'


def test_layers_have_no_cycle():
    # ALLOWED itself must be acyclic, so the rule above forbids cycles
    order, seen = [], set()

    def visit(part, stack):
        if part in stack:
            pytest.fail(f'cycle through {stack + [part]}')
        if part in seen:
            return
        for below in ALLOWED[part]:
            visit(below, stack + [part])
        seen.add(part)
        order.append(part)

    for part in ALLOWED:
        visit(part, [])
    assert len(order) == len(ALLOWED)


def test_modules_have_no_cycle():
    """Within a part too, even through imports inside functions: a cycle
    between two files means one idea split in two, or a helper that belongs
    below both. Package faces (``__init__``) re-export and are left out."""
    files = {'.'.join(p.relative_to(ROOT.parent).with_suffix('').parts)
             for p in ROOT.rglob('*.py') if p.name != '__init__.py'}
    edges = {}
    for module, target, _ in _import_targets():
        if module in files and target in files and target != module:
            edges.setdefault(module, set()).add(target)
    done, cycles = set(), []

    def visit(module, stack):
        if module in stack:
            cycles.append(stack[stack.index(module):] + [module])
            return
        if module in done:
            return
        for target in sorted(edges.get(module, ())):
            visit(target, stack + [module])
        done.add(module)

    for module in sorted(files):
        visit(module, [])
    assert not cycles, f'import cycles between files: {cycles}'


def test_one_name_per_module():
    """The package is unreleased: modules of before the layout are gone,
    not aliased (CHANGELOG.md lists where they went)."""
    import importlib
    import sys

    assert not any(type(f).__name__ == '_MovedFinder' for f in sys.meta_path)
    for old in ('ct_benchmark', 'unrolled', 'equivariant', 'pnn', 'sde'):
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(f'odl_genprior.{old}')


def test_relative_imports_are_read(tmp_path, monkeypatch):
    """An upward relative import (``from ..recon import base`` in
    ``problems``) is caught like an absolute one."""
    pkg = tmp_path / 'odl_genprior'
    (pkg / 'problems').mkdir(parents=True)
    (pkg / '__init__.py').write_text('')
    (pkg / 'problems' / '__init__.py').write_text('from . import forward\n')
    (pkg / 'problems' / 'forward.py').write_text(
        'from ..recon import base\nfrom .. import metrics\n')
    monkeypatch.setattr(__import__(__name__), 'ROOT', pkg)
    found = {(m, p, t) for m, p, t in _imports()}
    assert ('odl_genprior.problems.forward', 'problems', 'recon') in found
    assert ('odl_genprior.problems.forward', 'problems', 'metrics') in found
    assert ('odl_genprior.problems', 'problems', 'problems') in found


def test_the_package_own_deprecations_fail_the_tests():
    """pyproject's filterwarnings turn a DeprecationWarning raised from the
    package's code into an error (issue 26: one name per thing)."""
    code = compile("import warnings\nwarnings.warn('old', DeprecationWarning)",
                   'probe', 'exec')
    with pytest.raises(DeprecationWarning):
        exec(code, {'__name__': 'odl_genprior.probe'})
    exec(code, {'__name__': 'someone_else'})  # others' are ignored
