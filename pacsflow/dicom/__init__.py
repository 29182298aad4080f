"""DICOM helpers shared by the archive, the web app and the receiver."""
