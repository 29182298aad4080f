"""The running receiver answers C-FIND for what was stored through it."""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

from pacsflow.receiver import ReceiverHandle
from tests.receiver.test_store_pynetdicom import ct_instance, scu


def test_find_after_store_on_one_association(receiver: ReceiverHandle) -> None:
    ae = scu()
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    study, series = generate_uid(), generate_uid()
    assoc = ae.associate("127.0.0.1", receiver.port, ae_title="PACSFLOW")
    assert assoc.is_established
    try:
        for _ in range(3):
            assert assoc.send_c_store(ct_instance(study, series)).Status == 0x0000
        query = Dataset()
        query.QueryRetrieveLevel = "SERIES"
        query.StudyInstanceUID = study
        query.SeriesInstanceUID = ""
        query.Modality = "C?"
        query.NumberOfSeriesRelatedInstances = ""
        responses = list(assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind))
    finally:
        assoc.release()
    matches = [identifier for status, identifier in responses if status.Status in (0xFF00, 0xFF01)]
    assert [m.SeriesInstanceUID for m in matches] == [series]
    assert matches[0].NumberOfSeriesRelatedInstances == 3
    assert responses[-1][0].Status == 0x0000
