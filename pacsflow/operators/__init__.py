"""Actions that Airflow tasks run: they reach the archive only through pacsflow's DICOMweb.

Modules here import no Airflow, so they run and are tested without a scheduler; the DAGs
wrap them in tasks. ``client`` talks to pacsflow, ``forward`` sends series to other nodes.
"""
