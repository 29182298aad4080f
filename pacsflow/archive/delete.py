"""Removing instances from the index while keeping the derived counts right."""

from __future__ import annotations

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from pacsflow.archive.models import Instance, Patient, Series, Study


def remove_instances(session: Session, sop_instance_uids: list[str]) -> list[str]:
    """Delete instance rows inside the caller's transaction; return their storage keys.

    Series, studies and patients left empty go too; counts and ModalitiesInStudy are
    recomputed for what remains.
    """
    rows = session.execute(
        select(Instance.id, Instance.storage_key, Instance.series_fk).where(
            Instance.sop_instance_uid.in_(sop_instance_uids)
        )
    ).all()
    if not rows:
        return []
    session.execute(delete(Instance).where(Instance.id.in_([r.id for r in rows])))
    series_ids = {r.series_fk for r in rows}
    study_ids = set(
        session.execute(select(Series.study_fk).where(Series.id.in_(series_ids))).scalars()
    )
    for series_id in series_ids:
        count = session.execute(
            select(func.count()).where(Instance.series_fk == series_id)
        ).scalar_one()
        if count:
            session.execute(
                update(Series).where(Series.id == series_id).values(number_of_instances=count)
            )
        else:
            session.execute(delete(Series).where(Series.id == series_id))
    for study_id in study_ids:
        _refresh_study(session, study_id)
    return [r.storage_key for r in rows]


def _refresh_study(session: Session, study_id: int) -> None:
    remaining = session.execute(
        select(Series.modality, Series.number_of_instances).where(Series.study_fk == study_id)
    ).all()
    if remaining:
        modalities = sorted({r.modality for r in remaining if r.modality})
        session.execute(
            update(Study)
            .where(Study.id == study_id)
            .values(
                number_of_series=len(remaining),
                number_of_instances=sum(r.number_of_instances for r in remaining),
                modalities_in_study="/" + "".join(f"{m}/" for m in modalities),
            )
        )
        return
    patient_fk = session.execute(select(Study.patient_fk).where(Study.id == study_id)).scalar_one()
    session.execute(delete(Study).where(Study.id == study_id))
    if not session.execute(select(Study.id).where(Study.patient_fk == patient_fk).limit(1)).first():
        session.execute(delete(Patient).where(Patient.id == patient_fk))
