#!/usr/bin/env python3
"""The conformance suite's independent reader of what a destination committed (pyarrow,
DuckDB's and Delta's own Python packages; nothing of pgcdc's). One JSON object per row
(column name -> value; timestamps as integer microseconds since the epoch), on stdout.

    read.py files DATASET TABLE    the committed changelog rows of TABLE, in the order written
    read.py duckdb FILE SCHEMA TABLE   the rows of a DuckDB table
    read.py delta DIR              the rows of a Delta table

DATASET and DIR are a local path or s3://bucket/path on an S3-compatible server (endpoint
from LAKE_S3_ENDPOINT, e.g. http://127.0.0.1:9000; keys from AWS_ACCESS_KEY_ID and
AWS_SECRET_ACCESS_KEY). A table that does not exist has no rows.

files: the checkpoint manifest DATASET/_pgcdc_state/checkpoint.json names the committed
load; data files DATASET/TABLE/<load>.<n>.parquet of a newer load are not committed and
are left out. The rest are read in (load, n) order, rows in file order.
"""
import json
import os
import re
import sys

import pyarrow as pa


def s3_options():
    return {
        "endpoint": os.environ.get("LAKE_S3_ENDPOINT", ""),
        "key": os.environ.get("AWS_ACCESS_KEY_ID"),
        "secret": os.environ.get("AWS_SECRET_ACCESS_KEY"),
        "region": os.environ.get("AWS_REGION", "us-east-1"),
    }


def filesystem(url):
    """(pyarrow filesystem, path in it) of a local path or s3:// URL."""
    from pyarrow import fs
    if url.startswith("s3://"):
        o = s3_options()
        scheme, _, host = o["endpoint"].partition("://")
        s3 = fs.S3FileSystem(access_key=o["key"], secret_key=o["secret"], endpoint_override=host.rstrip("/") or None,
                             scheme=scheme or "https", region=o["region"])
        return s3, url[len("s3://"):].rstrip("/")
    return fs.LocalFileSystem(), os.path.abspath(url)


def plain(table):
    """Rows of a pyarrow table as dicts, timestamps as integer microseconds."""
    columns = []
    for field, column in zip(table.schema, table.columns):
        if pa.types.is_timestamp(field.type):
            column = column.cast(pa.timestamp("us", tz=field.type.tz)).cast(pa.int64())
        columns.append(column)
    return pa.table(columns, names=table.column_names).to_pylist()


def files(dataset, table):
    import pyarrow.parquet as pq
    from pyarrow import fs
    filesystem_, base = filesystem(dataset)
    try:
        with filesystem_.open_input_stream(base + "/_pgcdc_state/checkpoint.json") as f:
            committed = json.loads(f.read())["load_id"]
    except FileNotFoundError:
        return []
    infos = filesystem_.get_file_info(fs.FileSelector(base + "/" + table, allow_not_found=True))
    named = []
    for info in infos:
        m = re.match(r"^(\d+)\.(\d+)\.parquet$", os.path.basename(info.path))
        if info.type == fs.FileType.File and m and int(m.group(1)) <= committed:
            named.append(((int(m.group(1)), int(m.group(2))), info.path))
    rows = []
    for _, path in sorted(named):
        rows.extend(plain(pq.read_table(path, filesystem=filesystem_)))
    return rows


def duckdb_rows(path, schema, table):
    import duckdb
    if not os.path.exists(path):
        return []
    con = duckdb.connect(path, read_only=True)
    q = lambda n: '"' + n.replace('"', '""') + '"'
    try:
        t = con.sql("SELECT * FROM %s.%s" % (q(schema), q(table))).to_arrow_table()
    except duckdb.CatalogException:
        return []
    return plain(t)


def delta(url):
    from deltalake import DeltaTable
    options = None
    if url.startswith("s3://"):
        o = s3_options()
        options = {"AWS_ENDPOINT_URL": o["endpoint"], "AWS_ACCESS_KEY_ID": o["key"] or "",
                   "AWS_SECRET_ACCESS_KEY": o["secret"] or "", "AWS_REGION": o["region"], "AWS_ALLOW_HTTP": "true"}
        from pyarrow import fs
        filesystem_, base = filesystem(url)
        if not filesystem_.get_file_info(fs.FileSelector(base + "/_delta_log", allow_not_found=True)):
            return []
    elif not os.path.isdir(os.path.join(url, "_delta_log")):
        return []
    return plain(DeltaTable(url, storage_options=options).to_pyarrow_table())


def main():
    command, args = sys.argv[1], sys.argv[2:]
    rows = {"files": files, "duckdb": duckdb_rows, "delta": delta}[command](*args)
    for r in rows:
        print(json.dumps(r, ensure_ascii=False))
    # deltalake's runtime threads can abort the interpreter's teardown: leave without it.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
