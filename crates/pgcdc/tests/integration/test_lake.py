#!/usr/bin/env python3
"""Tests of lake.py, the independent reader: files written here with pyarrow, read back
through lake.py's command line. Expected strings are PostgreSQL 15's own text output
(TimeZone=UTC, DateStyle=ISO). Run with the venv's python:

    ~/.cache/pgcdc/venv/bin/python crates/pgcdc/tests/integration/test_lake.py [-v]

(the Rust test `lake_reader::lake_py_self_tests_pass` runs it in the suite).
"""
import decimal
import json
import os
import subprocess
import sys
import tempfile
import unittest

import pyarrow as pa
import pyarrow.parquet as pq

LAKE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lake.py")
I64_MAX = 2**63 - 1
I32_MAX = 2**31 - 1
DAY_US = 86_400_000_000


def lake(*args):
    p = subprocess.run([sys.executable, LAKE, *args], capture_output=True, text=True)
    if p.returncode != 0:
        raise AssertionError("lake.py %s failed:\n%s" % (" ".join(args), p.stderr))
    return [json.loads(line) for line in p.stdout.splitlines() if line.strip()]


class LakeTest(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="pgcdc-test-lake-")
        self.dir = os.path.join(self._tmp.name, "t")
        os.makedirs(self.dir)

    def tearDown(self):
        self._tmp.cleanup()

    def write(self, name, columns, lsn=None, op=None):
        """Writes one parquet file; metadata columns default to lsn 1.. and op insert."""
        n = len(next(iter(columns.values())))
        cols = dict(columns)
        if "_pgcdc_lsn" not in cols and "lsn" not in cols:
            cols["_pgcdc_lsn"] = pa.array(lsn if lsn is not None else list(range(1, n + 1)), pa.int64())
        if "_pgcdc_op" not in cols:
            cols["_pgcdc_op"] = pa.array(op if op is not None else ["insert"] * n)
        pq.write_table(pa.table(cols), os.path.join(self.dir, name))

    def render(self, arr):
        """Renders one column through lake.py (one file, one column)."""
        self.write("1.0.parquet", {"v": arr})
        return [r["v"] for r in lake("rows", self.dir)]


