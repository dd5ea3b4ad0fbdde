#!/usr/bin/env python3
"""Summary statistics for one CSV file, as JSON on stdout (standard library only).

Usage: python skills/data-analysis/calc.py <csv_file>
"""
import csv
import json
import sys


def _round(value):
    return round(value, 4)


def summarise(path):
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            rows = [row for row in reader if row]
    except FileNotFoundError:
        return {"error": f"File not found: {path}"}
    if not header or not rows:
        return {"error": "Empty CSV file", "rows": 0}

    numeric, stats = [], {}
    for index, column in enumerate(header):
        values = []
        for row in rows:
            try:
                values.append(float(row[index]))
            except (IndexError, ValueError):
                values = None
                break
        if not values:
            continue
        numeric.append(column)
        ordered = sorted(values)
        middle = len(ordered) // 2
        if len(ordered) % 2:
            median = ordered[middle]
        else:
            median = _round((ordered[middle - 1] + ordered[middle]) / 2)
        stats[column] = {"count": len(values), "min": ordered[0], "max": ordered[-1],
                         "mean": _round(sum(values) / len(values)), "median": median}
    return {"file": path, "rows": len(rows), "columns": header,
            "numeric_columns": numeric, "stats": stats}


def main(argv):
    if len(argv) != 2:
        print("usage: python skills/data-analysis/calc.py <csv_file>", file=sys.stderr)
        return 1
    print(json.dumps(summarise(argv[1]), indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
