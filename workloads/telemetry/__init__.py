"""Telemetry math with no Django: latency histograms and SLO arithmetic."""