class Rendering(LakeTest):
    def test_integers_and_bool(self):
        self.assertEqual(self.render(pa.array([1, -32768, None], pa.int16())), ["1", "-32768", None])
        self.assertEqual(self.render(pa.array([2**31 - 1, None], pa.int32())), ["2147483647", None])
        self.assertEqual(self.render(pa.array([-(2**63), 7], pa.int64())), ["-9223372036854775808", "7"])
        self.assertEqual(self.render(pa.array([4294967295], pa.uint32())), ["4294967295"])
        self.assertEqual(self.render(pa.array([True, False, None])), ["t", "f", None])

    def test_intervals_render_like_interval_out(self):
        t = pa.struct([pa.field("months", pa.int32(), False), pa.field("days", pa.int32(), False),
                       pa.field("microseconds", pa.int64(), False)])
        raw = [(14, 3, 14706789000), (-14, 3, -14706000000), (0, 0, 0), (0, 1, 0), (0, -1, 1000000), (1, 0, 0),
               (0, 0, -1), (0, 0, 3600000000 * 100), (0, 1, -1000000), (-1, -1, -500000),
               (I32_MAX, I32_MAX, I64_MAX), (-I32_MAX - 1, -I32_MAX - 1, -I64_MAX - 1), None]
        vals = [None if r is None else dict(zip(["months", "days", "microseconds"], r)) for r in raw]
        want = ["1 year 2 mons 3 days 04:05:06.789", "-1 years -2 mons +3 days -04:05:06", "00:00:00", "1 day",
                "-1 days +00:00:01", "1 mon", "-00:00:00.000001", "100:00:00", "1 day -00:00:01",
                "-1 mons -1 days -00:00:00.5", "infinity", "-infinity", None]
        self.assertEqual(self.render(pa.array(vals, t)), want)

    def test_lists_render_like_array_out(self):
        vals = [[1, None, -3], [], None, [None]]
        self.assertEqual(self.render(pa.array(vals, pa.list_(pa.int32()))), ["{1,NULL,-3}", "{}", None, "{NULL}"])
        texts = [["", None, "NULL", "nuLL", "a b", 'q"', "b\\s", "{x}", "c,d", "tab\t", "☃"]]
        want = '{"",NULL,"NULL","nuLL","a b","q\\"","b\\\\s","{x}","c,d","tab\t",☃}'
        self.assertEqual(self.render(pa.array(texts, pa.list_(pa.string()))), [want])
        # Elements render as their type: timestamps are quoted (they hold a space).
        ts = pa.array([[0]], pa.list_(pa.timestamp("us", tz="UTC")))
        self.assertEqual(self.render(ts), ['{"1970-01-01 00:00:00+00"}'])

    def test_decimal_keeps_the_scale(self):
        D = decimal.Decimal
        vals = [D("1.50"), D("-0.05"), D("0.00"), D("123456789012.34"), None]
        self.assertEqual(self.render(pa.array(vals, pa.decimal128(14, 2))), ["1.50", "-0.05", "0.00", "123456789012.34", None])
        big = D("1" * 50 + ".000001")
        self.assertEqual(self.render(pa.array([big], pa.decimal256(56, 6))), ["1" * 50 + ".000001"])
        self.assertEqual(self.render(pa.array([D(7)], pa.decimal128(5, 0))), ["7"])

    def test_float8_like_postgres(self):
        vals = [1.5, -0.0, 0.0, 1.0, 100.0, -2.25, 0.1, 1 / 3, 123456789012345.0, 0.0001, 1e-05, 1.5e300, 1e22, 5e-324,
                float("inf"), float("-inf"), float("nan"), None]
        want = ["1.5", "-0", "0", "1", "100", "-2.25", "0.1", "0.3333333333333333", "123456789012345", "0.0001", "1e-05",
                "1.5e+300", "1e+22", "5e-324", "Infinity", "-Infinity", "NaN", None]
        self.assertEqual(self.render(pa.array(vals, pa.float64())), want)

    def test_float8_exponent_from_1e15(self):
        self.assertEqual(self.render(pa.array([1e15, 1.25e16], pa.float64())), ["1e+15", "1.25e+16"])

    def test_float8_keeps_every_digit_from_1e15(self):
        self.assertEqual(self.render(pa.array([1234567890123456.0, -2.5440260032708135e15], pa.float64())),
                         ["1.234567890123456e+15", "-2.5440260032708135e+15"])

    def test_float_halfway_ties_like_postgres(self):
        # PostgreSQL's Ryu never picks a decimal exactly halfway between two floats, even
        # where round-half-even would read it back as the same float (Python's repr does).
        self.assertEqual(self.render(pa.array([7.333843033019599e17, -2.9764995546072352e16], pa.float64())),
                         ["7.333843033019599e+17", "-2.9764995546072352e+16"])
        self.assertEqual(self.render(pa.array([-1.5783421e8], pa.float32())), ["-1.5783421e+08"])

    def test_float4_like_postgres(self):
        vals = [1.5, -0.0, 0.1, 123456.0, 1e-05, 3.4e38, float("inf"), float("nan"), None]
        want = ["1.5", "-0", "0.1", "123456", "1e-05", "3.4e+38", "Infinity", "NaN", None]
        self.assertEqual(self.render(pa.array(vals, pa.float32())), want)

    def test_float4_exponent_from_1e6(self):
        self.assertEqual(self.render(pa.array([1e6, 1234567.0], pa.float32())), ["1e+06", "1.234567e+06"])

    def test_text_and_bytes(self):
        self.assertEqual(self.render(pa.array(["snow ☃ \"q\" \\ tab\tend", "", None])), ["snow ☃ \"q\" \\ tab\tend", "", None])
        self.assertEqual(self.render(pa.array(["x"], pa.large_string())), ["x"])
        self.assertEqual(self.render(pa.array([b"\xde\xad\x00", b"", None])), ["\\xdead00", "\\x", None])

    def test_uuid(self):
        u = bytes.fromhex("a0eebc999c0b4ef8bb6d6bb9bd380a11")
        want = ["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", None]
        self.assertEqual(self.render(pa.array([u, None], pa.binary(16))), want)
        if hasattr(pa, "uuid"):  # the arrow.uuid extension type (pyarrow 18+)
            self.assertEqual(self.render(pa.array([u, None], pa.binary(16)).cast(pa.uuid())), want)

    def test_date(self):
        days = [0, -1, 19723, -719162, -719163, -719162 - 366, -2440588, 2145042905, I32_MAX, -I32_MAX, None]
        want = ["1970-01-01", "1969-12-31", "2024-01-01", "0001-01-01", "0001-12-31 BC", "0001-01-01 BC",
                "4714-11-24 BC", "5874897-12-31", "infinity", "-infinity", None]
        self.assertEqual(self.render(pa.array(days, pa.int32()).cast(pa.date32())), want)

    def test_time(self):
        us = [0, 500000, 1, 43200123000, 86399999999, 86400000000, None]
        want = ["00:00:00", "00:00:00.5", "00:00:00.000001", "12:00:00.123", "23:59:59.999999", "24:00:00", None]
        self.assertEqual(self.render(pa.array(us, pa.int64()).cast(pa.time64("us"))), want)

    def test_timestamp(self):
        us = [0, 1704103200500000, -1, -62135596800000000, -62135596800000001, -64275163199500000,
              I64_MAX - 1, I64_MAX, -I64_MAX, None]
        want = ["1970-01-01 00:00:00", "2024-01-01 10:00:00.5", "1969-12-31 23:59:59.999999", "0001-01-01 00:00:00",
                "0001-12-31 23:59:59.999999 BC", "0068-03-15 12:00:00.5 BC", "294247-01-10 04:00:54.775806",
                "infinity", "-infinity", None]
        self.assertEqual(self.render(pa.array(us, pa.int64()).cast(pa.timestamp("us"))), want)

    def test_timestamptz_puts_the_offset_before_bc(self):
        us = [0, -64275163199500000, I64_MAX, -I64_MAX, None]
        want = ["1970-01-01 00:00:00+00", "0068-03-15 12:00:00.5+00 BC", "infinity", "-infinity", None]
        self.assertEqual(self.render(pa.array(us, pa.int64()).cast(pa.timestamp("us", tz="UTC"))), want)


