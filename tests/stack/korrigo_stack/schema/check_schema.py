"""Compare a live database with the facts of Korrigo's real schema.

    python3 -m korrigo_stack.schema.check_schema [--dsn DSN] [--version head|8f16b75|auto]
                                                 [--facts shared/korrigo-schema.md] [--json]
    python3 -m korrigo_stack.schema.check_schema --write-snapshot   # refresh expected_schema.json

The expected schema is parsed from the schema facts markdown (``shared/korrigo-schema.md``: tables,
columns with type/nullability/DB default, constraints with their definitions, indexes not backing a
constraint). When the markdown is not found, the snapshot ``expected_schema.json`` beside this file
(written from the markdown with ``--write-snapshot``) is used, so CI needs no access to shared/.

At 8f16b75 the facts list 10 "focus" tables; the other tables that exist at that version are the
HEAD table minus the "Differences 8f16b75 -> HEAD" section (columns/constraints/indexes added at HEAD
removed, removed ones put back). The facts do not give the type of the removed
``students_student.ine``: it comes from Korrigo's students/0001_initial (CharField(max_length=50,
unique=True)), see ``REMOVED_COLUMN_TYPES``.

What is compared, per table: the ordered column list (name, type, nullable, DB default), the set of
constraints (kind, name, definition as pg_get_constraintdef prints it), the set of indexes that do
not back a constraint (name, definition without "ON table"). Exit status 0 when identical, 1 when not.
"""

import argparse
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SNAPSHOT = os.path.join(HERE, "expected_schema.json")

# (table, column) -> (type, nullable, default, column it follows) for columns removed at HEAD.
REMOVED_COLUMN_TYPES = {
    ("students_student", "ine"): ("character varying(50)", "NO", "", "id"),
}

KIND_WORDS = {
    "PRIMARY KEY": "p",
    "UNIQUE": "u",
    "FOREIGN KEY": "f",
    "CHECK": "c",
}
KIND_NAMES = {v: k for k, v in KIND_WORDS.items()}


# --------------------------------------------------------------------------------------------
# Facts markdown parser
# --------------------------------------------------------------------------------------------

_TABLE_HEAD = re.compile(r"^### `(\w+)`")
_COLUMN_ROW = re.compile(r"^\| `(\w+)` \| ([^|]+?) \| (YES|NO) \| ([^|]*?) \|")
_CONSTRAINT = re.compile(r"^- (PRIMARY KEY|UNIQUE|FOREIGN KEY|CHECK) `(\w+)`: `(.+)`$")
_INDEX = re.compile(r"^- `(\w+)`: `(CREATE .+)`$")


def _norm_index(defn):
    """'CREATE INDEX n ON public.t USING btree (c)' and 'CREATE INDEX n USING btree (c)' -> same."""
    defn = re.sub(r" ON (?:ONLY )?(?:\"?\w+\"?\.)?\"?\w+\"? USING ", " USING ", defn.strip())
    return re.sub(r"\s+", " ", defn)


def _parse_tables(lines):
    tables = {}
    current = None
    for line in lines:
        match = _TABLE_HEAD.match(line)
        if match:
            current = {"columns": [], "constraints": {}, "indexes": {}}
            tables[match.group(1)] = current
            continue
        if current is None:
            continue
        match = _COLUMN_ROW.match(line)
        if match:
            name, ctype, nullable, default = match.groups()
            current["columns"].append([name, ctype.strip(), nullable, default.strip()])
            continue
        match = _CONSTRAINT.match(line.strip())
        if match:
            kind, name, defn = match.groups()
            current["constraints"][name] = [KIND_WORDS[kind], defn]
            continue
        match = _INDEX.match(line.strip())
        if match:
            current["indexes"][match.group(1)] = _norm_index(match.group(2))
    return tables


def _section(text, title_prefix):
    lines = text.splitlines()
    out, inside = [], False
    for line in lines:
        if line.startswith("## "):
            inside = line.startswith(title_prefix)
            continue
        if inside:
            out.append(line)
    return out


def _kind_of(defn):
    for word, kind in KIND_WORDS.items():
        if defn.startswith(word):
            return kind
    raise ValueError("unknown constraint definition %r" % defn)


