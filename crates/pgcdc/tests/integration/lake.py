#!/usr/bin/env python3
"""An independent reader of pgcdc's changelog files, for the tests (pyarrow, not our code).

    lake.py rows DIR [--columns a,b]            every row in replay order, one JSON object a line
    lake.py replay DIR --key id --columns a,b   the table's final state, one JSON array a row
    lake.py mirror FILE --table ds.t --columns a,b   a DuckDB mirror table's rows, one JSON
                                                array a row (read with DuckDB's own Python
                                                package, rendered like the files)
    lake.py delta DIR --columns a,b             a Delta table's rows, one JSON array a row
                                                (read with the `deltalake` package; DIR may be
                                                s3://bucket/path, see below; a missing table
                                                has no rows)

DIR is one table's directory of `<load>.<n>.parquet` and/or `.jsonl` files, on local disk
or `s3://bucket/path` on an S3-compatible server, read with pyarrow's own S3 client
(endpoint from LAKE_S3_ENDPOINT, e.g. http://127.0.0.1:9000; keys from AWS_ACCESS_KEY_ID
and AWS_SECRET_ACCESS_KEY). Files of
different schemas are unified by column name: a column missing from a file reads as null
(a column whose type changed between files is fine too: values are rendered per file).

Row order: by commit LSN (`_pgcdc_commit_lsn`; snapshot rows first on a tie), then by LSN
(`_pgcdc_lsn`, or dlt's `lsn`), deletes first on equal LSN (a key change
is a delete plus an update with the same LSN), then file order (load, n), then row order.

Values are rendered as PostgreSQL's text output renders them with TimeZone=UTC and
DateStyle=ISO, so tests can compare with `col::text` from the source. Metadata columns
`_pgcdc_lsn`/`lsn` and `_pgcdc_xid` (int), `_pgcdc_op` (str) and `_pgcdc_toast_unchanged`
(list of names or null) are kept as they are; `_pgcdc_commit_ts`/`deleted_ts` render like
timestamptz. JSONL files carry no types: their JSON values are rendered from the JSON type
(strings as written, numbers and booleans as PostgreSQL would print them); a missing key
is null (arrow-json omits nulls).

replay: `snapshot`/`insert`/`update` upsert by key, keeping the previous value of the
columns named in the row's `_pgcdc_toast_unchanged` (for an update at the LSN of the
delete just before it — a key change — the previous values are the deleted row's);
`delete` removes the key; `truncate` empties the table. Output rows are in first-insert order.
"""
import argparse
import decimal
import glob
import json
import math
import os
import re
import struct
import sys
import uuid

import pyarrow as pa
import pyarrow.parquet as pq

RAW_META = {"_pgcdc_lsn", "lsn", "_pgcdc_commit_lsn", "_pgcdc_op", "_pgcdc_xid", "_pgcdc_toast_unchanged"}
I64_MAX = 2**63 - 1
I32_MAX = 2**31 - 1
US_PER_DAY = 86_400_000_000
UNIT_TO_US = {"s": (1_000_000, 1), "ms": (1_000, 1), "us": (1, 1), "ns": (1, 1_000)}


def civil_from_days(z):
    """Days since 1970-01-01 → proleptic Gregorian (astronomical year, month, day)."""
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return (y + 1 if m <= 2 else y), m, d


def fmt_ymd(days):
    y, m, d = civil_from_days(days)
    if y <= 0:
        return "%04d-%02d-%02d" % (1 - y, m, d), True
    return "%04d-%02d-%02d" % (y, m, d), False


def fmt_date(days):
    if days == I32_MAX:
        return "infinity"
    if days == -I32_MAX:
        return "-infinity"
    s, bc = fmt_ymd(days)
    return s + " BC" if bc else s


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
    days, rem = divmod(us, US_PER_DAY)
    ymd, bc = fmt_ymd(days)
    s = ymd + " " + fmt_time(rem)
    if tz:
        s += "+00"
    if bc:
        s += " BC"
    return s


def to_us(v, unit):
    mul, div = UNIT_TO_US[unit]
    return v * mul // div


