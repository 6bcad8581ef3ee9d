"""`python -m facseg.report DIR`: report.md and figures of a sweep (facseg.report.writing)."""

from facseg.report.writing import main

if __name__ == "__main__":
    main()
