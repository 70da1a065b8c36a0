"""Applying a validated batch to the star schema, inside the batch transaction.

Dimensions are upserted (Type 1) and only rows that actually changed are
rewritten, so re-sending an unchanged snapshot costs no churn. Facts for a
quarter the warehouse has never seen are built in a detached table and
attached as a new partition: its indexes are then built once, sorted, rather
than maintained row by row, which is what makes an initial load fast.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import psycopg
from psycopg import sql

from . import jsonlog
from .config import Settings
from .stage import rejects_table
from .validate import ok_name, view_name

log = jsonlog.get("warehouse")

FACT_COLUMNS = (
    "orderkey", "linenumber", "sale_date", "customer_key", "product_key", "supplier_key",
    "quantity", "extended_price", "discount", "tax", "return_flag", "line_status",
    "ship_date", "commit_date", "receipt_date", "ship_instruct", "ship_mode",
    "order_status", "order_priority", "order_clerk", "ship_priority", "run_id",
)


@dataclass
class FactResult:
    inserted: int
    already_present: int
    new_partitions: list[str]


def quarter_bounds(q: dt.date) -> tuple[dt.date, dt.date]:
    start = dt.date(q.year, (q.month - 1) // 3 * 3 + 1, 1)
    end = dt.date(start.year + (start.month == 10), (start.month + 2) % 12 + 1, 1)
    return start, end


def partition_name(q: dt.date) -> str:
    return f"fact_sales_{q.year}q{(q.month - 1) // 3 + 1}"


class Applier:
    def __init__(self, conn: psycopg.Connection, settings: Settings, run_id: int) -> None:
        self.conn = conn
        self.settings = settings
        self.run_id = run_id
        self.wh = sql.Identifier(settings.schema)
        self.stg = sql.Identifier(settings.staging_schema)

    def _w(self, name: str) -> sql.Composed:
        return sql.SQL("{}.{}").format(self.wh, sql.Identifier(name))

    def _s(self, name: str) -> sql.Composed:
        return sql.SQL("{}.{}").format(self.stg, sql.Identifier(name))

    def _ok(self, table: str) -> sql.Composed:
        return self._s(ok_name(self.run_id, table))

    def _upsert(self, target: str, key: tuple[str, ...], cols: tuple[str, ...],
                select: sql.Composable) -> int:
        """INSERT ... ON CONFLICT DO UPDATE, touching only rows that differ."""
        tgt = sql.Identifier(target)
        non_key = [c for c in cols if c not in key and c != "run_id"]
        sets = sql.SQL(", ").join(
            sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in (*non_key, "run_id")
        )
        differs = sql.SQL("({}) IS DISTINCT FROM ({})").format(
            sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in non_key),
            sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(sql.Identifier(c)) for c in non_key),
        )
        cur = self.conn.execute(
            sql.SQL(
                "INSERT INTO {wh}.{tgt} AS t ({cols}) {select}"
                " ON CONFLICT ({key}) DO UPDATE SET {sets} WHERE {differs}"
            ).format(
                wh=self.wh, tgt=tgt,
                cols=sql.SQL(", ").join(sql.Identifier(c) for c in cols),
                select=select,
                key=sql.SQL(", ").join(sql.Identifier(k) for k in key),
                sets=sets, differs=differs,
            ),
            {"run_id": self.run_id},
        )
        return cur.rowcount

    def apply_dimensions(self) -> dict[str, int]:
        changed: dict[str, int] = {}
        changed["ref_region"] = self._upsert(
            "ref_region", ("region_key",), ("region_key", "name", "comment", "run_id"),
            sql.SQL("SELECT r_regionkey, r_name, r_comment, %(run_id)s FROM {}").format(
                self._ok("region")),
        )
        changed["ref_nation"] = self._upsert(
            "ref_nation", ("nation_key",),
            ("nation_key", "name", "region_key", "comment", "run_id"),
            sql.SQL("SELECT n_nationkey, n_name, n_regionkey, n_comment, %(run_id)s FROM {}")
            .format(self._ok("nation")),
        )
        geo = sql.SQL(
            "JOIN {nation} n ON n.nation_key = s.{fk}"
            " JOIN {region} g ON g.region_key = n.region_key"
        )
        changed["dim_supplier"] = self._upsert(
            "dim_supplier", ("supplier_key",),
            ("supplier_key", "name", "address", "phone", "account_balance", "comment",
             "nation_key", "nation_name", "region_key", "region_name", "run_id"),
            sql.SQL(
                "SELECT s.s_suppkey, s.s_name, s.s_address, s.s_phone, s.s_acctbal, s.s_comment,"
                " n.nation_key, n.name, g.region_key, g.name, %(run_id)s FROM {ok} s {geo}"
            ).format(ok=self._ok("supplier"), geo=geo.format(
                nation=self._w("ref_nation"), region=self._w("ref_region"),
                fk=sql.Identifier("s_nationkey"))),
        )
        changed["dim_customer"] = self._upsert(
            "dim_customer", ("customer_key",),
            ("customer_key", "name", "address", "phone", "account_balance", "market_segment",
             "comment", "nation_key", "nation_name", "region_key", "region_name", "run_id"),
            sql.SQL(
                "SELECT s.c_custkey, s.c_name, s.c_address, s.c_phone, s.c_acctbal,"
                " s.c_mktsegment, s.c_comment, n.nation_key, n.name, g.region_key, g.name,"
                " %(run_id)s FROM {ok} s {geo}"
            ).format(ok=self._ok("customer"), geo=geo.format(
                nation=self._w("ref_nation"), region=self._w("ref_region"),
                fk=sql.Identifier("c_nationkey"))),
        )
        changed["dim_product"] = self._upsert(
            "dim_product", ("product_key",),
            ("product_key", "name", "manufacturer", "brand", "type", "size", "container",
             "retail_price", "comment", "run_id"),
            sql.SQL(
                "SELECT p_partkey, p_name, p_mfgr, p_brand, p_type, p_size, p_container,"
                " p_retailprice, p_comment, %(run_id)s FROM {}"
            ).format(self._ok("part")),
        )
        changed["product_supplier"] = self._upsert(
            "product_supplier", ("product_key", "supplier_key"),
            ("product_key", "supplier_key", "available_qty", "supply_cost", "comment", "run_id"),
            sql.SQL(
                "SELECT ps_partkey, ps_suppkey, ps_availqty, ps_supplycost, ps_comment,"
                " %(run_id)s FROM {}"
            ).format(self._ok("partsupp")),
        )
        changed["sales_order"] = self._upsert(
            "sales_order", ("orderkey",),
            ("orderkey", "customer_key", "order_date", "order_status", "total_price",
             "order_priority", "order_clerk", "ship_priority", "comment", "run_id"),
            sql.SQL(
                "SELECT o_orderkey, o_custkey, o_orderdate, o_orderstatus, o_totalprice,"
                " o_orderpriority, o_clerk, o_shippriority, o_comment, %(run_id)s FROM {}"
            ).format(self._ok("orders")),
        )
        # A renamed nation or region must reach dimension rows this batch did not carry.
        for dim in ("dim_customer", "dim_supplier"):
            cur = self.conn.execute(
                sql.SQL(
                    "UPDATE {dim} d SET nation_name = n.name, region_key = g.region_key,"
                    " region_name = g.name FROM {nation} n JOIN {region} g"
                    " ON g.region_key = n.region_key WHERE n.nation_key = d.nation_key"
                    " AND (d.nation_name, d.region_key, d.region_name)"
                    " IS DISTINCT FROM (n.name, g.region_key, g.name)"
                ).format(dim=self._w(dim), nation=self._w("ref_nation"),
                         region=self._w("ref_region"))
            )
            changed[dim] += cur.rowcount
        return changed

    def apply_dates(self) -> None:
        """Whole quarters of dim_date for every order date in the batch."""
        self.conn.execute(
            sql.SQL(
                "INSERT INTO {dd} SELECT d::date, extract(year FROM d), extract(quarter FROM d),"
                " extract(month FROM d), extract(day FROM d), extract(isodow FROM d),"
                " extract(week FROM d), trim(to_char(d, 'Month')),"
                " to_char(d, 'YYYY') || '-Q' || to_char(d, 'Q'), extract(isodow FROM d) >= 6"
                " FROM (SELECT date_trunc('quarter', min(o_orderdate)) AS lo,"
                "  date_trunc('quarter', max(o_orderdate)) + interval '3 months - 1 day' AS hi"
                "  FROM {ok}) b, generate_series(b.lo, b.hi, interval '1 day') d"
                " WHERE b.lo IS NOT NULL ON CONFLICT (date_key) DO NOTHING"
            ).format(dd=self._w("dim_date"), ok=self._ok("orders"))
        )

    def _existing_partitions(self) -> set[str]:
        rows = self.conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = %s::regclass",
            (f'"{self.settings.schema}".fact_sales',),
        ).fetchall()
        return {r[0] for r in rows}

    def apply_facts(self, expected: int) -> FactResult:
        """Insert valid line items not yet in the warehouse; ``expected`` = valid rows."""
        quarters = [
            r[0] for r in self.conn.execute(
                sql.SQL(
                    "SELECT DISTINCT date_trunc('quarter', o_orderdate)::date FROM {} ORDER BY 1"
                ).format(self._ok("orders"))
            ).fetchall()
        ]
        existing = self._existing_partitions()
        new = [q for q in quarters if partition_name(q) not in existing]
        load = self._s(f"r{self.run_id}_fact_load")
        rest = self._s(f"r{self.run_id}_fact_rest")
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in FACT_COLUMNS)
        self.conn.execute(
            sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS) PARTITION BY RANGE (sale_date)")
            .format(load, self._w("fact_sales"))
        )
        for q in new:
            lo, hi = quarter_bounds(q)
            self.conn.execute(
                sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})").format(
                    self._w(partition_name(q)), load, sql.Literal(lo), sql.Literal(hi))
            )
        self.conn.execute(sql.SQL("CREATE TABLE {} PARTITION OF {} DEFAULT").format(rest, load))
        li = self._s(view_name(self.run_id, "lineitem"))
        cur = self.conn.execute(
            sql.SQL(
                "INSERT INTO {load} ({cols})"
                " SELECT l.l_orderkey, l.l_linenumber, o.order_date, o.customer_key, l.l_partkey,"
                " l.l_suppkey, l.l_quantity, l.l_extendedprice, l.l_discount, l.l_tax,"
                " l.l_returnflag, l.l_linestatus, l.l_shipdate, l.l_commitdate, l.l_receiptdate,"
                " l.l_shipinstruct, l.l_shipmode, o.order_status, o.order_priority,"
                " o.order_clerk, o.ship_priority, %(run_id)s"
                # Orders are already upserted, so earlier batches' orders join too.
                " FROM {li} l JOIN {orders} o ON o.orderkey = l.l_orderkey"
                # Dimensions are already upserted: the semi-joins are the line
                # items' referential check on the optimistic path.
                " WHERE EXISTS (SELECT 1 FROM {product} p WHERE p.product_key = l.l_partkey)"
                " AND EXISTS (SELECT 1 FROM {supplier} s WHERE s.supplier_key = l.l_suppkey)"
                " AND NOT EXISTS (SELECT 1 FROM {rej} r"
                "   WHERE r.table_name = 'lineitem' AND r.line_no = l.line_no)"
                " AND NOT EXISTS (SELECT 1 FROM {fact} f"
                "   WHERE f.orderkey = l.l_orderkey AND f.linenumber = l.l_linenumber)"
            ).format(load=load, cols=cols, li=li, orders=self._w("sales_order"),
                     rej=self._s(rejects_table(self.run_id)), fact=self._w("fact_sales"),
                     product=self._w("dim_product"), supplier=self._w("dim_supplier")),
            {"run_id": self.run_id},
        )
        inserted = cur.rowcount
        for q in new:
            lo, hi = quarter_bounds(q)
            part = self._w(partition_name(q))
            self.conn.execute(sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(load, part))
            # Attaching builds the partitioned indexes on the filled table in one go.
            self.conn.execute(
                sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
                    self._w("fact_sales"), part, sql.Literal(lo), sql.Literal(hi))
            )
        # Rows for quarters that had a partition, or whose order came in an
        # earlier batch (its quarter may still lack one), go in row by row.
        late = [r[0] for r in self.conn.execute(
            sql.SQL("SELECT DISTINCT date_trunc('quarter', sale_date)::date FROM {}").format(rest)
        ).fetchall()]
        have = self._existing_partitions()
        for q in late:
            if partition_name(q) not in have:
                lo, hi = quarter_bounds(q)
                self.conn.execute(
                    sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})")
                    .format(self._w(partition_name(q)), self._w("fact_sales"),
                            sql.Literal(lo), sql.Literal(hi)))
                new.append(q)
        self.conn.execute(
            sql.SQL("INSERT INTO {} ({cols}) SELECT {cols} FROM {}").format(
                self._w("fact_sales"), rest, cols=cols)
        )
        self.conn.execute(sql.SQL("DROP TABLE {}").format(load))
        present = 0
        if inserted != expected:
            row = self.conn.execute(
                sql.SQL(
                    "SELECT count(*) FROM {li} l JOIN {fact} f"
                    " ON f.orderkey = l.l_orderkey AND f.linenumber = l.l_linenumber"
                    " WHERE f.run_id <> %(run_id)s AND NOT EXISTS (SELECT 1 FROM {rej} r"
                    "  WHERE r.table_name = 'lineitem' AND r.line_no = l.line_no)"
                ).format(li=li, fact=self._w("fact_sales"),
                         rej=self._s(rejects_table(self.run_id))),
                {"run_id": self.run_id},
            ).fetchone()
            present = int(row[0]) if row else 0
        names = [partition_name(q) for q in new]
        log.info("facts applied", extra={"inserted": inserted, "already_present": present,
                                         "new_partitions": len(names)})
        return FactResult(inserted, present, names)
