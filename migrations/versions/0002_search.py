"""Search: full text over name, description and organisation name; district indexes.

Both backends index the *folded* text (see ``mapservice.search.fold``): lower case, accents
removed, ß -> ss, then ae -> a, oe -> o, ue -> u, so that "Müller", "Mueller" and "muller" meet.

PostgreSQL: ``mapservice_fold(text)`` (unaccent + lower + punctuation -> space + the digraphs),
``mapservice_document(name, description, organisation)`` and a ``resource.search_vector``
tsvector ('simple' configuration: no stemming, no stop words, right for names in many
languages) with a GIN index. Triggers keep it current on every write path (ORM upsert, COPY,
plain SQL), also when an organisation is renamed. Cost: building a vector takes tens of µs per
row; a bulk load may disable ``resource_search_vector`` and fill the column in one
``UPDATE ... SET search_vector = mapservice_document(...)`` instead.

SQLite: an FTS5 table ``resource_fts`` (rowid = resource.id; tokenizer unicode61 with
remove_diacritics 2 folds case and accents; prefix indexes for 2 and 3 characters). Triggers
store the text after SQLite's lower() (ASCII only), ß -> ss and the digraphs; the store folds
the query the same way (``store/spatialite.py``).

Existing rows are indexed during the upgrade.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""
from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _sqlite_fold(expr: str) -> str:
    folded = f"lower(coalesce({expr}, ''))"
    for old, new in (("ẞ", "ss"), ("ß", "ss"), ("ae", "a"), ("oe", "o"), ("ue", "u")):
        folded = f"replace({folded}, '{old}', '{new}')"
    return folded


def _sqlite_row(prefix: str) -> str:
    org = f"(SELECT o.name FROM organization o WHERE o.id = {prefix}.organization_id)"
    return (f"{prefix}.id, {_sqlite_fold(f'{prefix}.name')}, "
            f"{_sqlite_fold(f'{prefix}.description')}, {_sqlite_fold(org)}")


_SQLITE_TRIGGERS = ("resource_fts_insert", "resource_fts_update", "resource_fts_delete",
                    "organization_fts_update")

_PG_FUNCTIONS = ("mapservice_organization_search_vector()", "mapservice_resource_search_vector()",
                 "mapservice_document(text, text, text)", "mapservice_fold(text)")


def _upgrade_sqlite() -> None:
    op.execute("CREATE VIRTUAL TABLE resource_fts USING fts5(name, description, organization, "
               "tokenize = 'unicode61 remove_diacritics 2', prefix = '2 3')")
    columns = "rowid, name, description, organization"
    op.execute(f"""CREATE TRIGGER resource_fts_insert AFTER INSERT ON resource BEGIN
        INSERT INTO resource_fts ({columns}) VALUES ({_sqlite_row('new')});
    END""")
    op.execute(f"""CREATE TRIGGER resource_fts_update
        AFTER UPDATE OF name, description, organization_id ON resource BEGIN
        DELETE FROM resource_fts WHERE rowid = old.id;
        INSERT INTO resource_fts ({columns}) VALUES ({_sqlite_row('new')});
    END""")
    op.execute("""CREATE TRIGGER resource_fts_delete AFTER DELETE ON resource BEGIN
        DELETE FROM resource_fts WHERE rowid = old.id;
    END""")
    op.execute(f"""CREATE TRIGGER organization_fts_update AFTER UPDATE OF name ON organization
        BEGIN
        UPDATE resource_fts SET organization = {_sqlite_fold('new.name')}
        WHERE rowid IN (SELECT id FROM resource WHERE organization_id = new.id);
    END""")
    op.execute(f"INSERT INTO resource_fts ({columns}) SELECT {_sqlite_row('r')} FROM resource r")


def _upgrade_postgres() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS unaccent")
    schema = op.get_bind().exec_driver_sql(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
        "WHERE e.extname = 'unaccent'").scalar_one()
    unaccent = f'"{schema}".unaccent'
    # IMMUTABLE so that it may be used in indexes; it is, as long as the unaccent rules file
    # is not edited (then: recompute search_vector).
    op.execute(f"""CREATE FUNCTION mapservice_fold(text) RETURNS text
        LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
        SELECT replace(replace(replace(
            regexp_replace(lower({unaccent}('{unaccent}'::regdictionary, $1)),
                           '[[:punct:]]+', ' ', 'g'),
            'ae', 'a'), 'oe', 'o'), 'ue', 'u')
    $$""")
    # Only immutable operators in the body (not concat_ws, which is only stable), so that
    # PostgreSQL inlines it: a function it cannot inline costs ~5x more per row.
    op.execute("""CREATE FUNCTION mapservice_document(text, text, text) RETURNS tsvector
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
        SELECT to_tsvector('simple'::regconfig, mapservice_fold(
            coalesce($1, '') || ' ' || coalesce($2, '') || ' ' || coalesce($3, '')))
    $$""")
    op.execute("ALTER TABLE resource ADD COLUMN search_vector tsvector")
    op.execute("""CREATE FUNCTION mapservice_resource_search_vector() RETURNS trigger
        LANGUAGE plpgsql AS $$
        DECLARE
            organization_name text;
        BEGIN
            IF NEW.organization_id IS NOT NULL THEN
                SELECT o.name INTO organization_name FROM organization o
                 WHERE o.id = NEW.organization_id;
            END IF;
            NEW.search_vector := mapservice_document(NEW.name, NEW.description,
                                                     organization_name);
            RETURN NEW;
        END
    $$""")
    op.execute("""CREATE TRIGGER resource_search_vector
        BEFORE INSERT OR UPDATE OF name, description, organization_id ON resource
        FOR EACH ROW EXECUTE FUNCTION mapservice_resource_search_vector()""")
    op.execute("""CREATE FUNCTION mapservice_organization_search_vector() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE resource
               SET search_vector = mapservice_document(name, description, NEW.name)
             WHERE organization_id = NEW.id;
            RETURN NULL;
        END
    $$""")
    op.execute("""CREATE TRIGGER organization_search_vector
        AFTER UPDATE OF name ON organization FOR EACH ROW
        WHEN (OLD.name IS DISTINCT FROM NEW.name)
        EXECUTE FUNCTION mapservice_organization_search_vector()""")
    op.execute("""UPDATE resource r SET search_vector = mapservice_document(r.name, r.description,
        (SELECT o.name FROM organization o WHERE o.id = r.organization_id))""")
    op.execute("CREATE INDEX ix_resource_search_vector ON resource USING gin (search_vector)")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _upgrade_postgres()
    else:
        _upgrade_sqlite()
    op.create_index("ix_resource_stadtteil", "resource", ["stadtteil"])
    op.create_index("ix_resource_bezirk", "resource", ["bezirk"])


def downgrade() -> None:
    op.drop_index("ix_resource_bezirk", table_name="resource")
    op.drop_index("ix_resource_stadtteil", table_name="resource")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS organization_search_vector ON organization")
        op.execute("DROP TRIGGER IF EXISTS resource_search_vector ON resource")
        op.execute("ALTER TABLE resource DROP COLUMN IF EXISTS search_vector")
        for function in _PG_FUNCTIONS:
            op.execute(f"DROP FUNCTION IF EXISTS {function}")
        # The unaccent extension stays (like postgis in 0001): other schemas may use it.
    else:
        for trigger in _SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS resource_fts")