def parse_facts(text):
    """{'head': {table: {...}}, '8f16b75': {table: {...}}} from the facts markdown."""
    head = _parse_tables(_section(text, "## Tables at HEAD"))
    focus = _parse_tables(_section(text, "## Tables at 8f16b75"))
    diff = _section(text, "## Differences 8f16b75")

    added_tables, added_cols, removed_cols = set(), set(), set()
    added_cons, removed_cons, added_idx, removed_idx = {}, {}, {}, {}
    for line in diff:
        line = line.strip()
        match = re.match(r"^- table `(\w+)` \*\*added\*\*", line)
        if match:
            added_tables.add(match.group(1))
            continue
        match = re.match(r"^- `(\w+)\.(\w+)` \*\*(added|removed)\*\*", line)
        if match:
            (added_cols if match.group(3) == "added" else removed_cols).add((match.group(1), match.group(2)))
            continue
        match = re.match(r"^- `(\w+)` constraint `(\w+)` (added|removed): `(.+)`$", line)
        if match:
            target = added_cons if match.group(3) == "added" else removed_cons
            target[(match.group(1), match.group(2))] = match.group(4)
            continue
        match = re.match(r"^- `(\w+)` index `(\w+)` (added|removed): `(.+)`$", line)
        if match:
            target = added_idx if match.group(3) == "added" else removed_idx
            target[(match.group(1), match.group(2))] = _norm_index(match.group(4))

    old = {}
    for table, spec in head.items():
        if table in added_tables:
            continue
        if table in focus:
            old[table] = focus[table]
            continue
        spec = json.loads(json.dumps(spec))
        spec["columns"] = [c for c in spec["columns"] if (table, c[0]) not in added_cols]
        for (t, col) in sorted(removed_cols):
            if t != table:
                continue
            ctype, nullable, default, after = REMOVED_COLUMN_TYPES[(t, col)]
            names = [c[0] for c in spec["columns"]]
            spec["columns"].insert(names.index(after) + 1, [col, ctype, nullable, default])
        for (t, name) in added_cons:
            if t == table:
                spec["constraints"].pop(name, None)
        for (t, name), defn in removed_cons.items():
            if t == table:
                spec["constraints"][name] = [_kind_of(defn), defn]
        for (t, name) in added_idx:
            if t == table:
                spec["indexes"].pop(name, None)
        for (t, name), defn in removed_idx.items():
            if t == table and name not in spec["constraints"]:
                spec["indexes"][name] = defn
        old[table] = spec
    return {"head": head, "8f16b75": old}


def find_facts():
    """The facts markdown: $KORRIGO_SCHEMA_FACTS, a shared/ folder beside or above the repo, or
    /work/shared. None when absent."""
    candidates = []
    if os.environ.get("KORRIGO_SCHEMA_FACTS"):
        candidates.append(os.environ["KORRIGO_SCHEMA_FACTS"])
    directory = HERE
    for _level in range(8):
        candidates.append(os.path.join(directory, "shared", "korrigo-schema.md"))
        directory = os.path.dirname(directory)
    candidates.append("/work/shared/korrigo-schema.md")
    for path in candidates:
        if os.path.isfile(path):
            return path
    return None


def load_expected(facts=None):
    """(expected, source) where expected is parse_facts()'s structure."""
    path = facts or find_facts()
    if path:
        with open(path, encoding="utf-8") as fh:
            return parse_facts(fh.read()), path
    with open(SNAPSHOT, encoding="utf-8") as fh:
        return json.load(fh), SNAPSHOT


# --------------------------------------------------------------------------------------------
# Live database
# --------------------------------------------------------------------------------------------

def read_database(conn, tables=None):
    """Same structure as one version of parse_facts(), read from pg_catalog."""
    from korrigo_stack import common

    out = {}
    with common.plain_cursor(conn) as cur:
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        names = sorted(r[0] for r in cur.fetchall())
        if tables is not None:
            names = [n for n in names if n in tables]
        for table in names:
            cur.execute(
                """
                SELECT a.attname, format_type(a.atttypid, a.atttypmod),
                       CASE WHEN a.attnotnull THEN 'NO' ELSE 'YES' END,
                       CASE a.attidentity WHEN 'd' THEN 'GENERATED BY DEFAULT AS IDENTITY'
                                          WHEN 'a' THEN 'GENERATED ALWAYS AS IDENTITY'
                            ELSE coalesce(pg_get_expr(d.adbin, d.adrelid), '') END
                FROM pg_attribute a
                LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
                ORDER BY a.attnum
                """, (table,))
            columns = [list(r) for r in cur.fetchall()]
            cur.execute(
                "SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = %s::regclass", (table,))
            constraints = {name: [kind, defn] for name, kind, defn in cur.fetchall()}
            cur.execute(
                """
                SELECT i.relname, pg_get_indexdef(i.oid)
                FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
                WHERE x.indrelid = %s::regclass
                  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid
                                  AND c.conrelid = x.indrelid)
                """, (table,))
            indexes = {name: _norm_index(defn) for name, defn in cur.fetchall()}
            out[table] = {"columns": columns, "constraints": constraints, "indexes": indexes}
    return out


