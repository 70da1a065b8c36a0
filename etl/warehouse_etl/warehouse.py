"""Applying a validated batch to the star schema, inside the batch transaction.

Dimensions are upserted (Type 1) and only rows that actually changed are
rewritten, so re-sending an unchanged snapshot costs no churn. Fact partitions
prepared by ``facts.FactBuilder`` are attached whole; only rows for quarters
that already exist go in row by row, skipping business keys already present.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from . import jsonlog
from .config import Settings
from .facts import (
    FACT_COLUMNS,
    Prepared,
    existing_partitions,
    partition_name,
    quarter_bounds,
)
from .stage import rejects_table
from .validate import ok_name, view_name

log = jsonlog.get("warehouse")

@dataclass
class FactResult:
    inserted: int
    already_present: int
    new_partitions: list[str]


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
        """MERGE the batch rows into a dimension, touching only rows that differ.

        MERGE (a join) rather than INSERT ... ON CONFLICT (a speculative insert
        per row) because batches are bulk; like ON CONFLICT it refuses to touch
        a row twice, so a key duplicated in the batch still raises.
        """
        ident = [sql.Identifier(c) for c in cols]
        non_key = [sql.Identifier(c) for c in cols if c not in key and c != "run_id"]
        cur = self.conn.execute(
            sql.SQL(
                "MERGE INTO {wh}.{tgt} AS t USING ({select}) AS s ({cols}) ON {on}"
                " WHEN MATCHED AND ({t_vals}) IS DISTINCT FROM ({s_vals})"
                "  THEN UPDATE SET {sets}"
                " WHEN NOT MATCHED THEN INSERT ({cols}) VALUES ({s_cols})"
            ).format(
                wh=self.wh, tgt=sql.Identifier(target), select=select,
                cols=sql.SQL(", ").join(ident),
                on=sql.SQL(" AND ").join(
                    sql.SQL("t.{k} = s.{k}").format(k=sql.Identifier(k)) for k in key),
                t_vals=sql.SQL(", ").join(sql.SQL("t.{}").format(c) for c in non_key),
                s_vals=sql.SQL(", ").join(sql.SQL("s.{}").format(c) for c in non_key),
                sets=sql.SQL(", ").join(
                    sql.SQL("{c} = s.{c}").format(c=c)
                    for c in (*non_key, sql.Identifier("run_id"))),
                s_cols=sql.SQL(", ").join(sql.SQL("s.{}").format(c) for c in ident),
            ),
            {"run_id": self.run_id},
        )
        return cur.rowcount

    def apply_dimensions(self) -> dict[str, int]:
        changed: dict[str, int] = {}
        changed["ref_region"] = self._upsert(
            "ref_region", ("region_key",), ("region_key", "name", "comment", "run_id"),
            sql.SQL("SELECT r_regionkey, r_name, r_comment, %(run_id)s::bigint FROM {}").format(
                self._ok("region")),
        )
        changed["ref_nation"] = self._upsert(
            "ref_nation", ("nation_key",),
            ("nation_key", "name", "region_key", "comment", "run_id"),
            sql.SQL("SELECT n_nationkey, n_name, n_regionkey, n_comment, %(run_id)s::bigint"
                    " FROM {}")
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
                " n.nation_key, n.name, g.region_key, g.name, %(run_id)s::bigint FROM {ok} s {geo}"
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
                " %(run_id)s::bigint FROM {ok} s {geo}"
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
                " p_retailprice, p_comment, %(run_id)s::bigint FROM {}"
            ).format(self._ok("part")),
        )
        changed["product_supplier"] = self._upsert(
            "product_supplier", ("product_key", "supplier_key"),
            ("product_key", "supplier_key", "available_qty", "supply_cost", "comment", "run_id"),
            sql.SQL(
                "SELECT ps_partkey, ps_suppkey, ps_availqty, ps_supplycost, ps_comment,"
                " %(run_id)s::bigint FROM {}"
            ).format(self._ok("partsupp")),
        )
        changed["sales_order"] = self._upsert(
            "sales_order", ("orderkey",),
            ("orderkey", "customer_key", "order_date", "order_status", "total_price",
             "order_priority", "order_clerk", "ship_priority", "comment", "run_id"),
            sql.SQL(
                "SELECT o_orderkey, o_custkey, o_orderdate, o_orderstatus, o_totalprice,"
                " o_orderpriority, o_clerk, o_shippriority, o_comment, %(run_id)s::bigint FROM {}"
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

    def apply_facts(self, prepared: Prepared, expected: int) -> FactResult:
        """Attach the prepared partitions and insert the remaining rows.

        ``expected`` is the number of valid line items; rows of orders loaded
        by earlier batches are only looked for when the prepared rows fall short.
        """
        fact = self._w("fact_sales")
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in FACT_COLUMNS)
        have = existing_partitions(self.conn, self.settings)
        inserted = 0
        attached = []
        for leaf in sorted(prepared.leaves, key=lambda x: x.quarter):
            name = partition_name(leaf.quarter)
            if name in have:  # another batch created it meanwhile: insert instead
                inserted += self._insert_new(sql.SQL("SELECT {cols} FROM {}").format(
                    self._s(leaf.table), cols=cols))
                continue
            lo, hi = quarter_bounds(leaf.quarter)
            self.conn.execute(sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(
                self._s(leaf.table), self.wh))
            self.conn.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(
                self._w(leaf.table), sql.Identifier(name)))
            self.conn.execute(
                sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
                    fact, self._w(name), sql.Literal(lo), sql.Literal(hi)))
            inserted += leaf.rows
            attached.append(name)
        for rest in prepared.rest_tables:
            inserted += self._insert_new(sql.SQL("SELECT {cols} FROM {}").format(
                self._s(rest), cols=cols))
        if inserted < expected:
            inserted += self._insert_late_lines()
        present = 0
        if inserted != expected:
            li = self._s(view_name(self.run_id, "lineitem"))
            row = self.conn.execute(
                sql.SQL(
                    "SELECT count(*) FROM {li} l JOIN {fact} f"
                    " ON f.orderkey = l.l_orderkey AND f.linenumber = l.l_linenumber"
                    " WHERE f.run_id <> %(run_id)s AND NOT EXISTS (SELECT 1 FROM {rej} r"
                    "  WHERE r.table_name = 'lineitem' AND r.line_no = l.line_no)"
                ).format(li=li, fact=fact, rej=self._s(rejects_table(self.run_id))),
                {"run_id": self.run_id},
            ).fetchone()
            present = int(row[0]) if row else 0
        log.info("facts applied", extra={"inserted": inserted, "already_present": present,
                                         "new_partitions": len(attached)})
        return FactResult(inserted, present, attached)

    def _insert_new(self, select: sql.Composable) -> int:
        """Insert fact rows whose business key is not in the warehouse yet."""
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in FACT_COLUMNS)
        cur = self.conn.execute(
            sql.SQL(
                "INSERT INTO {fact} ({cols}) SELECT {cols} FROM ({select}) n"
                " WHERE NOT EXISTS (SELECT 1 FROM {fact} f"
                "  WHERE f.orderkey = n.orderkey AND f.linenumber = n.linenumber)"
            ).format(fact=self._w("fact_sales"), cols=cols, select=select)
        )
        return cur.rowcount

    def _insert_late_lines(self) -> int:
        """Line items whose order came in an earlier batch (now in sales_order)."""
        li = self._s(view_name(self.run_id, "lineitem"))
        source = sql.SQL(
            "FROM {li} l JOIN {so} o ON o.orderkey = l.l_orderkey"
            " WHERE NOT EXISTS (SELECT 1 FROM {orders} b WHERE b.o_orderkey = l.l_orderkey)"
            " AND NOT EXISTS (SELECT 1 FROM {rej} r"
            "  WHERE r.table_name = 'lineitem' AND r.line_no = l.line_no)"
            " AND EXISTS (SELECT 1 FROM {wh}.dim_product p WHERE p.product_key = l.l_partkey)"
            " AND EXISTS (SELECT 1 FROM {wh}.dim_supplier s WHERE s.supplier_key = l.l_suppkey)"
        ).format(li=li, so=self._w("sales_order"), orders=self._ok("orders"),
                 rej=self._s(rejects_table(self.run_id)), wh=self.wh)
        have = existing_partitions(self.conn, self.settings)
        for (q,) in self.conn.execute(
            sql.SQL("SELECT DISTINCT date_trunc('quarter', o.order_date)::date {}").format(source)
        ).fetchall():
            if partition_name(q) not in have:
                lo, hi = quarter_bounds(q)
                self.conn.execute(
                    sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})")
                    .format(self._w(partition_name(q)), self._w("fact_sales"),
                            sql.Literal(lo), sql.Literal(hi)))
        return self._insert_new(sql.SQL(
            "SELECT l.l_orderkey AS orderkey, l.l_linenumber AS linenumber,"
            " o.order_date AS sale_date, o.customer_key, l.l_partkey AS product_key,"
            " l.l_suppkey AS supplier_key, l.l_quantity AS quantity,"
            " l.l_extendedprice AS extended_price, l.l_discount AS discount, l.l_tax AS tax,"
            " l.l_returnflag AS return_flag, l.l_linestatus AS line_status,"
            " l.l_shipdate AS ship_date, l.l_commitdate AS commit_date,"
            " l.l_receiptdate AS receipt_date, l.l_shipinstruct AS ship_instruct,"
            " l.l_shipmode AS ship_mode, o.order_status, o.order_priority, o.order_clerk,"
            " o.ship_priority, {run}::bigint AS run_id {source}"
        ).format(run=sql.Literal(self.run_id), source=source))
