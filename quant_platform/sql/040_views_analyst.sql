-- Generated from the TableSpecs by `quant-platform warehouse ddl --write`; do not edit by hand.

-- Analysts read PII only through these views, masked as declared in the TableSpecs.

CREATE OR REPLACE VIEW analyst.dim_client AS SELECT
    client_id,
    left(name, 1) || '***' AS name,
    '***@' || split_part(email, '@', 2) AS email,
    '***' || right(phone, 2) AS phone,
    country,
    segment,
    credit_limit_usd,
    account_manager_id,
    source_updated_at,
    valid_from,
    valid_to,
    is_current,
    is_deleted,
    version,
    loaded_at
FROM core.dim_client;

CREATE OR REPLACE VIEW analyst.dim_employee AS SELECT
    employee_id,
    left(first_name, 1) || '***' AS first_name,
    left(last_name, 1) || '***' AS last_name,
    '***@' || split_part(email, '@', 2) AS email,
    '***' || right(phone, 2) AS phone,
    CAST(date_trunc('year', date_of_birth) AS DATE) AS date_of_birth,
    hire_date,
    department,
    title,
    desk,
    CAST(NULL AS DOUBLE PRECISION) AS salary_usd,
    manager_id,
    source_updated_at,
    valid_from,
    valid_to,
    is_current,
    is_deleted,
    version,
    loaded_at
FROM core.dim_employee;

CREATE OR REPLACE VIEW analyst.dim_supplier AS SELECT
    supplier_id,
    name,
    left(contact_name, 1) || '***' AS contact_name,
    '***@' || split_part(contact_email, '@', 2) AS contact_email,
    '***' || right(phone, 2) AS phone,
    country,
    category,
    left(iban, 2) || '***' || right(iban, 4) AS iban,
    payment_terms_days,
    buyer_employee_id,
    source_updated_at,
    valid_from,
    valid_to,
    is_current,
    is_deleted,
    version,
    loaded_at
FROM core.dim_supplier;
