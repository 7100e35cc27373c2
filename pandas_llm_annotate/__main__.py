"""`python -m pandas_llm_annotate annotate data.csv ...`: the command line (`cli`)."""

from .cli import run

if __name__ == "__main__":
    run()
