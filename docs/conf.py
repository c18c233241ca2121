"""Sphinx configuration for the django-jobprogress user documentation.

Plain reStructuredText and the alabaster theme: the build needs no network,
no Django settings and no extension beyond Sphinx itself.
"""

import re
from pathlib import Path

_init = Path(__file__).resolve().parent.parent / "django_jobprogress" / "__init__.py"
_version = re.search(r'^__version__ = "([^"]+)"', _init.read_text(encoding="utf-8"), re.M)

project = "django-jobprogress"
author = "django-jobprogress contributors"
copyright = "django-jobprogress contributors"
release = _version.group(1) if _version else "unknown"
version = ".".join(release.split(".")[:2])

extensions: list[str] = []
root_doc = "index"
exclude_patterns = ["_build"]
highlight_language = "python3"

html_theme = "alabaster"
html_title = f"django-jobprogress {release}"
html_theme_options = {
    "description": "Visible, controllable background jobs for Django",
    "fixed_sidebar": True,
}
