"""Sphinx configuration of the API reference (``docs/api``), built from the
numpydoc docstrings: ``sphinx-build -W -b html docs/api BUILD_DIR``
(tests/test_api_docs.py builds it, warnings as errors)."""
project = 'odl_genprior'
author = 'the odl_genprior developers'
extensions = ['sphinx.ext.autodoc', 'sphinx.ext.autosummary', 'numpydoc']
autosummary_generate = True
autosummary_imported_members = False
# Each name on the page of the module that defines it (a re-export in a
# package's __all__ is not documented twice).
autodoc_default_options = {'members': True, 'show-inheritance': True,
                           'ignore-module-all': True}
# numpydoc: no per-member tables of class attributes (autodoc lists them).
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
# Doctest-formatted examples are rendered as they are.
numpydoc_use_plots = False
html_theme = 'alabaster'
exclude_patterns = ['_build', '_generated_tmp']
