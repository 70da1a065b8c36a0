-- The star schema. Runs with search_path set to the warehouse schema, so
-- names are unqualified and the schema name stays configurable.

CREATE TABLE dim_date (
    date_key      date PRIMARY KEY,
    year          smallint NOT NULL,
    quarter       smallint NOT NULL,
    month         smallint NOT NULL,
    day           smallint NOT NULL,
    day_of_week   smallint NOT NULL,          -- ISO: 1 = Monday
    iso_week      smallint NOT NULL,
    month_name    text NOT NULL,
    quarter_label text NOT NULL,              -- e.g. 1995-Q3
    is_weekend    boolean NOT NULL
);

-- Geography reference data, kept so later batches may omit nation/region and
-- so dimension rows can be re-folded when a nation is renamed.
CREATE TABLE ref_region (
    region_key  bigint PRIMARY KEY,
    name        text NOT NULL,
    comment     text,
    run_id      bigint NOT NULL
);

CREATE TABLE ref_nation (
    nation_key  bigint PRIMARY KEY,
    name        text NOT NULL,
    region_key  bigint NOT NULL,
    comment     text,
    run_id      bigint NOT NULL
);

-- Type 1 dimensions keyed by the source business key: the sources are stable
-- and history is not kept, so a surrogate key would only add a lookup join.
CREATE TABLE dim_customer (
    customer_key    bigint PRIMARY KEY,
    name            text NOT NULL,
    address         text,
    phone           text,
    account_balance numeric(15,2) NOT NULL,
    market_segment  text NOT NULL,
    comment         text,
    nation_key      bigint NOT NULL,
    nation_name     text NOT NULL,
    region_key      bigint NOT NULL,
    region_name     text NOT NULL,
    run_id          bigint NOT NULL
);

CREATE TABLE dim_supplier (
    supplier_key    bigint PRIMARY KEY,
    name            text NOT NULL,
    address         text,
    phone           text,
    account_balance numeric(15,2) NOT NULL,
    comment         text,
    nation_key      bigint NOT NULL,
    nation_name     text NOT NULL,
    region_key      bigint NOT NULL,
    region_name     text NOT NULL,
    run_id          bigint NOT NULL
);

CREATE TABLE dim_product (
    product_key   bigint PRIMARY KEY,
    name          text NOT NULL,
    manufacturer  text NOT NULL,
    brand         text NOT NULL,
    type          text NOT NULL,
    size          integer NOT NULL,
    container     text NOT NULL,
    retail_price  numeric(15,2) NOT NULL,
    comment       text,
    run_id        bigint NOT NULL
);

-- partsupp: which supplier offers which product, at what cost.
CREATE TABLE product_supplier (
    product_key   bigint NOT NULL,
    supplier_key  bigint NOT NULL,
    available_qty bigint NOT NULL,
    supply_cost   numeric(15,2) NOT NULL,
    comment       text,
    run_id        bigint NOT NULL,
    PRIMARY KEY (product_key, supplier_key)
);

-- Order headers: kept in their own table so that an order whose line items
-- arrive in a later batch (or never) is still known to the warehouse.
CREATE TABLE sales_order (
    orderkey        bigint PRIMARY KEY,
    customer_key    bigint NOT NULL,
    order_date      date NOT NULL,
    order_status    text NOT NULL,
    total_price     numeric(15,2) NOT NULL,
    order_priority  text NOT NULL,
    order_clerk     text,
    ship_priority   integer NOT NULL,
    comment         text,
    run_id          bigint NOT NULL
);

-- Line-item grain. Order attributes are degenerate dimensions on the fact.
-- Quarterly partitions are created by the loader ahead of the rows they hold.
CREATE TABLE fact_sales (
    orderkey        bigint NOT NULL,
    linenumber      integer NOT NULL,
    sale_date       date NOT NULL,
    customer_key    bigint NOT NULL,
    product_key     bigint NOT NULL,
    supplier_key    bigint NOT NULL,
    quantity        numeric(15,2) NOT NULL,
    extended_price  numeric(15,2) NOT NULL,
    discount        numeric(15,2) NOT NULL,
    tax             numeric(15,2) NOT NULL,
    return_flag     text NOT NULL,
    line_status     text NOT NULL,
    ship_date       date NOT NULL,
    commit_date     date NOT NULL,
    receipt_date    date NOT NULL,
    ship_instruct   text NOT NULL,
    ship_mode       text NOT NULL,
    order_status    text NOT NULL,
    order_priority  text NOT NULL,
    order_clerk     text,
    ship_priority   integer NOT NULL,
    run_id          bigint NOT NULL
) PARTITION BY RANGE (sale_date);

-- A partitioned unique index must contain the partition key; sale_date is a
-- function of orderkey (the order's date), so this is the business key.
CREATE UNIQUE INDEX fact_sales_business_key ON fact_sales (orderkey, linenumber, sale_date);
CREATE INDEX fact_sales_sale_date ON fact_sales (sale_date);
CREATE INDEX fact_sales_customer ON fact_sales (customer_key);

-- Strict date check for the slow (text) validation path: PostgreSQL 15 has
-- no pg_input_is_valid, and a failed cast would abort the whole statement.
CREATE FUNCTION etl_is_date(v text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN
    -- CASE, not AND: the casts below must only see strings the pattern accepted.
    CASE WHEN v ~ '^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$' THEN
        substr(v, 1, 4)::int >= 1
        AND substr(v, 9, 2)::int <= CASE
            WHEN substr(v, 6, 2) IN ('04', '06', '09', '11') THEN 30
            WHEN substr(v, 6, 2) <> '02' THEN 31
            WHEN substr(v, 1, 4)::int % 4 = 0
                 AND (substr(v, 1, 4)::int % 100 <> 0 OR substr(v, 1, 4)::int % 400 = 0) THEN 29
            ELSE 28
        END
    ELSE false END;
