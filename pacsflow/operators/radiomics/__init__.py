"""Radiomics on a segmentation: image volume, masks, pyradiomics features, TID 1500 SR.

Each step is a plain function on pydicom data sets and arrays, usable without Airflow; the
`radiomics` DAG composes them with DICOMweb fetching and storing.
"""
