"""Seed scenario ``audit``: one copy per audit-trail gap kind of the incident playbook's scenario 5, plus
the controls whose trails look odd but are Korrigo's normal behaviour, on a realistic mix of creation paths
(shared/korrigo-schema.md, "How copies come into being"): most copies come from the exam's batch upload (no
IMPORT event; on HEAD no VALIDATE either, the upload auto-validates them), a few from ``import_pdf`` (IMPORT, then
VALIDATE by a person), individual uploads (HEAD only: STAGING, no booklet, no event) and merges (READY, never
validated, no event).

Gap groups (``<group>_copy_ids``; ``expected_gaps`` = {copy id: [gap kinds]} for the seeded version):

* ``noimport``: import_pdf copy (``pdf_source`` under copies/source/), READY, whose IMPORT event is gone;
* ``novalidate``: import_pdf copy, READY, whose VALIDATE event is gone (a gap on both versions);
* ``batchnovalidate``: batch copy, READY, without VALIDATE: a gap on 8f16b75 only (a person validated batch
  copies there); on HEAD this is what every batch copy looks like;
* ``nofinalize``: GRADED batch copy without any FINALIZE event (on 8f16b75 its LOCK is then never closed either);
* ``dupfinalize``: GRADED batch copy with two successful FINALIZE events (the real idempotency bug);
* ``lockopen``: READY batch copy with a LOCK event never followed by UNLOCK/FINALIZE and no lock row (8f16b75 gap);
* ``unlockonly``: READY batch copy with an UNLOCK event and no LOCK before it (8f16b75 gap);
* ``nolock``: GRADED batch copy without any LOCK event (8f16b75 gap: finalize needed a lock there).

On HEAD the last three are normal (no lock workflow: LOCK/UNLOCK events are legacy or absent).

Controls (never gaps): ``staging`` (import_pdf copy awaiting validation: IMPORT only), ``imported`` (import_pdf
copy, READY: IMPORT and VALIDATE), ``ready`` and ``graded`` (batch copies, the bulk of the data: no IMPORT, no
VALIDATE on HEAD; on 8f16b75 VALIDATE, a past LOCK/UNLOCK pair on READY and the LOCK before FINALIZE on GRADED),
``individual`` (HEAD only: individual uploads in STAGING, no booklet, no event; empty on 8f16b75), ``merged``
(READY merges: no event, no validated_at), ``retried`` (two failed FINALIZE by prof.durand, then a success by
prof.martin), ``getorcreate`` (one failed FINALIZE by prof.martin and no success event: his retry succeeded and
get_or_create reused the failure event), ``annotations`` (repeated CREATE_ANN/UPDATE_ANN by the same teacher),
``failed`` (GRADING_FAILED after three failed attempts); the last four are batch copies.

``copies_by_creation_path`` = {batch, individual, import, merge: copies seeded}.
"""

from korrigo_stack.seed import scenario

GAP_GROUPS = ("noimport", "novalidate", "batchnovalidate", "nofinalize", "dupfinalize", "lockopen", "unlockonly",
              "nolock")
CONTROL_GROUPS = ("staging", "imported", "ready", "graded", "individual", "merged", "retried", "getorcreate",
                  "annotations", "failed")
GRADED_GROUPS = ("nofinalize", "dupfinalize", "nolock", "graded", "retried", "getorcreate", "annotations")
STATUS = dict([(g, "READY") for g in ("noimport", "novalidate", "batchnovalidate", "lockopen", "unlockonly", "ready",
                                      "imported", "merged")]
              + [(g, "GRADED") for g in GRADED_GROUPS]
              + [("staging", "STAGING"), ("individual", "STAGING"), ("failed", "GRADING_FAILED")])
# How each group's copies came into being (the seeder's plan column ``origin``); every other group is batch.
ORIGIN = {"noimport": "import", "novalidate": "import", "staging": "import", "imported": "import",
          "individual": "individual", "merged": "merge"}
# Copies per group: the batch controls are the bulk, as on a real database.
SIZE = {"ready": 4, "graded": 4, "individual": 2, "merged": 2}
HEAD_ONLY = ("individual",)  # INDIVIDUAL_A4 uploads do not exist on 8f16b75

# Gaps each group must show, per version.
EXPECTED = {
    "head": {"noimport": ["missing_import"], "novalidate": ["missing_validate"],
             "nofinalize": ["missing_finalize"], "dupfinalize": ["duplicate_finalize"]},
    "8f16b75": {"noimport": ["missing_import"], "novalidate": ["missing_validate"],
                "batchnovalidate": ["missing_validate"],
                "nofinalize": ["missing_finalize", "unpaired_lock"], "dupfinalize": ["duplicate_finalize"],
                "lockopen": ["unpaired_lock"], "unlockonly": ["unpaired_unlock"], "nolock": ["missing_lock"]},
}

BASE = "now() - interval '2 days'"
FAIL_META = ("jsonb_build_object('detail', 'flatten_copy failed: timeout', 'retries', k, 'success', false)")


def _events(cur, copy_ids, action, actor, at, metadata="'{}'::jsonb", times=1):
    """``times`` events per copy, ``at`` an SQL expression over ``c`` (the copy) and ``k`` (1..times)."""
    cur.execute(
        "INSERT INTO grading_gradingevent (id, action, \"timestamp\", metadata, actor_id, copy_id)"
        " SELECT gen_random_uuid(), %%s, %s, %s, %%s, c.id FROM exams_copy c, generate_series(1, %%s) AS k"
        " WHERE c.id = ANY(%%s::uuid[])" % (at, metadata), (action, actor, times, list(copy_ids)))


