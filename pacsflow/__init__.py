"""pacsflow: an on-premises DICOM platform for research labs, built around Apache Airflow."""

import logging

logging.getLogger(__name__).addHandler(logging.NullHandler())
