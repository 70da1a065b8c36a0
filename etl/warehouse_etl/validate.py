"""Row rules, evaluated in SQL over the typed staging tables.

Every rule is one SQL predicate, so a batch is checked in a few set-based
passes instead of millions of Python calls; each failing row is written to
the run's reject table with every rule it broke, its file and its line.

Rule ids (also listed in the README):

* ``required:<column>`` - a required field is empty (completeness)
* ``type.integer|type.decimal|type.date:<column>`` - not a value of the
  column's type (validity; found while staging)
* ``domain.*:<column>`` - a value outside its domain (validity)
* ``unique.business_key`` - a key already seen earlier in the file (uniqueness)
* ``ref.<parent>:<column>`` - refers to a row neither in the batch nor in the
  warehouse (referential integrity)
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from . import contract, jsonlog
from .config import Settings
from .stage import StagedPart, rejects_table

log = jsonlog.get("validate")

# Where a parent key may already live when a batch does not carry the parent.
WAREHOUSE_KEYS: dict[str, tuple[str, str]] = {
    "region": ("ref_region", "region_key"),
    "nation": ("ref_nation", "nation_key"),
    "customer": ("dim_customer", "customer_key"),
    "part": ("dim_product", "product_key"),
    "supplier": ("dim_supplier", "supplier_key"),
    "orders": ("sales_order", "orderkey"),
}

CATEGORIES = {
    "completeness": ("required",),
    "validity": ("type.", "domain."),
    "uniqueness": ("unique.",),
    "integrity": ("ref.",),
}


@dataclass
class TableCounts:
    read: int = 0
    rejected: int = 0
    loaded: int = 0
    slow_path: bool = False


def view_name(run_id: int, table: str) -> str:
    return f"r{run_id}_{table}"


def ok_name(run_id: int, table: str) -> str:
    return f"r{run_id}_{table}_ok"


class Validator:
    def __init__(self, conn: psycopg.Connection, settings: Settings, run_id: int) -> None:
        self.conn = conn
        self.settings = settings
        self.run_id = run_id
        self.stg = sql.Identifier(settings.staging_schema)
        self.wh = sql.Identifier(settings.schema)
        self.rej = sql.Identifier(rejects_table(run_id))

    def _t(self, name: str) -> sql.Composed:
        return sql.SQL("{}.{}").format(self.stg, sql.Identifier(name))

    def create_views(self, parts: list[StagedPart]) -> None:
        """One view per table over its parts, and one over its rows still valid."""
        by_table: dict[str, list[str]] = {}
        for p in parts:
            by_table.setdefault(p.src.table.name, []).append(p.table_name)
        for table, names in by_table.items():
            union = sql.SQL(" UNION ALL ").join(
                sql.SQL("SELECT * FROM {}").format(self._t(n)) for n in sorted(names)
            )
            view = self._t(view_name(self.run_id, table))
            self.conn.execute(sql.SQL("CREATE VIEW {} AS {}").format(view, union))
            if table != "lineitem":  # the probe side of every join: no stats needed
                for n in names:
                    self.conn.execute(sql.SQL("ANALYZE {}").format(self._t(n)))
            # "ok" = staged minus rejected, as a view: it follows the reject
            # table, so a second validation pass needs no rebuild.
            ok = sql.SQL(
                "SELECT s.* FROM {view} s WHERE NOT EXISTS (SELECT 1 FROM {rej} r"
                " WHERE r.table_name = {tname} AND r.line_no = s.line_no)"
            ).format(
                view=view, rej=self._t(rejects_table(self.run_id)), tname=sql.Literal(table),
            )
            self.conn.execute(sql.SQL("CREATE VIEW {} AS {}").format(
                self._t(ok_name(self.run_id, table)), ok))

    def reset(self) -> None:
        """Forget validation results (type rejects from staging stay) before a re-run."""
        self.conn.execute(sql.SQL("DELETE FROM {} WHERE phase = 'validate'").format(
            self._t(rejects_table(self.run_id))))

    def _dups(self, table: contract.Table) -> sql.Composed:
        """Line numbers of rows whose key already occurred on an earlier line."""
        dups = self._t(f"r{self.run_id}_{table.name}_dups")
        keys = sql.SQL(", ").join(sql.Identifier(k) for k in table.key)
        notnull = sql.SQL(" AND ").join(
            sql.SQL("{} IS NOT NULL").format(sql.Identifier(k)) for k in table.key
        )
        view = self._t(view_name(self.run_id, table.name))
        self.conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(dups))
        self.conn.execute(
            sql.SQL(
                "CREATE UNLOGGED TABLE {dups} AS SELECT line_no FROM ("
                " SELECT line_no, row_number() OVER (PARTITION BY {keys} ORDER BY line_no) AS rn"
                " FROM {view} WHERE ({keys}) IN ("
                "  SELECT {keys} FROM {view} WHERE {notnull} GROUP BY {keys}"
                "  HAVING count(*) > 1)) d WHERE rn > 1"
            ).format(dups=dups, keys=keys, view=view, notnull=notnull)
        )
        return dups

    def validate_table(self, table: contract.Table, source_file: str, *,
                       strict: bool, rules_checked: bool) -> None:
        """Write this table's rejects; parents must have been validated first.

        The first, optimistic pass skips what the database proves for free:
        required and domain rules when the COPY enforced them as constraints
        (``rules_checked``), duplicate keys (the warehouse's unique indexes
        catch them) and the line items' references (the fact insert joins
        them, and its row count shows any miss). If the apply then finds a
        problem, the loader validates again with ``strict`` and checks it all.
        """
        with_rules = strict or not rules_checked
        with_refs = strict or table.name != "lineitem"
        if not (with_rules or with_refs or strict):
            return
        s = sql.Identifier("s")
        fails: list[sql.Composable] = []
        conds: list[sql.Composable] = []
        joins: list[sql.Composable] = []
        for col in table.columns:
            if not col.required or not with_rules:
                continue
            ident = sql.SQL("{}.{}").format(s, sql.Identifier(col.name))
            cond = (
                sql.SQL("({c} IS NULL OR btrim({c}) = '')").format(c=ident)
                if col.kind is contract.Kind.TEXT
                else sql.SQL("{} IS NULL").format(ident)
            )
            conds.append(cond)
            fails.append(sql.SQL("CASE WHEN {} THEN {} END").format(
                cond, sql.Literal(f"required:{col.name}")))
        for dom in table.domains if with_rules else ():
            cond = sql.SQL("({}) IS FALSE").format(sql.SQL(dom.predicate))
            conds.append(cond)
            fails.append(sql.SQL("CASE WHEN {} THEN {} END").format(
                cond, sql.Literal(f"{dom.rule_id}:{dom.column}")))
        if strict:
            dups = self._dups(table)
            joins.append(sql.SQL("LEFT JOIN {} d ON d.line_no = s.line_no").format(dups))
            conds.append(sql.SQL("d.line_no IS NOT NULL"))
            fails.append(
                sql.SQL("CASE WHEN d.line_no IS NOT NULL THEN 'unique.business_key' END"))
        for i, ref in enumerate(table.references if with_refs else ()):
            parent = contract.BY_NAME[ref.target]
            alias = sql.Identifier(f"p{i}")
            on = sql.SQL(" AND ").join(
                sql.SQL("{}.{} = s.{}").format(alias, sql.Identifier(pk), sql.Identifier(fk))
                for pk, fk in zip(parent.key, ref.columns, strict=True)
            )
            joins.append(sql.SQL("LEFT JOIN {} {} ON {}").format(
                self._t(ok_name(self.run_id, parent.name)), alias, on))
            fk_present = sql.SQL(" AND ").join(
                sql.SQL("s.{} IS NOT NULL").format(sql.Identifier(fk)) for fk in ref.columns
            )
            cond = sql.SQL("({} AND {}.{} IS NULL)").format(
                fk_present, alias, sql.Identifier(parent.key[0]))
            conds.append(cond)
            fails.append(sql.SQL("CASE WHEN {} THEN {} END").format(
                cond, sql.Literal(f"{ref.rule_id}:{ref.columns[0]}")))
        if not conds:
            return
        query = sql.SQL(
            "INSERT INTO {rej} (table_name, source_file, line_no, failed_rules, record)"
            " SELECT {tname}, {fname}, s.line_no, array_remove(ARRAY[{fails}]::text[], NULL),"
            " to_jsonb(s) - 'line_no' - '_trailer'"
            " FROM {view} s {joins} WHERE {conds}"
        ).format(
            rej=self._t(rejects_table(self.run_id)),
            tname=sql.Literal(table.name),
            fname=sql.Literal(source_file),
            fails=sql.SQL(", ").join(fails),
            view=self._t(view_name(self.run_id, table.name)),
            joins=sql.SQL(" ").join(joins),
            conds=sql.SQL(" OR ").join(conds),
        )
        self.conn.execute(query, {
            "date_min": self.settings.date_min, "date_max": self.settings.date_max})
        for ref in table.references if with_refs else ():
            self._recheck_in_warehouse(table, ref)

    def _recheck_in_warehouse(self, table: contract.Table, ref: contract.Reference) -> None:
        """Parents missing from the batch may have come in an earlier batch."""
        wh_table, wh_key = WAREHOUSE_KEYS[ref.target]
        label = f"{ref.rule_id}:{ref.columns[0]}"
        rej = self._t(rejects_table(self.run_id))
        fk = sql.SQL("(r.record ->> {})::bigint").format(sql.Literal(ref.columns[0]))
        cur = self.conn.execute(
            sql.SQL(
                "UPDATE {rej} r SET failed_rules = array_remove(r.failed_rules, {label})"
                " WHERE r.table_name = {tname} AND {label} = ANY (r.failed_rules)"
                " AND EXISTS (SELECT 1 FROM {wh}.{wt} w WHERE w.{wk} = {fk})"
            ).format(rej=rej, label=sql.Literal(label), tname=sql.Literal(table.name),
                     wh=self.wh, wt=sql.Identifier(wh_table), wk=sql.Identifier(wh_key), fk=fk)
        )
        if cur.rowcount:
            log.info("parents found in warehouse", extra={"table": table.name, "rule": label,
                                                           "rows": cur.rowcount})
            self.conn.execute(
                sql.SQL("DELETE FROM {} WHERE cardinality(failed_rules) = 0").format(rej)
            )

    def counts(self, parts: list[StagedPart]) -> dict[str, TableCounts]:
        result = {t.name: TableCounts() for t in contract.TABLES}
        for p in parts:
            c = result[p.src.table.name]
            c.read += p.rows
            c.slow_path = c.slow_path or p.slow_path
        rows = self.conn.execute(
            sql.SQL("SELECT table_name, count(*) FROM {} GROUP BY 1").format(
                self._t(rejects_table(self.run_id)))
        ).fetchall()
        for name, n in rows:
            result[name].rejected = int(n)
        for c in result.values():
            c.loaded = c.read - c.rejected
        return result

    def category_failures(self) -> dict[str, int]:
        """Rows failing at least one rule of each quality category."""
        out = {}
        for cat, prefixes in CATEGORIES.items():
            cond = sql.SQL(" OR ").join(
                sql.SQL("f LIKE {}").format(sql.Literal(p + "%")) for p in prefixes
            )
            row = self.conn.execute(
                sql.SQL(
                    "SELECT count(*) FROM {} r WHERE EXISTS"
                    " (SELECT 1 FROM unnest(r.failed_rules) f WHERE {})"
                ).format(self._t(rejects_table(self.run_id)), cond)
            ).fetchone()
            out[cat] = int(row[0]) if row else 0
        return out
