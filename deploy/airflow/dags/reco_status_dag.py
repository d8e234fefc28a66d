"""Checks the reco platform every five minutes with `reco status` (for teams on Airflow).

The original platform's DAG only checked that streaming job files existed. `reco status`
checks the real things (broker, topics, silver lag, API, jobs' freshness, gold windows) and
exits 0 healthy, 1 degraded, 2 down; this task fails on anything but 0, so Airflow's
alerting (email, Slack callbacks) takes over. Point the environment at your deployment.
"""

from datetime import datetime, timedelta

from airflow import DAG
from airflow.operators.bash import BashOperator

RECO_ENV = {
    "KAFKA_BOOTSTRAP_SERVERS": "kafka:9092",
    "LAKEHOUSE_PATH": "/lake",
    "RECO_STATUS_API_URL": "http://reco-api:8000",
    "RECO_STATUS_SILVER_URL": "http://reco-silver:9101",
    "RECO_STATUS_GOLD_URL": "http://reco-gold:9102",
}

with DAG(
    dag_id="reco_status",
    description="reco platform health via `reco status`",
    schedule=timedelta(minutes=5),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=1)},
    tags=["reco", "monitoring"],
) as dag:
    BashOperator(
        task_id="reco_status",
        # --json goes to the task log for debugging; the exit code decides success.
        bash_command="reco status --json",
        env=RECO_ENV,
        append_env=True,
    )
