"""Sphinx configuration for the django-jobprogress user documentation.

Plain reStructuredText and the alabaster theme; the build needs no network.
The API reference (``api.rst``) is generated from the docstrings with
``sphinx.ext.autodoc``, which imports the package: that needs Django set up,
so this file puts the repository root on ``sys.path`` and calls
``django.setup()`` with ``tests.settings`` (importing them needs no database,
Redis or other service) unless ``DJANGO_SETTINGS_MODULE`` names others.
"""

import os
import re
import sys
from pathlib import Path

import django

_root = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(_root))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

_init = _root / "django_jobprogress" / "__init__.py"
_version = re.search(r'^__version__ = "([^"]+)"', _init.read_text(encoding="utf-8"), re.M)

project = "django-jobprogress"
author = "django-jobprogress contributors"
copyright = "django-jobprogress contributors"
release = _version.group(1) if _version else "unknown"
version = ".".join(release.split(".")[:2])

extensions = ["sphinx.ext.autodoc"]
root_doc = "index"
exclude_patterns = ["_build"]
highlight_language = "python3"

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {
    "exclude-members": "DoesNotExist, MultipleObjectsReturned, objects",
}

html_theme = "alabaster"
html_title = f"django-jobprogress {release}"
html_theme_options = {
    "description": "Visible, controllable background jobs for Django",
    "fixed_sidebar": True,
}
