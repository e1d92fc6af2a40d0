"""Interoperability with other imaging libraries.

`odl_genprior.interop.deepinv`: ODL operators as deepinv physics and
deepinv physics as ODL operators, the package's protocols as deepinv data
sets and its reconstruction methods as deepinv solvers. Needs the optional
extra ``pip install "odl-genprior[deepinv]"``; importing this package (or
``odl_genprior``) never imports deepinv. See ``docs/interop.md``.
"""
__all__ = ()
