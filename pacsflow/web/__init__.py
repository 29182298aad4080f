"""pacsflow's web application: login, users and roles, REST API, DICOMweb.

Build it with :func:`pacsflow.web.app.create_app`; permission checks live in
:mod:`pacsflow.web.security`.
"""