def shortest_digits(x, bits):
    """The shortest correctly rounded decimal strictly inside x's rounding interval, as
    PostgreSQL's Ryu prints it (a decimal exactly halfway to a neighbour is not taken,
    even where round-half-even would read it back as x)."""
    ax = abs(x)
    if bits == 32:
        b = struct.unpack("<I", struct.pack("<f", ax))[0]
        lo, hi = (struct.unpack("<f", struct.pack("<I", b + k))[0] for k in (-1, 1))
    else:
        lo, hi = math.nextafter(ax, 0.0), math.nextafter(ax, math.inf)
    with decimal.localcontext() as ctx:
        ctx.prec = 1200  # exact: doubles have at most 767 significant decimal digits
        exact, dlo = decimal.Decimal(ax), decimal.Decimal(lo)
        dhi = decimal.Decimal(hi) if hi != math.inf else 2 * exact - dlo  # above the largest finite
        low, high = (dlo + exact) / 2, (exact + dhi) / 2
        for n in range(1, 18 if bits == 64 else 10):
            d = decimal.Decimal("%.*e" % (n - 1, ax))
            if low < d < high:
                return -d if x < 0 else d
    return decimal.Decimal(repr(x))


def fmt_float(x, bits=64):
    """float4out/float8out (PostgreSQL 12+, extra_float_digits=1): shortest round-trip,
    scientific notation below 1e-4 and from 1e15 (float8) / 1e6 (float4)."""
    if x != x:
        return "NaN"
    if x in (float("inf"), float("-inf")):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "-0" if str(x).startswith("-") else "0"
    sign, digits, exp = shortest_digits(x, bits).as_tuple()
    digits = list(digits)
    while len(digits) > 1 and digits[-1] == 0:
        digits.pop()
        exp += 1
    e10 = len(digits) - 1 + exp  # decimal exponent of the first digit
    neg = "-" if sign else ""
    if e10 < -4 or e10 >= (6 if bits == 32 else 15):
        mant = str(digits[0]) + ("." + "".join(map(str, digits[1:])) if len(digits) > 1 else "")
        return "%s%se%s%02d" % (neg, mant, "-" if e10 < 0 else "+", abs(e10))
    return neg + format(decimal.Decimal((0, tuple(digits), exp)), "f")


ARRAY_SPECIAL = set('{},"\\ \t\n\r\v\f')


def array_element(v):
    """An element as array_out writes it: NULL, or quoted when empty, NULL-like or holding
    a delimiter, brace, quote, backslash or white space."""
    if v is None:
        return "NULL"
    if v == "" or v.upper() == "NULL" or any(c in ARRAY_SPECIAL for c in v):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return v


RECORD_SPECIAL = set('"\\(),') | set(" \t\n\r\v\f")


def record_field(v):
    """An attribute as record_out writes it: nothing for NULL, quoted (with " and \\
    doubled) when empty or holding a quote, backslash, parenthesis, comma or white space."""
    if v is None:
        return ""
    if v == "" or any(c in RECORD_SPECIAL for c in v):
        return '"' + v.replace('\\', '\\\\').replace('"', '""') + '"'
    return v


RANGE_SPECIAL = set('"\\()[],') | set(" \t\n\r\v\f")
RANGE_FIELDS = ["lower", "upper", "lower_inclusive", "upper_inclusive", "empty"]


def range_bound(v):
    """A bound as range_out writes it: nothing when unbounded, quoted (with " and \\
    doubled) when empty or holding a quote, backslash, bracket, parenthesis, comma or
    white space."""
    if v is None:
        return ""
    if v == "" or any(c in RANGE_SPECIAL for c in v):
        return '"' + v.replace('\\', '\\\\').replace('"', '""') + '"'
    return v


def fmt_offset(east):
    """EncodeTimezone: +HH, +HH:MM when minutes or seconds, +HH:MM:SS when seconds."""
    sign = "+" if east >= 0 else "-"
    h, rem = divmod(abs(east), 3600)
    m, sec = divmod(rem, 60)
    if sec:
        return "%s%02d:%02d:%02d" % (sign, h, m, sec)
    if m:
        return "%s%02d:%02d" % (sign, h, m)
    return "%s%02d" % (sign, h)


