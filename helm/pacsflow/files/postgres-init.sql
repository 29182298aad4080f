-- Run once by the postgres image on an empty data directory (docker-entrypoint-initdb.d):
-- the archive index uses the database POSTGRES_DB creates, Airflow this one.
CREATE DATABASE airflow;
