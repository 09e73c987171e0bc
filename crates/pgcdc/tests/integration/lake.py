#!/usr/bin/env python3
"""An independent reader of pgcdc's changelog files, for the tests (pyarrow, not our code).

    lake.py rows DIR [--columns a,b]            every row, replay order, values as PostgreSQL text
    lake.py replay DIR --key id --columns a,b   the table's final state, one JSON array per row

Values are rendered as PostgreSQL's text output renders them (TimeZone=UTC,
DateStyle=ISO), so the tests can compare with `col::text` from the source. Files of
different schemas are unified by column name (missing columns read as null).
"""
import argparse
import glob
import json
import os
import struct
import sys
import uuid

import pyarrow as pa
import pyarrow.parquet as pq

META = {"_pgcdc_lsn", "_pgcdc_op", "_pgcdc_xid", "_pgcdc_toast_unchanged", "lsn"}
I64_MAX = 2**63 - 1
I32_MAX = 2**31 - 1
DAYS_1970_FROM_0000 = 719468


def civil_from_days(z):
    z += DAYS_1970_FROM_0000
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return (y + 1 if m <= 2 else y), m, d


def fmt_date(days):
    if days == I32_MAX:
        return "infinity"
    if days == -I32_MAX:
        return "-infinity"
    y, m, d = civil_from_days(days)
    if y <= 0:
        return "%04d-%02d-%02d BC" % (1 - y, m, d)
    return "%04d-%02d-%02d" % (y, m, d)


def fmt_time(us):
    secs, frac = divmod(us, 1_000_000)
    s = "%02d:%02d:%02d" % (secs // 3600, secs // 60 % 60, secs % 60)
    if frac:
        s += "." + ("%06d" % frac).rstrip("0")
    return s


def fmt_ts(us, tz):
    if us == I64_MAX:
        return "infinity"
    if us == -I64_MAX:
        return "-infinity"
    days, rem = divmod(us, 86_400_000_000)
    y, m, d = civil_from_days(days)
    bc = y <= 0
    s = "%04d-%02d-%02d %s" % ((1 - y) if bc else y, m, d, fmt_time(rem))
    if tz:
        s += "+00"
    if bc:
        s += " BC"
    return s


def pg_float_text(shortest):
    """Python's shortest repr in PostgreSQL's style (no '.0', exponent from 1e15)."""
    if shortest in ("nan",):
        return "NaN"
    if shortest in ("inf", "-inf"):
        return shortest.replace("inf", "Infinity")
    mant, _, exp = shortest.partition("e")
    if mant.endswith(".0"):
        mant = mant[:-2]
    if exp:
        e = int(exp)
        return "%se%s%02d" % (mant, "-" if e < 0 else "+", abs(e))
    x = float(mant)
    if x != 0 and abs(x) >= 1e15:
        return pg_float_text("%.17g" % x if "e" in "%.17g" % x else "{:e}".format(x).replace(".000000", ""))
    return mant


def fmt_float(x, bits):
    if x != x:
        return "NaN"
    if x in (float("inf"), float("-inf")):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "-0" if str(x).startswith("-") else "0"
    if bits == 32:
        for digits in range(1, 10):
            s = "%.*g" % (digits, x)
            if struct.unpack("f", struct.pack("f", float(s)))[0] == x:
                return pg_float_text(repr(float(s)))
    return pg_float_text(repr(x))


def render(arr):
    """A pyarrow array → list of PostgreSQL text values (None for null)."""
    t = arr.type
    if pa.types.is_timestamp(t):
        raw = arr.cast(pa.int64()).to_pylist()
        return [None if v is None else fmt_ts(v, t.tz is not None) for v in raw]
    if pa.types.is_date32(t):
        return [None if v is None else fmt_date(v) for v in arr.cast(pa.int32()).to_pylist()]
    if pa.types.is_time64(t):
        return [None if v is None else fmt_time(v) for v in arr.cast(pa.int64()).to_pylist()]
    if isinstance(t, pa.ExtensionType):
        return render(arr.storage)
    vals = arr.to_pylist()
    if pa.types.is_boolean(t):
        return [None if v is None else ("t" if v else "f") for v in vals]
    if pa.types.is_integer(t):
        return [None if v is None else str(v) for v in vals]
    if pa.types.is_floating(t):
        bits = 32 if t == pa.float32() else 64
        return [None if v is None else fmt_float(v, bits) for v in vals]
    if pa.types.is_decimal(t):
        return [None if v is None else format(v, "f") for v in vals]
    if pa.types.is_fixed_size_binary(t) and t.byte_width == 16:
        return [None if v is None else str(uuid.UUID(bytes=v)) for v in vals]
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return [None if v is None else "\\x" + v.hex() for v in vals]
    if pa.types.is_list(t):
        return vals
    return [None if v is None else str(v) for v in vals]


def load(directory):
    files = sorted(glob.glob(os.path.join(directory, "*.parquet")))
    tables = [pq.read_table(f) for f in files]
    for f in sorted(glob.glob(os.path.join(directory, "*.jsonl"))):
        with open(f) as fh:
            rows = [json.loads(line) for line in fh if line.strip()]
        if rows:
            tables.append(pa.Table.from_pylist(rows))
    if not tables:
        return []
    schema = pa.unify_schemas([t.schema for t in tables], promote_options="permissive")
    out = []
    for t in tables:
        cols = {}
        for name in schema.names:
            if name in t.column_names:
                cols[name] = render(t.column(name).combine_chunks())
            else:
                cols[name] = [None] * t.num_rows
        meta_cols = {n: t.column(n).to_pylist() for n in t.column_names if n in META}
        for i in range(t.num_rows):
            row = {n: cols[n][i] for n in schema.names}
            for n, v in meta_cols.items():
                row[n] = v[i]
            out.append(row)
    lsn = "_pgcdc_lsn" if "_pgcdc_lsn" in schema.names else "lsn"
    op = "_pgcdc_op"
    out.sort(key=lambda r: (r[lsn], 0 if r.get(op) == "delete" else 1))
    return out


def replay(rows, key, columns):
    state = {}
    for r in rows:
        op = r.get("_pgcdc_op")
        if op == "truncate":
            state.clear()
            continue
        k = tuple(r.get(c) for c in key)
        if op == "delete":
            state.pop(k, None)
            continue
        unchanged = set(r.get("_pgcdc_toast_unchanged") or [])
        prev = state.get(k, {})
        state[k] = {c: (prev.get(c) if c in unchanged else r.get(c)) for c in r}
    return [[s.get(c) for c in columns] for s in state.values()]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("command", choices=["rows", "replay"])
    p.add_argument("dir")
    p.add_argument("--columns")
    p.add_argument("--key")
    a = p.parse_args()
    rows = load(a.dir)
    if a.command == "rows":
        cols = a.columns.split(",") if a.columns else None
        for r in rows:
            if cols:
                r = {c: r.get(c) for c in cols + sorted(META & set(r))}
            print(json.dumps(r, ensure_ascii=False))
    else:
        for r in replay(rows, a.key.split(","), a.columns.split(",")):
            print(json.dumps(r, ensure_ascii=False))


if __name__ == "__main__":
    sys.exit(main())
