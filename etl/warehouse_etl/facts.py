"""Building fact rows off to the side, in parallel, before the batch transaction.

Turning six million staged line items into indexed fact partitions is most
of a load's work, and one transaction runs on one core. So the loader's
worker connections build the rows ahead of time. Each worker takes a share of
the quarters. For a quarter the warehouse has no partition for yet, the worker
fills a complete partition, indexes included. For a quarter that already has
one, it writes plain rows. The batch transaction then only attaches the ready
partitions and inserts the rest.

Until that transaction commits, everything here is scratch in the staging
schema. A crash leaves the warehouse untouched, and the next load drops the
scratch tables.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from . import jsonlog
from .config import Settings
from .db import connect
from .errors import DatabaseError
from .stage import rejects_table
from .validate import ok_name, view_name

log = jsonlog.get("facts")

FACT_COLUMNS = (
    "orderkey", "linenumber", "sale_date", "customer_key", "product_key", "supplier_key",
    "quantity", "extended_price", "discount", "tax", "return_flag", "line_status",
    "ship_date", "commit_date", "receipt_date", "ship_instruct", "ship_mode",
    "order_status", "order_priority", "order_clerk", "ship_priority", "run_id",
)


def quarter_bounds(q: dt.date) -> tuple[dt.date, dt.date]:
    start = dt.date(q.year, (q.month - 1) // 3 * 3 + 1, 1)
    end = dt.date(start.year + (start.month == 10), (start.month + 2) % 12 + 1, 1)
    return start, end


def partition_name(q: dt.date) -> str:
    return f"fact_sales_{q.year}q{(q.month - 1) // 3 + 1}"


def existing_partitions(conn: psycopg.Connection, settings: Settings) -> set[str]:
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = %s::regclass",
        (f'"{settings.schema}".fact_sales',),
    ).fetchall()
    return {r[0] for r in rows}


@dataclass
class Leaf:
    """A finished partition in the staging schema, waiting to be attached."""

    quarter: dt.date
    table: str
    rows: int


@dataclass
class Prepared:
    leaves: list[Leaf] = field(default_factory=list)
    rest_tables: list[str] = field(default_factory=list)  # rows for existing quarters
    rest_rows: int = 0

    @property
    def rows(self) -> int:
        return self.rest_rows + sum(leaf.rows for leaf in self.leaves)


class FactBuilder:
    def __init__(self, settings: Settings, run_id: int) -> None:
        self.settings = settings
        self.run_id = run_id
        self.stg = sql.Identifier(settings.staging_schema)
        self.wh = sql.Identifier(settings.schema)

    def _s(self, name: str) -> sql.Composed:
        return sql.SQL("{}.{}").format(self.stg, sql.Identifier(name))

    def leaf_name(self, q: dt.date) -> str:
        return f"r{self.run_id}_{partition_name(q)}"

    def _select(self) -> sql.Composed:
        """Valid line items of the batch's own orders, shaped as fact rows.

        Only committed data is read (staging and the warehouse as of now), so
        any connection can run it. Line items of orders from earlier batches
        are left to the batch transaction, which joins them to sales_order.
        """
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in FACT_COLUMNS)
        return sql.SQL(
            "SELECT {cols} FROM (SELECT l.l_orderkey AS orderkey, l.l_linenumber AS linenumber,"
            " o.o_orderdate AS sale_date, o.o_custkey AS customer_key,"
            " l.l_partkey AS product_key, l.l_suppkey AS supplier_key,"
            " l.l_quantity AS quantity, l.l_extendedprice AS extended_price,"
            " l.l_discount AS discount, l.l_tax AS tax, l.l_returnflag AS return_flag,"
            " l.l_linestatus AS line_status, l.l_shipdate AS ship_date,"
            " l.l_commitdate AS commit_date, l.l_receiptdate AS receipt_date,"
            " l.l_shipinstruct AS ship_instruct, l.l_shipmode AS ship_mode,"
            " o.o_orderstatus AS order_status, o.o_orderpriority AS order_priority,"
            " o.o_clerk AS order_clerk, o.o_shippriority AS ship_priority,"
            " %(run_id)s::bigint AS run_id"
            " FROM {li} l JOIN {orders} o ON o.o_orderkey = l.l_orderkey"
            " WHERE date_trunc('quarter', o.o_orderdate)::date = ANY (%(quarters)s)"
            # The line items' references, on the optimistic path: a part or
            # supplier must be valid in the batch or already in the warehouse.
            " AND l.l_partkey IN (SELECT p_partkey FROM {part}"
            "   UNION ALL SELECT product_key FROM {wh}.dim_product)"
            " AND l.l_suppkey IN (SELECT s_suppkey FROM {supplier}"
            "   UNION ALL SELECT supplier_key FROM {wh}.dim_supplier)"
            " AND NOT EXISTS (SELECT 1 FROM {rej} r"
            "   WHERE r.table_name = 'lineitem' AND r.line_no = l.line_no)) f"
        ).format(
            cols=cols,
            li=self._s(view_name(self.run_id, "lineitem")),
            orders=self._s(ok_name(self.run_id, "orders")),
            part=self._s(ok_name(self.run_id, "part")),
            supplier=self._s(ok_name(self.run_id, "supplier")),
            rej=self._s(rejects_table(self.run_id)),
            wh=self.wh,
        )

    def _build_share(self, conn: psycopg.Connection, worker: int, quarters: list[dt.date],
                     new: set[dt.date]) -> tuple[list[Leaf], str, int]:
        shadow = self._s(f"r{self.run_id}_facts_w{worker}")
        rest_name = f"r{self.run_id}_facts_w{worker}_rest"
        fact = sql.SQL("{}.fact_sales").format(self.wh)
        conn.execute(sql.SQL(
            "CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS) PARTITION BY RANGE (sale_date)"
        ).format(shadow, fact))
        leaves = []
        for q in quarters:
            if q not in new:
                continue
            lo, hi = quarter_bounds(q)
            name = self.leaf_name(q)
            # The CHECK lets ATTACH PARTITION skip its validation scan.
            conn.execute(sql.SQL(
                "CREATE TABLE {leaf} PARTITION OF {shadow} ("
                " CONSTRAINT {chk} CHECK (sale_date >= {lo} AND sale_date < {hi}))"
                " FOR VALUES FROM ({lo}) TO ({hi})"
            ).format(leaf=self._s(name), shadow=shadow, chk=sql.Identifier(f"{name}_range"),
                     lo=sql.Literal(lo), hi=sql.Literal(hi)))
            leaves.append(Leaf(q, name, 0))
        conn.execute(sql.SQL("CREATE UNLOGGED TABLE {} PARTITION OF {} DEFAULT").format(
            self._s(rest_name), shadow))
        conn.execute(
            sql.SQL("INSERT INTO {} {}").format(shadow, self._select()),
            {"run_id": self.run_id, "quarters": quarters},
        )
        for leaf in leaves:
            table = self._s(leaf.table)
            conn.execute(sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(shadow, table))
            # The same definitions as the partitioned indexes, so ATTACH adopts them.
            conn.execute(sql.SQL(
                "CREATE UNIQUE INDEX ON {} (orderkey, linenumber, sale_date)").format(table))
            conn.execute(sql.SQL("CREATE INDEX ON {} (sale_date)").format(table))
            conn.execute(sql.SQL("CREATE INDEX ON {} (customer_key)").format(table))
            row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone()
            leaf.rows = int(row[0]) if row else 0
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(
            self._s(rest_name))).fetchone()
        return leaves, rest_name, int(row[0]) if row else 0

    def start(self) -> None:
        """Build in the background; ``result()`` waits for it.

        The batch transaction upserts the dimensions meanwhile: the builders
        only read committed data, so the two do not depend on each other.
        """
        self._result: Prepared | None = None
        self._error: BaseException | None = None

        def run() -> None:
            try:
                with connect(self.settings, f"warehouse_etl run {self.run_id} facts") as conn:
                    self._result = self.build(conn)
            except BaseException as exc:
                self._error = exc

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def wait(self) -> None:
        """Let a build finish (its tables must not appear after a cleanup)."""
        self._thread.join()

    def result(self) -> Prepared:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    def build(self, conn: psycopg.Connection) -> Prepared:
        """Split the batch's quarters over the workers by row count and build in parallel."""
        per_quarter = conn.execute(
            sql.SQL(
                "SELECT date_trunc('quarter', o_orderdate)::date, count(*) FROM {}"
                " GROUP BY 1 ORDER BY 2 DESC"
            ).format(self._s(ok_name(self.run_id, "orders")))
        ).fetchall()
        have = existing_partitions(conn, self.settings)
        new = {q for q, _ in per_quarter if partition_name(q) not in have}
        nworkers = max(1, min(self.settings.workers, len(per_quarter)))
        shares: list[list[dt.date]] = [[] for _ in range(nworkers)]
        load = [0] * nworkers
        for q, n in per_quarter:  # greedy: biggest quarter to the least loaded worker
            i = load.index(min(load))
            shares[i].append(q)
            load[i] += int(n)
        prepared = Prepared()
        errors: list[BaseException] = []
        lock = threading.Lock()

        def work(i: int) -> None:
            try:
                with connect(self.settings, f"warehouse_etl run {self.run_id} facts") as wconn:
                    wconn.execute("SET work_mem = '256MB'")
                    leaves, rest, rest_rows = self._build_share(wconn, i, shares[i], new)
                with lock:
                    prepared.leaves.extend(leaves)
                    prepared.rest_tables.append(rest)
                    prepared.rest_rows += rest_rows
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,), daemon=True)
                   for i in range(nworkers) if shares[i]]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            first = errors[0]
            if isinstance(first, psycopg.errors.UniqueViolation):
                raise first  # the caller re-validates with the duplicate rule
            if isinstance(first, psycopg.Error):
                raise DatabaseError(f"building fact partitions failed: {first}") from first
            raise first
        log.info("fact rows prepared", extra={"partitions": len(prepared.leaves),
                                              "rows": prepared.rows})
        return prepared
