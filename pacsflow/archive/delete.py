"""Removing instances from the index while keeping the derived counts right."""

from __future__ import annotations

from sqlalchemy import Connection, delete, func, select, update

from pacsflow.archive.models import Instance, Patient, Series, Study


def remove_instances(conn: Connection, sop_instance_uids: list[str]) -> list[str]:
    """Delete instance rows inside the caller's transaction; return their storage keys.

    Series, studies and patients left empty go too; counts and ModalitiesInStudy are
    recomputed for what remains.
    """
    rows = conn.execute(
        select(Instance.id, Instance.storage_key, Instance.series_fk).where(
            Instance.sop_instance_uid.in_(sop_instance_uids)
        )
    ).all()
    if not rows:
        return []
    conn.execute(delete(Instance).where(Instance.id.in_([r.id for r in rows])))
    series_ids = {r.series_fk for r in rows}
    study_ids = set(
        conn.execute(select(Series.study_fk).where(Series.id.in_(series_ids))).scalars()
    )
    for series_id in series_ids:
        count = conn.execute(
            select(func.count()).where(Instance.series_fk == series_id)
        ).scalar_one()
        if count:
            conn.execute(
                update(Series).where(Series.id == series_id).values(number_of_instances=count)
            )
        else:
            conn.execute(delete(Series).where(Series.id == series_id))
    for study_id in study_ids:
        _refresh_study(conn, study_id)
    return [r.storage_key for r in rows]


def _refresh_study(conn: Connection, study_id: int) -> None:
    remaining = conn.execute(
        select(Series.modality, Series.number_of_instances).where(Series.study_fk == study_id)
    ).all()
    if remaining:
        modalities = sorted({r.modality for r in remaining if r.modality})
        conn.execute(
            update(Study)
            .where(Study.id == study_id)
            .values(
                number_of_series=len(remaining),
                number_of_instances=sum(r.number_of_instances for r in remaining),
                modalities_in_study="/" + "".join(f"{m}/" for m in modalities),
            )
        )
        return
    patient_fk = conn.execute(select(Study.patient_fk).where(Study.id == study_id)).scalar_one()
    conn.execute(delete(Study).where(Study.id == study_id))
    if not conn.execute(select(Study.id).where(Study.patient_fk == patient_fk).limit(1)).first():
        conn.execute(delete(Patient).where(Patient.id == patient_fk))
