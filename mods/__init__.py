"""Models for dafilters: one folder per model, one small module per literature setting.

Each model folder's ``__init__.py`` holds the dynamics; each setting module (``authorYEAR.py``)
defines ``HMM`` and states the figures it is expected to reproduce in its docstring.
"""
