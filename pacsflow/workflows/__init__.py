"""Workflows: Airflow as pacsflow runs it, and the client pacsflow uses to start runs."""