class Files(LakeTest):
    def test_schemas_are_unified_by_column_name(self):
        self.write("1.0.parquet", {"id": pa.array([1], pa.int32()), "a": pa.array(["x"])}, lsn=[10])
        # b added, a dropped; a later file has a again.
        self.write("2.0.parquet", {"id": pa.array([2], pa.int32()), "b": pa.array([1.5])}, lsn=[20])
        self.write("3.0.parquet", {"id": pa.array([3], pa.int32()), "a": pa.array(["z"]), "b": pa.array([2.0])}, lsn=[30])
        rows = lake("rows", self.dir, "--columns", "id,a,b")
        self.assertEqual([[r["id"], r["a"], r["b"]] for r in rows], [["1", "x", None], ["2", None, "1.5"], ["3", "z", "2"]])

    def test_int_widening_across_files(self):
        self.write("1.0.parquet", {"id": pa.array([1], pa.int32())}, lsn=[1])
        self.write("2.0.parquet", {"id": pa.array([2**40], pa.int64())}, lsn=[2])
        self.assertEqual([r["id"] for r in lake("rows", self.dir)], ["1", str(2**40)])

    def test_a_column_whose_type_changed(self):
        # ALTER TABLE ... ALTER COLUMN a TYPE text: older files int4, newer utf8.
        self.write("1.0.parquet", {"a": pa.array([1], pa.int32())}, lsn=[1])
        self.write("2.0.parquet", {"a": pa.array(["one"])}, lsn=[2])
        self.assertEqual([r["a"] for r in lake("rows", self.dir)], ["1", "one"])

    def test_rows_are_in_lsn_order_with_deletes_first(self):
        self.write("1.0.parquet", {"id": pa.array([3, 1], pa.int32())}, lsn=[30, 10])
        self.write("2.0.parquet", {"id": pa.array([9, 2, 2], pa.int32())}, lsn=[20, 25, 25], op=["insert", "update", "delete"])
        rows = lake("rows", self.dir)
        self.assertEqual([(r["_pgcdc_lsn"], r["_pgcdc_op"], r["id"]) for r in rows],
                         [(10, "insert", "1"), (20, "insert", "9"), (25, "delete", "2"), (25, "update", "2"), (30, "insert", "3")])

    def test_metadata_columns(self):
        self.write("1.0.parquet", {
            "id": pa.array([1, 2], pa.int32()),
            "_pgcdc_commit_ts": pa.array([1704103200000000, None], pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            "_pgcdc_xid": pa.array([745, 746], pa.int64()),
            "_pgcdc_toast_unchanged": pa.array([None, ["big"]], pa.list_(pa.string())),
        }, lsn=[5, 6], op=["insert", "update"])
        rows = lake("rows", self.dir)
        self.assertEqual(rows[0]["_pgcdc_lsn"], 5)
        self.assertEqual(rows[0]["_pgcdc_op"], "insert")
        self.assertEqual(rows[0]["_pgcdc_xid"], 745)
        self.assertEqual(rows[0]["_pgcdc_commit_ts"], "2024-01-01 10:00:00+00")
        self.assertIsNone(rows[0]["_pgcdc_toast_unchanged"])
        self.assertEqual(rows[1]["_pgcdc_toast_unchanged"], ["big"])
        only = lake("rows", self.dir, "--columns", "id")
        self.assertEqual(only[1]["id"], "2")
        self.assertEqual(only[1]["_pgcdc_op"], "update")
        self.assertEqual(only[1]["_pgcdc_lsn"], 6)

    def test_dlt_naming_orders_by_lsn(self):
        self.write("1.0.parquet", {"id": pa.array([2, 1], pa.int32()), "lsn": pa.array([9, 4], pa.int64())})
        self.assertEqual([(r["lsn"], r["id"]) for r in lake("rows", self.dir)], [(4, "1"), (9, "2")])

    def test_jsonl_files(self):
        with open(os.path.join(self.dir, "1.0.jsonl"), "w") as f:
            f.write('{"id":1,"note":"a ☃","ok":true,"f":1.5,"_pgcdc_lsn":1,"_pgcdc_op":"insert"}\n')
        self.write("2.0.parquet", {"id": pa.array([2], pa.int32()), "note": pa.array(["b"])}, lsn=[2])
        rows = lake("rows", self.dir)
        self.assertEqual([[r["id"], r["note"], r.get("ok"), r.get("f")] for r in rows], [["1", "a ☃", "t", "1.5"], ["2", "b", None, None]])

    def test_jsonl_nulls_are_omitted_keys(self):
        # arrow-json's writer omits null values, so the first line need not have every column.
        with open(os.path.join(self.dir, "1.0.jsonl"), "w") as f:
            f.write('{"id":1,"_pgcdc_lsn":1,"_pgcdc_op":"insert"}\n{"id":2,"note":"x","_pgcdc_lsn":2,"_pgcdc_op":"insert"}\n')
        rows = lake("rows", self.dir)
        self.assertEqual([r.get("note") for r in rows], [None, "x"])

    def test_empty_directory(self):
        self.assertEqual(lake("rows", self.dir), [])
        self.assertEqual(lake("replay", self.dir, "--key", "id", "--columns", "id"), [])


class Replay(LakeTest):
    def test_upserts_deletes_and_truncates(self):
        i32 = pa.int32()
        self.write("1.0.parquet", {"id": pa.array([1, 2, 3], i32), "v": pa.array(["a", "b", "c"])},
                   lsn=[1, 1, 1], op=["snapshot"] * 3)
        self.write("2.0.parquet", {"id": pa.array([4, 2, 1, None, 5, 5], i32), "v": pa.array(["d", "B", None, None, "e", "E"])},
                   lsn=[10, 11, 12, 13, 14, 15], op=["insert", "update", "delete", "truncate", "insert", "update"])
        self.write("3.0.parquet", {"id": pa.array([6, 7], i32), "v": pa.array(["f", "g"])}, lsn=[20, 21])
        state = lake("replay", self.dir, "--key", "id", "--columns", "v,id")
        self.assertEqual(sorted(state), [["E", "5"], ["f", "6"], ["g", "7"]])

    def test_updates_and_deletes(self):
        self.write("1.0.parquet", {"id": pa.array([1, 2, 3, 2, 1], pa.int32()), "v": pa.array(["a", "b", "c", "B", None])},
                   lsn=[1, 2, 3, 4, 5], op=["insert", "insert", "insert", "update", "delete"])
        self.assertEqual(sorted(lake("replay", self.dir, "--key", "id", "--columns", "id,v")), [["2", "B"], ["3", "c"]])

    def test_unchanged_toast_keeps_the_previous_value(self):
        self.write("1.0.parquet", {
            "id": pa.array([1, 1, 1], pa.int32()),
            "big": pa.array(["x" * 10000, None, None]),
            "n": pa.array([1, 2, 3], pa.int32()),
            "_pgcdc_toast_unchanged": pa.array([None, ["big"], None], pa.list_(pa.string())),
        }, lsn=[1, 2, 3], op=["insert", "update", "update"])
        self.assertEqual(lake("replay", self.dir, "--key", "id", "--columns", "id,big,n"), [["1", None, "3"]])
        # Without the last update (NULL for real), the value is kept.
        os.remove(os.path.join(self.dir, "1.0.parquet"))
        self.write("1.0.parquet", {
            "id": pa.array([1, 1], pa.int32()),
            "big": pa.array(["x" * 10000, None]),
            "n": pa.array([1, 2], pa.int32()),
            "_pgcdc_toast_unchanged": pa.array([None, ["big"]], pa.list_(pa.string())),
        }, lsn=[1, 2], op=["insert", "update"])
        self.assertEqual(lake("replay", self.dir, "--key", "id", "--columns", "id,big,n"), [["1", "x" * 10000, "2"]])

    def test_key_change_and_composite_keys(self):
        # At lsn 3 the key (1,x) becomes (1,z): written as the update of (1,z) and a delete
        # of (1,x), both with lsn 3 (the delete is replayed first whatever the file order).
        self.write("1.0.parquet", {"a": pa.array([1, 1, 1, 1], pa.int32()), "b": pa.array(["x", "y", "z", "x"]),
                                   "v": pa.array([1, 2, 3, None], pa.int32())},
                   lsn=[1, 2, 3, 3], op=["insert", "insert", "update", "delete"])
        state = lake("replay", self.dir, "--key", "a,b", "--columns", "a,b,v")
        self.assertEqual(sorted(state), [["1", "y", "2"], ["1", "z", "3"]])

if __name__ == "__main__":
    unittest.main()