def compare(expected, actual, ignore_tables=("django_migrations",)):
    """List of human-readable differences (empty when identical)."""
    problems = []
    for table in sorted(set(expected) - set(actual)):
        problems.append("missing table %s" % table)
    for table in sorted(set(actual) - set(expected) - set(ignore_tables)):
        problems.append("unexpected table %s" % table)
    for table in sorted(set(expected) & set(actual)):
        exp, act = expected[table], actual[table]
        exp_cols = [tuple(c) for c in exp["columns"]]
        act_cols = [tuple(c) for c in act["columns"]]
        if exp_cols != act_cols:
            exp_by, act_by = {c[0]: c for c in exp_cols}, {c[0]: c for c in act_cols}
            for name in [c[0] for c in exp_cols]:
                if name not in act_by:
                    problems.append("%s: missing column %s" % (table, name))
                elif exp_by[name] != act_by[name]:
                    problems.append("%s.%s: expected %s, found %s" % (table, name, exp_by[name][1:], act_by[name][1:]))
            for name in [c[0] for c in act_cols]:
                if name not in exp_by:
                    problems.append("%s: unexpected column %s" % (table, name))
            if [c[0] for c in exp_cols if c[0] in act_by] != [c[0] for c in act_cols if c[0] in exp_by]:
                problems.append("%s: column order differs: expected %s, found %s"
                                % (table, [c[0] for c in exp_cols], [c[0] for c in act_cols]))
        for name in sorted(set(exp["constraints"]) | set(act["constraints"])):
            e, a = exp["constraints"].get(name), act["constraints"].get(name)
            if e is None:
                problems.append("%s: unexpected constraint %s %s" % (table, name, a))
            elif a is None:
                problems.append("%s: missing constraint %s (%s %s)" % (table, name, KIND_NAMES[e[0]], e[1]))
            elif list(e) != list(a):
                problems.append("%s: constraint %s expected %s, found %s" % (table, name, e, a))
        for name in sorted(set(exp["indexes"]) | set(act["indexes"])):
            e, a = exp["indexes"].get(name), act["indexes"].get(name)
            if e is None:
                problems.append("%s: unexpected index %s" % (table, a))
            elif a is None:
                problems.append("%s: missing index %s" % (table, e))
            elif e != a:
                problems.append("%s: index %s expected %r, found %r" % (table, name, e, a))
    return problems


def summary(schema):
    return {
        "tables": len(schema),
        "columns": sum(len(t["columns"]) for t in schema.values()),
        "constraints": sum(len(t["constraints"]) for t in schema.values()),
        "indexes": sum(len(t["indexes"]) for t in schema.values()),
    }


def check(conn, version=None, facts=None):
    """(problems, info) for the database behind ``conn``."""
    from korrigo_stack import common

    expected_all, source = load_expected(facts)
    found = common.detect_schema_version(conn)
    version = version if version not in (None, "auto") else found
    if version is None:
        return ["no Korrigo schema in the database"], {"source": source}
    expected = expected_all[version]
    actual = read_database(conn)
    problems = compare(expected, actual)
    info = {"version": version, "detected": found, "source": source,
            "expected": summary(expected), "actual": summary({k: v for k, v in actual.items() if k in expected})}
    return problems, info


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python3 -m korrigo_stack.schema.check_schema",
                                     description="Compare a database with Korrigo's schema facts.")
    parser.add_argument("--dsn", default=None, help="default: $DATABASE_URL")
    parser.add_argument("--version", default="auto", choices=("auto", "head", "8f16b75"))
    parser.add_argument("--facts", default=None, help="schema facts markdown (default: found shared/korrigo-schema.md, else the snapshot)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--write-snapshot", action="store_true",
                        help="write expected_schema.json from the facts markdown and exit")
    args = parser.parse_args(argv)

    if args.write_snapshot:
        path = args.facts or find_facts()
        if not path:
            print("facts markdown not found", file=sys.stderr)
            return 2
        with open(path, encoding="utf-8") as fh:
            expected = parse_facts(fh.read())
        with open(SNAPSHOT, "w", encoding="utf-8") as fh:
            json.dump(expected, fh, indent=1, sort_keys=True)
            fh.write("\n")
        print("wrote %s (%s)" % (SNAPSHOT, {v: summary(s) for v, s in expected.items()}))
        return 0

    from korrigo_stack import common

    conn = common.connect(args.dsn)
    try:
        problems, info = check(conn, args.version, args.facts)
    finally:
        conn.close()
    if args.json:
        print(json.dumps({"ok": not problems, "problems": problems, **info}, indent=1, sort_keys=True))
    else:
        print("schema %s (detected %s) vs %s" % (info.get("version"), info.get("detected"), info.get("source")))
        print("expected %s" % info.get("expected"))
        print("actual   %s" % info.get("actual"))
        for problem in problems:
            print("DIFF " + problem)
        print("OK: identical" if not problems else "%d difference(s)" % len(problems))
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
