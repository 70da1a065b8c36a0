"""The input contract: which files a batch holds and what each column means.

Kept as data so the loader, the validator, the README and the tests all read
the same definition; a column added here flows into staging and validation.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Kind(Enum):
    """Source column types. Each maps to one staging type and one type rule."""

    INT = "bigint"
    DEC = "numeric(15,2)"
    DATE = "date"
    TEXT = "text"


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    required: bool = True
    description: str = ""


@dataclass(frozen=True)
class Reference:
    """A foreign key in the source: ``columns`` must name a known ``target`` row."""

    columns: tuple[str, ...]
    target: str
    rule_id: str


@dataclass(frozen=True)
class Domain:
    """A value-domain rule, expressed over typed staging columns.

    ``predicate`` is a fixed SQL boolean expression written in this module
    (never built from input); ``NULL`` results count as passing so that a
    missing value is reported once, by the ``required`` rule.
    """

    rule_id: str
    column: str
    predicate: str
    description: str


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    references: tuple[Reference, ...] = ()
    domains: tuple[Domain, ...] = ()

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)


def _cols(*spec: tuple[str, Kind, bool, str]) -> tuple[Column, ...]:
    return tuple(Column(n, k, r, d) for n, k, r, d in spec)


I, D, DT, T = Kind.INT, Kind.DEC, Kind.DATE, Kind.TEXT  # noqa: E741 - table shorthand

# Dates outside this window are typos or sentinel values in real exports.
DATE_RANGE_PRED = "{col} BETWEEN %(date_min)s::date AND %(date_max)s::date"

REGION = Table(
    "region",
    _cols(
        ("r_regionkey", I, True, "region id"),
        ("r_name", T, True, "region name"),
        ("r_comment", T, False, "free text"),
    ),
    key=("r_regionkey",),
)

NATION = Table(
    "nation",
    _cols(
        ("n_nationkey", I, True, "nation id"),
        ("n_name", T, True, "nation name"),
        ("n_regionkey", I, True, "region of the nation"),
        ("n_comment", T, False, "free text"),
    ),
    key=("n_nationkey",),
    references=(Reference(("n_regionkey",), "region", "ref.region"),),
)

SUPPLIER = Table(
    "supplier",
    _cols(
        ("s_suppkey", I, True, "supplier id"),
        ("s_name", T, True, "supplier name"),
        ("s_address", T, False, "address"),
        ("s_nationkey", I, True, "nation of the supplier"),
        ("s_phone", T, False, "phone"),
        ("s_acctbal", D, True, "account balance (may be negative)"),
        ("s_comment", T, False, "free text"),
    ),
    key=("s_suppkey",),
    references=(Reference(("s_nationkey",), "nation", "ref.nation"),),
)

CUSTOMER = Table(
    "customer",
    _cols(
        ("c_custkey", I, True, "customer id"),
        ("c_name", T, True, "customer name"),
        ("c_address", T, False, "address"),
        ("c_nationkey", I, True, "nation of the customer"),
        ("c_phone", T, False, "phone"),
        ("c_acctbal", D, True, "account balance (may be negative)"),
        ("c_mktsegment", T, True, "market segment"),
        ("c_comment", T, False, "free text"),
    ),
    key=("c_custkey",),
    references=(Reference(("c_nationkey",), "nation", "ref.nation"),),
)

PART = Table(
    "part",
    _cols(
        ("p_partkey", I, True, "part id"),
        ("p_name", T, True, "part name"),
        ("p_mfgr", T, True, "manufacturer"),
        ("p_brand", T, True, "brand"),
        ("p_type", T, True, "type"),
        ("p_size", I, True, "size, > 0"),
        ("p_container", T, True, "container"),
        ("p_retailprice", D, True, "list price, > 0"),
        ("p_comment", T, False, "free text"),
    ),
    key=("p_partkey",),
    domains=(
        Domain("domain.positive", "p_size", "p_size > 0", "size must be positive"),
        Domain(
            "domain.positive",
            "p_retailprice",
            "p_retailprice > 0",
            "retail price must be positive",
        ),
    ),
)

PARTSUPP = Table(
    "partsupp",
    _cols(
        ("ps_partkey", I, True, "part id"),
        ("ps_suppkey", I, True, "supplier id"),
        ("ps_availqty", I, True, "available quantity, >= 0"),
        ("ps_supplycost", D, True, "supply cost, > 0"),
        ("ps_comment", T, False, "free text"),
    ),
    key=("ps_partkey", "ps_suppkey"),
    references=(
        Reference(("ps_partkey",), "part", "ref.part"),
        Reference(("ps_suppkey",), "supplier", "ref.supplier"),
    ),
    domains=(
        Domain("domain.range", "ps_availqty", "ps_availqty >= 0", "quantity must be >= 0"),
        Domain(
            "domain.positive", "ps_supplycost", "ps_supplycost > 0", "supply cost must be positive"
        ),
    ),
)

ORDERS = Table(
    "orders",
    _cols(
        ("o_orderkey", I, True, "order id"),
        ("o_custkey", I, True, "ordering customer"),
        ("o_orderstatus", T, True, "F, O or P"),
        ("o_totalprice", D, True, "order total, > 0"),
        ("o_orderdate", DT, True, "order date: becomes sale_date"),
        ("o_orderpriority", T, True, "priority"),
        ("o_clerk", T, False, "clerk"),
        ("o_shippriority", I, True, "ship priority"),
        ("o_comment", T, False, "free text"),
    ),
    key=("o_orderkey",),
    references=(Reference(("o_custkey",), "customer", "ref.customer"),),
    domains=(
        Domain(
            "domain.values",
            "o_orderstatus",
            "o_orderstatus IN ('F', 'O', 'P')",
            "status must be F, O or P",
        ),
        Domain("domain.positive", "o_totalprice", "o_totalprice > 0", "total must be positive"),
        Domain(
            "domain.date_range",
            "o_orderdate",
            DATE_RANGE_PRED.format(col="o_orderdate"),
            "order date outside the configured range",
        ),
    ),
)

LINEITEM = Table(
    "lineitem",
    _cols(
        ("l_orderkey", I, True, "order id"),
        ("l_partkey", I, True, "part sold"),
        ("l_suppkey", I, True, "supplier"),
        ("l_linenumber", I, True, "line number within the order, >= 1"),
        ("l_quantity", D, True, "quantity, > 0"),
        ("l_extendedprice", D, True, "price x quantity, > 0"),
        ("l_discount", D, True, "fraction 0..1"),
        ("l_tax", D, True, "fraction 0..1"),
        ("l_returnflag", T, True, "R, A or N"),
        ("l_linestatus", T, True, "O or F"),
        ("l_shipdate", DT, True, "ship date"),
        ("l_commitdate", DT, True, "commit date"),
        ("l_receiptdate", DT, True, "receipt date, >= ship date"),
        ("l_shipinstruct", T, True, "shipping instruction"),
        ("l_shipmode", T, True, "shipping mode"),
        ("l_comment", T, False, "free text (not loaded)"),
    ),
    key=("l_orderkey", "l_linenumber"),
    references=(
        Reference(("l_orderkey",), "orders", "ref.order"),
        Reference(("l_partkey",), "part", "ref.part"),
        Reference(("l_suppkey",), "supplier", "ref.supplier"),
    ),
    domains=(
        Domain("domain.range", "l_linenumber", "l_linenumber >= 1", "line number must be >= 1"),
        Domain("domain.positive", "l_quantity", "l_quantity > 0", "quantity must be positive"),
        Domain(
            "domain.positive",
            "l_extendedprice",
            "l_extendedprice > 0",
            "extended price must be positive",
        ),
        Domain(
            "domain.range", "l_discount", "l_discount BETWEEN 0 AND 1", "discount outside [0, 1]"
        ),
        Domain("domain.range", "l_tax", "l_tax BETWEEN 0 AND 1", "tax outside [0, 1]"),
        Domain(
            "domain.values",
            "l_returnflag",
            "l_returnflag IN ('R', 'A', 'N')",
            "return flag must be R, A or N",
        ),
        Domain(
            "domain.values",
            "l_linestatus",
            "l_linestatus IN ('O', 'F')",
            "line status must be O or F",
        ),
        Domain(
            "domain.date_range",
            "l_shipdate",
            DATE_RANGE_PRED.format(col="l_shipdate"),
            "ship date outside the configured range",
        ),
        Domain(
            "domain.date_range",
            "l_commitdate",
            DATE_RANGE_PRED.format(col="l_commitdate"),
            "commit date outside the configured range",
        ),
        Domain(
            "domain.date_range",
            "l_receiptdate",
            DATE_RANGE_PRED.format(col="l_receiptdate"),
            "receipt date outside the configured range",
        ),
        Domain(
            "domain.date_order",
            "l_receiptdate",
            "l_receiptdate >= l_shipdate",
            "receipt date before ship date",
        ),
    ),
)

# Load order: every table comes after the tables it references.
TABLES: tuple[Table, ...] = (REGION, NATION, SUPPLIER, CUSTOMER, PART, PARTSUPP, ORDERS, LINEITEM)
BY_NAME: dict[str, Table] = {t.name: t for t in TABLES}

# File suffixes accepted for each table, in lookup order.
SUFFIXES: tuple[str, ...] = (".tbl", ".tbl.gz", ".csv", ".csv.gz")