@scenario("audit", "one copy per audit-trail gap kind (scenario 5) plus normal-but-odd trails as controls")
def build_audit(ctx, count):
    exam = ctx.create_exam(1, name="Bac blanc d'histoire (audit)")
    lock_workflow = ctx.version == "8f16b75"
    groups = [g for g in GAP_GROUPS + CONTROL_GROUPS if ctx.version == "head" or g not in HEAD_ONLY]
    for group in groups:
        n = SIZE.get(group, 1)
        ctx.load_ids(group, n)
        status = STATUS[group]
        exprs = dict(status="'%s'" % status, origin="'%s'" % ORIGIN.get(group, "batch"), importer_id="%(admin)s",
                     imported_at="%s + interval '1 minute'" % BASE)
        if status != "STAGING":
            exprs.update(validator_id="%(admin)s", validated_at="%s + interval '20 minutes'" % BASE,
                         corrector_id="%(martin)s", dispatch_run_id="%(dispatch_run)s::uuid",
                         assigned_at="%s + interval '1 hour'" % BASE)
        if status in ("GRADED", "GRADING_FAILED"):
            exprs.update(grader_id="%(martin)s", ann_at="%s + interval '3 hours'" % BASE,
                         ann1_delta="7", ann2_delta="-1")
            if lock_workflow and group != "nolock":
                exprs.update(lock_owner_id="%(martin)s", locked_at="%s + interval '2 hours 50 minutes'" % BASE,
                             lock_event="true")
        if status == "GRADED":
            exprs.update(graded_at="%s + interval '4 hours'" % BASE, retries="1", final_pdf="true")
        if status == "GRADING_FAILED":
            exprs.update(retries="3", error_message="'flatten_copy failed: timeout'")
        if lock_workflow and group == "ready":  # a past LOCK/UNLOCK pair
            exprs.update(lock_owner_id="%(bernard)s", locked_at="%s + interval '2 hours'" % BASE,
                         unlock_at="%s + interval '2 hours 10 minutes'" % BASE, lock_event="true")
        if group == "lockopen":  # locked, then the lock vanished without an UNLOCK
            exprs.update(lock_owner_id="%(durand)s", locked_at="%s + interval '2 hours'" % BASE, lock_event="true")
        if group == "unlockonly":
            exprs.update(lock_owner_id="%(durand)s", unlock_at="%s + interval '2 hours 10 minutes'" % BASE)
        ctx.plan(group, n, **exprs)
    ids = dict((group, ctx.plan_copy_ids(group) if group in groups else []) for group in GAP_GROUPS + CONTROL_GROUPS)
    counts = ctx.materialize()
    cur, users = ctx.cur, ctx.users
    martin, durand = users["prof.martin"], users["prof.durand"]
    graded_at = "%s + interval '4 hours'" % BASE

    # Trails that lost an event (on HEAD batchnovalidate has no VALIDATE to lose: auto-validation writes none).
    cur.execute("DELETE FROM grading_gradingevent WHERE action = 'IMPORT' AND copy_id = ANY(%s::uuid[])",
                (ids["noimport"],))
    cur.execute("DELETE FROM grading_gradingevent WHERE action = 'VALIDATE' AND copy_id = ANY(%s::uuid[])",
                (ids["novalidate"] + ids["batchnovalidate"],))
    cur.execute("DELETE FROM grading_gradingevent WHERE action = 'FINALIZE' AND copy_id = ANY(%s::uuid[])",
                (ids["nofinalize"] + ids["getorcreate"],))
    _events(cur, ids["dupfinalize"], "FINALIZE", martin, graded_at + " + interval '2 seconds'",
            "jsonb_build_object('final_score', 6, 'retries', 1)")
    _events(cur, ids["retried"], "FINALIZE", durand, graded_at + " - interval '40 minutes' + k * interval '10 minutes'",
            FAIL_META, times=2)
    _events(cur, ids["getorcreate"], "FINALIZE", martin, graded_at + " - interval '10 minutes'",
            "jsonb_build_object('detail', 'flatten_copy failed: timeout', 'retries', 1, 'success', false)")
    _events(cur, ids["failed"], "FINALIZE", martin, graded_at + " + k * interval '10 minutes'", FAIL_META, times=3)
    _events(cur, ids["annotations"], "CREATE_ANN", martin, "%s + interval '3 hours 5 minutes' + k * interval '1 minute'"
            % BASE, "jsonb_build_object('annotation_id', gen_random_uuid()::text, 'page', 0)", times=2)
    _events(cur, ids["annotations"], "UPDATE_ANN", martin, "%s + interval '3 hours 10 minutes' + k * interval '1 minute'"
            % BASE, "jsonb_build_object('page', 0)", times=2)

    expected = {}
    for group, kinds in EXPECTED[ctx.version].items():
        for copy_id in ids[group]:
            expected[copy_id] = kinds
    clean = sorted(c for group in GAP_GROUPS + CONTROL_GROUPS for c in ids[group] if c not in expected)
    result = dict(("%s_copy_ids" % group, ids[group]) for group in GAP_GROUPS + CONTROL_GROUPS)
    by_path = dict((path, 0) for path in ("batch", "individual", "import", "merge"))
    for group in groups:
        by_path[ORIGIN.get(group, "batch")] += len(ids[group])
    result.update(exam_id=exam, counts=counts, expected_gaps=expected, clean_copy_ids=clean,
                  copies_by_creation_path=by_path)
    return result