def ctrunc_div(a, b):
    """C's integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def fmt_interval(months, days, us):
    """interval_out with IntervalStyle=postgres (EncodeInterval, INTSTYLE_POSTGRES)."""
    if (months, days, us) == (I32_MAX, I32_MAX, I64_MAX):
        return "infinity"
    if (months, days, us) == (-I32_MAX - 1, -I32_MAX - 1, -I64_MAX - 1):
        return "-infinity"
    year, mon = ctrunc_div(months, 12), months - ctrunc_div(months, 12) * 12
    hour = ctrunc_div(us, 3_600_000_000)
    us -= hour * 3_600_000_000
    minute = ctrunc_div(us, 60_000_000)
    us -= minute * 60_000_000
    sec = ctrunc_div(us, 1_000_000)
    fsec = us - sec * 1_000_000
    out, is_zero, is_before = "", True, False
    for value, unit in ((year, "year"), (mon, "mon"), (days, "day")):
        if value == 0:
            continue
        out += "%s%s%d %s%s" % ("" if is_zero else " ", "+" if is_before and value > 0 else "", value, unit, "" if value == 1 else "s")
        is_before, is_zero = value < 0, False
    if is_zero or hour or minute or sec or fsec:
        minus = hour < 0 or minute < 0 or sec < 0 or fsec < 0
        out += "%s%s%02d:%02d:%02d" % ("" if is_zero else " ", "-" if minus else ("+" if is_before else ""), abs(hour), abs(minute), abs(sec))
        if fsec:
            out += ("." + "%06d" % abs(fsec)).rstrip("0")
    return out


def hstore_text(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(arr, field=None, multirange=False):
    """A pyarrow array → list of PostgreSQL text values (None for null). `field`: the
    array's schema field, whose metadata marks pgvector columns (`pgcdc.vector`);
    `multirange`: a List of ranges whose item field lost its name `range` (DuckDB, Delta)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    t = arr.type
    if isinstance(t, pa.BaseExtensionType):
        return render(arr.storage)
    meta = (field.metadata or {}) if field is not None else {}
    if pa.types.is_fixed_size_list(t) or meta.get(b"ARROW:extension:name") == b"pgcdc.vector":
        # pgvector: vector_out's [f,f,…] with each float4's shortest text.
        return [None if v is None else "[" + ",".join(fmt_float(x, 32) for x in v) + "]" for v in arr.to_pylist()]
    if pa.types.is_map(t):
        # hstore_out: "k"=>"v" pairs in stored order, ", " apart.
        return [None if v is None else ", ".join(hstore_text(k) + "=>" + ("NULL" if x is None else hstore_text(x)) for k, x in v)
                for v in arr.to_pylist()]
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        values = render(arr.values)
        offsets = arr.offsets.to_pylist()
        valid = arr.is_valid().to_pylist()
        item = t.value_field
        if item.name == "range" or multirange:
            # A multirange: multirange_out's {range,range}, unquoted.
            element = lambda v: v
        elif pa.types.is_list(item.type) and item.type.value_field.name != "range":
            # Another dimension: sub-arrays unquoted.
            element = lambda v: v
        else:
            element = array_element
        return [None if not valid[i] else "{" + ",".join(element(v) for v in values[offsets[i]:offsets[i + 1]]) + "}"
                for i in range(len(arr))]
    if pa.types.is_dictionary(t):
        return render(arr.dictionary_decode())
    if pa.types.is_timestamp(t):
        raw = arr.cast(pa.int64()).to_pylist()
        tz = t.tz is not None
        return [None if v is None else fmt_ts(v if v in (I64_MAX, -I64_MAX) else to_us(v, t.unit), tz) for v in raw]
    if pa.types.is_date32(t):
        return [None if v is None else fmt_date(v) for v in arr.cast(pa.int32()).to_pylist()]
    if pa.types.is_time32(t) or pa.types.is_time64(t):
        raw = arr.cast(pa.int64() if pa.types.is_time64(t) else pa.int32()).to_pylist()
        return [None if v is None else fmt_time(to_us(v, t.unit)) for v in raw]
    if pa.types.is_struct(t) and [f.name for f in t] == ["months", "days", "microseconds"]:
        return [None if v is None else fmt_interval(v["months"], v["days"], v["microseconds"]) for v in arr.to_pylist()]
    if pa.types.is_struct(t) and [f.name for f in t] == ["time", "utc_offset"]:
        # timetz_out: the time, then EncodeTimezone's +HH[:MM[:SS]] (east of UTC).
        times = render(arr.field(0))
        offsets = arr.field(1).to_pylist()
        valid = arr.is_valid().to_pylist()
        return [None if not valid[i] else times[i] + fmt_offset(offsets[i]) for i in range(len(arr))]
    if pa.types.is_struct(t) and [f.name for f in t] == RANGE_FIELDS:
        # range_out: empty, or [lower,upper) with the bracket per inclusive flag.
        lower, upper = render(arr.field(0)), render(arr.field(1))
        flags = [arr.field(i).to_pylist() for i in (2, 3, 4)]
        valid = arr.is_valid().to_pylist()
        return [None if not valid[i] else "empty" if flags[2][i] else
                ("[" if flags[0][i] else "(") + range_bound(lower[i]) + "," + range_bound(upper[i]) + ("]" if flags[1][i] else ")")
                for i in range(len(arr))]
    if pa.types.is_struct(t):
        # A composite type: record_out of its attributes' own texts.
        fields = [render(arr.field(i)) for i in range(t.num_fields)]
        valid = arr.is_valid().to_pylist()
        return [None if not valid[i] else "(" + ",".join(record_field(f[i]) for f in fields) + ")"
                for i in range(len(arr))]
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
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t) \
            or (hasattr(pa.types, "is_binary_view") and pa.types.is_binary_view(t)):
        return [None if v is None else "\\x" + v.hex() for v in vals]
    return [None if v is None else (v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)) for v in vals]


