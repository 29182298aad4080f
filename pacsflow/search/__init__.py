"""Metadata search: one document per series, one query model, two backends.

``model`` holds what every part agrees on: the fields of a series document, the query model
and the backend interface. ``document`` builds documents from DICOM JSON; ``sql`` is the
embedded backend on the archive's database; ``opensearch`` the backend for a cluster.
"""
