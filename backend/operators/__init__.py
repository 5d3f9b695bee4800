"""What the coordinator's operators see and may do: who counts as one (ONE_OPERATORS) and the dashboard's
overview of workers, queues, throughput, the receipt log and settlement, read from the services that own them."""

from backend.operators.overview import NotAnOperator, Overview, authorize_operator, clock, overview

__all__ = ["NotAnOperator", "Overview", "authorize_operator", "clock", "overview"]