def render_json_value(v):
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "t" if v else "f"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return fmt_float(v)
    return json.dumps(v, ensure_ascii=False)


def file_order(path):
    """`<load>.<n>.<ext>` sorts numerically; anything else after, by name."""
    m = re.match(r"^(\d+)\.(\d+)\.", os.path.basename(path))
    return (0, int(m.group(1)), int(m.group(2)), path) if m else (1, 0, 0, path)


def s3_filesystem():
    from pyarrow import fs
    endpoint = os.environ.get("LAKE_S3_ENDPOINT", "")
    scheme, _, host = endpoint.partition("://")
    return fs.S3FileSystem(
        access_key=os.environ.get("AWS_ACCESS_KEY_ID"),
        secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY"),
        endpoint_override=host.rstrip("/") or None,
        scheme=scheme or "https",
        region=os.environ.get("AWS_REGION", "us-east-1"),
    )


def list_files(directory):
    """(filesystem or None, data file paths) of a table directory; None if it is missing."""
    if directory.startswith("s3://"):
        from pyarrow import fs
        s3 = s3_filesystem()
        base = directory[len("s3://"):].rstrip("/")
        infos = s3.get_file_info(fs.FileSelector(base, allow_not_found=True))
        return s3, [i.path for i in infos if i.type == fs.FileType.File and i.path.endswith((".parquet", ".jsonl"))]
    if not os.path.isdir(directory):
        return None, None
    return None, glob.glob(os.path.join(directory, "*.parquet")) + glob.glob(os.path.join(directory, "*.jsonl"))


def load(directory):
    """All rows of a table directory as dicts (column → rendered value), in replay order,
    and the union of the column names in first-seen order."""
    filesystem, files = list_files(directory)
    if files is None:
        sys.exit("lake.py: no such directory: %s" % directory)
    names, rows = [], []

    def see(cols):
        for c in cols:
            if c not in names:
                names.append(c)

    for f in sorted(files, key=file_order):
        if f.endswith(".parquet"):
            t = pq.read_table(f, filesystem=filesystem)
            see(t.column_names)
            cols = {c: (t.column(c).to_pylist() if c in RAW_META else render(t.column(c), t.schema.field(c))) for c in t.column_names}
            for i in range(t.num_rows):
                rows.append({c: v[i] for c, v in cols.items()})
        else:
            if filesystem is not None:
                with filesystem.open_input_stream(f) as fh:
                    lines = fh.read().decode("utf-8").splitlines()
            else:
                with open(f, encoding="utf-8") as fh:
                    lines = fh.read().splitlines()
            for line in lines:
                if line.strip():
                    obj = json.loads(line)
                    see(obj.keys())
                    rows.append({c: (v if c in RAW_META else render_json_value(v)) for c, v in obj.items()})
    lsn = "_pgcdc_lsn" if "_pgcdc_lsn" in names else "lsn"
    for r in rows:
        if r.get(lsn) is None:
            sys.exit("lake.py: a row in %s has no %s: %r" % (directory, lsn, r))
    # Commit order first: a transaction that began before a snapshot but committed after
    # it sorts after the snapshot's rows, which come first at their LSN; then change
    # order, with the delete of a key-changing update before its update.
    def order(r):
        commit = r.get("_pgcdc_commit_lsn")
        op = r.get("_pgcdc_op")
        return (commit if commit is not None else r[lsn], 0 if op == "snapshot" else 1, r[lsn], 0 if op == "delete" else 1)

    rows.sort(key=order)
    return names, [{c: r.get(c) for c in names} for r in rows]


