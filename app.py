"""toonmatte studio: preview ToonOut mattes, correct them with brushes, save im/gt/an triples.

``python app.py`` serves on http://127.0.0.1:7860 with the dataset in ``./dataset`` (or
``$TOONMATTE_DATASET``); ``--help`` lists the options. This file is the Hugging Face Space's
``app_file`` (docs/space.md); it runs the same entry point as the installed ``toonmatte-studio``
command, :func:`annotate.web.main.main`.
"""
import sys

from annotate.web.main import main

if __name__ == "__main__":
    sys.exit(main())
