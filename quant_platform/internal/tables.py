"""Operational source tables (CRM, HR, ERP) and the SCD type 2 dimensions built from them, declared once.

Never declare a PII column without its category: masking, grants and the dictionary are derived from it.
"""

from __future__ import annotations

from dataclasses import dataclass

from quant_platform.platform.tables import Column, TableSpec


@dataclass(frozen=True)
class SourceTable:
    system: str  # crm, hr, erp
    url_env: str  # environment variable holding the SQLAlchemy URL of the operational database
    table: str
    key: str
    columns: tuple[Column, ...]  # business columns as in the source, including key and updated_at

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


_UPDATED = Column("updated_at", "timestamptz", "When the source row last changed (the extraction watermark).",
                  nullable=False)

CRM_CLIENTS = SourceTable("crm", "QP_CRM_URL", "clients", "client_id", (
    Column("client_id", "bigint", "Client number in the CRM.", nullable=False, min_value=1),
    Column("name", "text", "Legal name of the client (a company or a person trading on own account).",
           nullable=False, pii=True, pii_category="name"),
    Column("email", "text", "Main contact e-mail.", pii=True, pii_category="email"),
    Column("phone", "text", "Main contact phone number.", pii=True, pii_category="phone"),
    Column("country", "text", "ISO 3166-1 alpha-2 country of incorporation or residence.", nullable=False),
    Column("segment", "text", "Client segment.", nullable=False,
           allowed_values=("producer", "refiner", "utility", "hedge_fund", "bank", "trading_house")),
    Column("credit_limit_usd", "double", "Credit limit granted by the risk desk.", unit="US dollars",
           min_value=0, max_value=1e10),
    Column("account_manager_id", "bigint", "Employee who manages the relationship (an employee_id)."),
    _UPDATED,
))

HR_EMPLOYEES = SourceTable("hr", "QP_HR_URL", "employees", "employee_id", (
    Column("employee_id", "bigint", "Employee number in the HR system.", nullable=False, min_value=1),
    Column("first_name", "text", "Given name.", nullable=False, pii=True, pii_category="name"),
    Column("last_name", "text", "Family name.", nullable=False, pii=True, pii_category="name"),
    Column("email", "text", "Work e-mail.", nullable=False, pii=True, pii_category="email"),
    Column("phone", "text", "Work phone.", pii=True, pii_category="phone"),
    Column("date_of_birth", "date", "Date of birth.", pii=True, pii_category="birth_date"),
    Column("hire_date", "date", "First day of employment.", nullable=False),
    Column("department", "text", "Department.", nullable=False,
           allowed_values=("trading", "risk", "operations", "research", "finance", "technology", "compliance")),
    Column("title", "text", "Job title.", nullable=False),
    Column("desk", "text", "Trading desk, e.g. 'crude', 'products', 'gas'; empty outside trading."),
    Column("salary_usd", "double", "Annual base salary.", unit="US dollars per year", pii=True,
           pii_category="compensation", min_value=0, max_value=5e6),
    Column("manager_id", "bigint", "The employee's manager (an employee_id)."),
    _UPDATED,
))

ERP_SUPPLIERS = SourceTable("erp", "QP_ERP_URL", "suppliers", "supplier_id", (
    Column("supplier_id", "bigint", "Supplier number in the ERP.", nullable=False, min_value=1),
    Column("name", "text", "Company name of the supplier.", nullable=False),
    Column("contact_name", "text", "Name of the contact person.", pii=True, pii_category="name"),
    Column("contact_email", "text", "E-mail of the contact person.", pii=True, pii_category="email"),
    Column("phone", "text", "Phone of the contact person.", pii=True, pii_category="phone"),
    Column("country", "text", "ISO 3166-1 alpha-2 country.", nullable=False),
    Column("category", "text", "What the supplier provides.", nullable=False,
           allowed_values=("storage", "shipping", "inspection", "broker", "market_data", "pipeline")),
    Column("iban", "text", "Bank account (IBAN) payments go to.", pii=True, pii_category="bank_account"),
    Column("payment_terms_days", "int", "Payment terms.", unit="days", min_value=0, max_value=365),
    Column("buyer_employee_id", "bigint", "Employee responsible for the supplier (an employee_id)."),
    _UPDATED,
))

SOURCE_TABLES = (CRM_CLIENTS, HR_EMPLOYEES, ERP_SUPPLIERS)

SCD2_COLUMNS = (
    Column("valid_from", "timestamptz", "Start of this version's validity: the source change that created it.",
           nullable=False),
    Column("valid_to", "timestamptz", "End of validity (exclusive); empty for the current version."),
    Column("is_current", "bool", "True for the version valid now (at most one per key).", nullable=False),
    Column("is_deleted", "bool", "True when this version was closed because the source row was deleted.",
           nullable=False),
    Column("version", "int", "1 for the first version of a key, then 2, 3, ...", nullable=False, min_value=1),
    Column("row_hash", "text", "Key id and HMAC-SHA256 (keyed by QP_ROW_HASH_KEY) of the business columns, to "
           "detect changes; digests PII, so only PII readers may read it.", nullable=False),
    Column("loaded_at", "timestamptz", "When this version row was last written (UTC).", nullable=False),
)


def dim_spec(source: SourceTable, name: str, description: str) -> TableSpec:
    business = tuple(c for c in source.columns if c.name != "updated_at")
    return TableSpec(
        schema="core",
        name=name,
        description=description,
        columns=(*business, Column("source_updated_at", "timestamptz",
                                   "updated_at of the source row this version was taken from.", nullable=False),
                 *SCD2_COLUMNS),
        primary_key=(source.key, "valid_from"),
    )


DIM_CLIENT = dim_spec(CRM_CLIENTS, "dim_client", (
    "Clients of the firm from the CRM, with full history (SCD type 2): one row per version of a client, "
    "valid from valid_from to valid_to; filter is_current for today's view. Name, e-mail and phone are PII: "
    "analysts read them masked in analyst.dim_client."))
DIM_EMPLOYEE = dim_spec(HR_EMPLOYEES, "dim_employee", (
    "Employees from the HR system, with full history (SCD type 2): department, desk, title and manager over "
    "time. Names, contact details, date of birth and salary are PII: analysts read analyst.dim_employee, "
    "where they are masked."))
DIM_SUPPLIER = dim_spec(ERP_SUPPLIERS, "dim_supplier", (
    "Suppliers from the ERP (storage, shipping, inspection, brokers, data vendors), with full history "
    "(SCD type 2). Contact person details and the IBAN are PII, masked in analyst.dim_supplier."))

DIMENSIONS = {CRM_CLIENTS.table: DIM_CLIENT, HR_EMPLOYEES.table: DIM_EMPLOYEE, ERP_SUPPLIERS.table: DIM_SUPPLIER}
INTERNAL_TABLES = (DIM_CLIENT, DIM_EMPLOYEE, DIM_SUPPLIER)
