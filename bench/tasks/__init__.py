"""Downstream tasks measured on decoded images: land-cover classification."""
