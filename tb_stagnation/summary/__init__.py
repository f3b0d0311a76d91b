"""The summary format: what the callback writes and every reader expects.

`FORMAT.md` beside this file documents it; `tags.py` and `metadata.py` are the
code that both sides import, so the two can never disagree.
"""
