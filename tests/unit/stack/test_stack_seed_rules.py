"""Seeder rules that need no database: deterministic ids, Korrigo's anonymous ids, users, registry."""
import base64
import hashlib
import uuid

from korrigo_stack import seed


def test_uuid5_series_is_uuid5():
    series = seed._Uuid5Series("locks:expired-copy:")
    for i in (1, 2, 99999):
        assert uuid.UUID(series(str(i))) == uuid.uuid5(seed.NAMESPACE, "locks:expired-copy:%d" % i)
        assert seed.seed_uuid("locks", "expired-copy", i) == uuid.uuid5(seed.NAMESPACE, "locks:expired-copy:%d" % i)


def test_anonymous_id_is_korrigo_import_format():
    copy_id = uuid.UUID("1fddfa01-6abf-5492-9363-7d075d1ecb53")
    assert seed.anonymous_id(copy_id) == "IMPORT-1FDDFA01"


def test_required_users_and_valid_django_password_hashes():
    assert {"admin", "korrigo-ops", "prof.martin", "prof.durand", "prof.bernard"} <= set(seed.USERS)
    assert seed.USERS["admin"][3] is True  # superuser
    assert seed.USERS["korrigo-ops"][4] is True  # staff
    for username, (_f, _l, _e, _su, _st, password) in seed.USERS.items():
        algorithm, iterations, salt, digest = password.split("$")
        assert algorithm == "pbkdf2_sha256" and iterations == "600000" and len(base64.b64decode(digest)) == 32
    # one real verification (600000 iterations is slow): the documented password matches
    _a, iterations, salt, digest = seed.USERS["korrigo-ops"][5].split("$")
    computed = hashlib.pbkdf2_hmac("sha256", seed.PASSWORD.encode(), salt.encode(), int(iterations))
    assert base64.b64encode(computed).decode() == digest


def test_scenarios_registered():
    assert {"baseline", "locks"} <= set(seed.SCENARIOS)
    for spec in seed.SCENARIOS.values():
        assert callable(spec["build"]) and spec["description"]


def test_plan_columns_cover_the_id_kinds():
    names = set(seed.PLAN_NAMES)
    for kind in seed.ID_KINDS:
        if kind.startswith("ev_"):
            assert kind in names