def replay(rows, key, columns):
    state = {}
    moved = None  # (lsn, row) of the last delete: an update at its LSN moved that row
    for r in rows:
        op = r.get("_pgcdc_op")
        lsn = r.get("_pgcdc_lsn", r.get("lsn"))
        if op == "truncate":
            state.clear()
            continue
        k = tuple(r.get(c) for c in key)
        if op == "delete":
            moved = (lsn, state.pop(k, {}))
            continue
        if op not in ("snapshot", "insert", "update"):
            sys.exit("lake.py: unknown _pgcdc_op %r in %r" % (op, r))
        unchanged = set(r.get("_pgcdc_toast_unchanged") or [])
        # A key-changing update keeps the unchanged values of the row it moved.
        prev = moved[1] if op == "update" and moved is not None and moved[0] == lsn else state.get(k, {})
        state[k] = {c: (prev.get(c) if c in unchanged else r.get(c)) for c in columns}
    return [[s[c] for c in columns] for s in state.values()]


def columns_of(spec):
    """--columns of mirror/delta: names, each with `@multirange` when it is one (the
    mirror's lists do not say so); returns (names, the multirange ones)."""
    cols = spec.split(",") if spec else []
    multi = {c.split("@")[0] for c in cols if c.endswith("@multirange")}
    return [c.split("@")[0] if c.endswith("@multirange") else c for c in cols], multi


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["rows", "replay", "mirror", "delta"])
    p.add_argument("dir")
    p.add_argument("--columns", help="comma-separated; rows: which source columns (metadata always)")
    p.add_argument("--key", help="comma-separated key columns (replay)")
    p.add_argument("--table", help="schema.table in the DuckDB file (mirror)")
    a = p.parse_args()
    if a.command == "mirror":
        import duckdb  # only this command needs it
        schema, table = a.table.split(".", 1)
        con = duckdb.connect(a.dir, read_only=True)
        q = lambda n: '"' + n.replace('"', '""') + '"'
        cols, multi = columns_of(a.columns)
        t = con.sql("SELECT %s FROM %s.%s" % (", ".join(q(c) for c in cols), q(schema), q(table))).to_arrow_table()
        rendered = [render(t.column(i), multirange=cols[i] in multi) for i in range(len(cols))]
        for i in range(t.num_rows):
            print(json.dumps([r[i] for r in rendered], ensure_ascii=False))
        return
    if a.command == "delta":
        from deltalake import DeltaTable  # only this command needs it
        options = None
        if a.dir.startswith("s3://"):
            options = {
                "AWS_ENDPOINT_URL": os.environ.get("LAKE_S3_ENDPOINT", ""),
                "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", ""),
                "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
                "AWS_REGION": os.environ.get("AWS_REGION", "us-east-1"),
                "AWS_ALLOW_HTTP": "true",
            }
        elif not os.path.isdir(os.path.join(a.dir, "_delta_log")):
            return
        cols, multi = columns_of(a.columns)
        t = DeltaTable(a.dir, storage_options=options).to_pyarrow_table(columns=cols or None)
        rendered = [render(t.column(c), multirange=c in multi) for c in cols]
        for i in range(t.num_rows):
            print(json.dumps([r[i] for r in rendered], ensure_ascii=False))
        # deltalake's runtime threads can abort the interpreter's teardown ("terminate
        # called without an active exception"): leave without it.
        sys.stdout.flush()
        os._exit(0)
    names, rows = load(a.dir)
    if a.command == "rows":
        cols = a.columns.split(",") if a.columns else None
        meta = [n for n in names if n.startswith("_pgcdc_") or n in ("lsn", "deleted_ts")]
        for r in rows:
            if cols:
                r = {c: r.get(c) for c in cols + [m for m in meta if m not in cols]}
            print(json.dumps(r, ensure_ascii=False))
    else:
        if not a.key or not a.columns:
            sys.exit("lake.py replay needs --key and --columns")
        for r in replay(rows, a.key.split(","), a.columns.split(",")):
            print(json.dumps(r, ensure_ascii=False))


if __name__ == "__main__":
    main()
