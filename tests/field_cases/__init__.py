"""The field-case corpus: reproductions of public threads and issues where a Keras
training's loss or accuracy stayed flat, each with its healthy twin where one is
kept. See corpus.py for the record, score.py for the scoring script.

Modules `cases_*.py` each define `CASES: list[FieldCase]`; `corpus.all_cases()`
collects them.
"""
